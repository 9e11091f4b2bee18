"""Take the README's screenshots of the web UI: a real server with a few jobs that really run,
in Debian's Chromium. Run from the repository root: ``python -m docs.screenshots``."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

from playwright.sync_api import sync_playwright
from tests.support.server import KairosProcess, TargetProcess, wait_until

OUT = Path(__file__).with_name("screenshots")
PASSWORD = "screenshots only"
_UPSTREAM = '{"error": "upstream unavailable", "service": "exports", "retry_in": 30}'


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        target = TargetProcess(Path(tmp) / "deliveries.jsonl")
        db = f"sqlite:///{tmp}/k.db"
        try:
            with KairosProcess(db) as server, server.client() as api:
                _seed(api, target)
                for name, scopes in (
                    ("ann", ["admin"]),
                    ("ops-oncall", ["jobs:read", "runs:read"]),
                ):
                    flags = [flag for scope in scopes for flag in ("-s", scope)]
                    command = ["users", "add", name, *flags, "--password-stdin", "--db", db]
                    subprocess.run(
                        [sys.executable, "-m", "kairos", *command],
                        input=PASSWORD,
                        text=True,
                        check=True,
                    )
                for key_name in ("ci-deploys", "grafana"):
                    key = {"name": key_name, "scopes": ["jobs:read"]}
                    api.post("/auth/keys", json=key).raise_for_status()
                wait_until(lambda: _runs(api, "sync-crm") >= 12, 60, what="some history")
                _shoot(server.base_url)
        finally:
            target.stop()


def _seed(api: object, target: TargetProcess) -> None:
    jobs = {
        "nightly-report": {
            "trigger": {"type": "cron", "expression": "0 2 * * *"},
            "timezone": "Europe/Berlin",
            "tags": ["reports"],
            "target": {"url": target.url("/report"), "headers": {"Authorization": "Bearer x"}},
            "description": "Builds yesterday's sales report",
        },
        "sync-crm": {
            "trigger": {"type": "interval", "seconds": 1},
            "tags": ["etl"],
            "target": {"url": target.url("/sync?delay=0.05")},
        },
        "flaky-export": {
            "trigger": {"type": "interval", "seconds": 1},
            "tags": ["etl"],
            "target": {"url": target.url("/export?status=502&body=" + quote(_UPSTREAM))},
            "retry": {"max_attempts": 2, "initial_delay": 0.2},
            "max_consecutive_failures": 3,
        },
        "weekly-cleanup": {
            "trigger": {"type": "cron", "expression": "30 4 * * 0"},
            "target": {"url": target.url("/cleanup"), "method": "DELETE"},
            "paused": True,
        },
        "black-friday-mail": {
            "trigger": {"type": "date", "run_date": "2026-11-27T08:00:00"},
            "timezone": "America/New_York",
            "target": {"url": target.url("/mail")},
        },
    }
    for job_id, body in jobs.items():
        api.put(f"/jobs/{job_id}", json=body).raise_for_status()  # type: ignore[attr-defined]


def _runs(api: object, job_id: str) -> int:
    page = api.get(f"/jobs/{job_id}/runs").json()  # type: ignore[attr-defined]
    return len([r for r in page["items"] if r["status"] == "succeeded"])


def _shoot(base_url: str) -> None:
    OUT.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=["--no-sandbox"]
        )
        for scheme in ("light", "dark"):
            context = browser.new_context(
                base_url=base_url, viewport={"width": 1280, "height": 860}, color_scheme=scheme
            )
            page = context.new_page()
            page.goto("/ui/login")
            if scheme == "light":
                page.screenshot(path=OUT / "login.png")
            page.get_by_label("User name").fill("ann")
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in", exact=True).click()
            page.get_by_role("heading", name="Overview").wait_for()
            page.screenshot(path=OUT / f"overview-{scheme}.png", full_page=True)
            page.goto("/ui/jobs")
            page.screenshot(path=OUT / f"jobs-{scheme}.png")
            if scheme == "dark":
                context.close()
                continue
            page.goto("/ui/jobs/sync-crm")
            page.screenshot(path=OUT / "job.png", full_page=True)
            page.goto("/ui/jobs/flaky-export")
            page.screenshot(path=OUT / "job-tripped.png")
            page.goto("/ui/new")
            page.get_by_label("Cron expression").fill("15 9 * * 1-5")
            page.get_by_label("Time zone").fill("Asia/Tokyo")
            page.locator("#preview").get_by_text("Monday through Friday").wait_for()
            time.sleep(0.3)  # let the preview's fade settle before the picture
            page.screenshot(path=OUT / "new-job.png", full_page=True)
            page.goto("/ui/runs")
            page.screenshot(path=OUT / "runs.png")
            page.goto("/ui/runs?job_id=flaky-export&status=failed")
            page.locator("tbody tr td a").first.click()
            page.locator("#response-excerpt").wait_for()
            page.screenshot(path=OUT / "run.png", full_page=True)
            page.goto("/ui/users")
            page.screenshot(path=OUT / "users.png")
            page.goto("/ui/keys")
            page.screenshot(path=OUT / "keys.png")
            page.goto("/ui/audit")
            page.screenshot(path=OUT / "audit.png")
            page.set_viewport_size({"width": 390, "height": 844})
            page.goto("/ui/jobs")
            page.screenshot(path=OUT / "jobs-phone.png")
            page.goto("/ui/overview")
            page.screenshot(path=OUT / "overview-phone.png", full_page=True)
            context.close()
        browser.close()


if __name__ == "__main__":
    main()
