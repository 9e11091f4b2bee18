"""The web UI's server side, without a browser: sessions, CSRF and origin checks, forms that
name bad fields, edits that keep what the form does not show, the preview, security headers.
(The browser tests in ``tests/browser`` drive the same pages in Chromium.)"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from kairos.api import create_app
from kairos.engine import Scheduler
from kairos.models import JobSpec
from kairos.settings import Settings
from kairos.tasks import TaskRegistry
from kairos.web.forms import JobForm

ADMIN = "admin-token-for-the-web-tests"
TARGET = "http://127.0.0.1:9/hook"
API = {"Authorization": f"Bearer {ADMIN}"}


@pytest.fixture
def client() -> Iterator[TestClient]:
    app = create_app(Settings(database_url="memory://", admin_token=ADMIN))
    with TestClient(app, follow_redirects=False) as test_client:
        yield test_client


def sign_in(client: TestClient, token: str = ADMIN) -> str:
    """Sign in with a token; return the page's CSRF token."""
    response = client.post("/ui/login", data={"token": token, "next": "/ui/jobs"})
    assert response.status_code == 303, response.text
    page = client.get("/ui/jobs")
    found = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
    assert found is not None
    return found[1]


def form(csrf: str, **changes: str) -> dict[str, str]:
    return {
        "csrf_token": csrf,
        "id": "nightly",
        "trigger_kind": "cron",
        "expression": "0 2 * * 0",
        "timezone": "Europe/Berlin",
        "url": TARGET,
        "method": "POST",
        "headers": "Authorization: Bearer hush\nX-Team: ops",
        "body": '{"kind": "nightly"}',
        "max_instances": "1",
        "misfire_grace_time": "60",
        "coalesce": "on",
        "max_attempts": "3",
        "tags": "reports, nightly",
    } | changes


def test_pages_need_a_session_and_htmx_is_told_where_to_sign_in(client: TestClient) -> None:
    page = client.get("/ui/runs?status=failed")
    assert page.status_code == 303
    assert page.headers["location"] == "/ui/login?next=%2Fui%2Fruns%3Fstatus%3Dfailed"
    fragment = client.post("/ui/preview", headers={"HX-Request": "true"})
    assert fragment.headers["HX-Redirect"].startswith("/ui/login")


def test_signing_in_sets_a_strict_http_only_cookie_and_goes_only_to_this_ui(
    client: TestClient,
) -> None:
    response = client.post("/ui/login", data={"token": ADMIN, "next": "https://evil.example/"})
    assert response.headers["location"] == "/ui/"
    cookie = response.headers["set-cookie"]
    for part in ("HttpOnly", "Path=/ui", "SameSite=strict"):
        assert part in cookie
    wrong = client.post("/ui/login", data={"token": "nope", "next": "/ui/jobs"})
    assert wrong.status_code == 401
    assert "Invalid bearer token" in wrong.text


def test_changes_need_the_csrf_token_and_this_sites_origin(client: TestClient) -> None:
    csrf = sign_in(client)
    assert client.post("/ui/new", data=form(csrf)).status_code == 303
    assert client.post("/ui/jobs/nightly/pause", data={"csrf_token": "forged"}).status_code == 403
    assert client.post("/ui/jobs/nightly/pause", data={}).status_code == 403
    foreign = {"Origin": "https://evil.example"}
    response = client.post("/ui/jobs/nightly/pause", data={"csrf_token": csrf}, headers=foreign)
    assert response.status_code == 403
    login = client.post("/ui/login", data={"token": ADMIN}, headers=foreign)
    assert login.status_code == 403
    proxied = {"Origin": "https://kairos.example", "X-Forwarded-Host": "kairos.example"}
    assert client.post("/ui/login", data={"token": ADMIN}, headers=proxied).status_code == 303
    assert client.get("/jobs/nightly", headers=API).json()["paused"] is False
    ok = client.post("/ui/jobs/nightly/pause", headers={"X-CSRF-Token": csrf, "HX-Request": "true"})
    assert ok.status_code == 200
    assert "Resume nightly" in ok.text  # the row, swapped in place
    assert client.get("/jobs/nightly", headers=API).json()["paused"] is True


@pytest.mark.parametrize(
    "origin", ["null", "file://", "kairos.example", "https://testserver.evil", "data:,x"]
)
def test_a_form_from_a_hidden_or_foreign_origin_is_refused(client: TestClient, origin: str) -> None:
    csrf = sign_in(client)
    assert client.post("/ui/new", data=form(csrf)).status_code == 303
    sent_from = {"Origin": origin}
    assert client.post("/ui/login", data={"token": ADMIN}, headers=sent_from).status_code == 403
    pause = client.post("/ui/jobs/nightly/pause", data={"csrf_token": csrf}, headers=sent_from)
    assert pause.status_code == 403
    assert client.get("/jobs/nightly", headers=API).json()["paused"] is False
    ours = {"Origin": "http://testserver"}
    assert client.post("/ui/login", data={"token": ADMIN}, headers=ours).status_code == 303


def test_pages_forbid_framing_and_inline_scripts(client: TestClient) -> None:
    page = client.get("/ui/login")
    assert page.headers["x-frame-options"] == "DENY"
    policy = page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy
    assert "script-src" not in policy
    assert "default-src 'self'" in policy
    assert "<script>" not in page.text  # every script is a file of this server


def test_a_bad_form_names_every_bad_field_and_keeps_what_was_typed(client: TestClient) -> None:
    csrf = sign_in(client)
    bad = form(csrf, id="no spaces", expression="61 * * * *", url="ftp://x", max_instances="lots")
    response = client.post("/ui/new", data=bad)
    assert response.status_code == 422
    errors = dict(
        re.findall(r'<div class="error" id="([a-z_]+)-error">([^<]+)</div>', response.text)
    )
    assert set(errors) >= {"id", "max_instances"}
    assert 'value="no spaces"' in response.text
    fixed = client.post("/ui/new", data=form(csrf, expression="61 * * * *"))
    assert fixed.status_code == 422
    assert 'id="expression-error"' in fixed.text
    assert client.get("/jobs/nightly", headers=API).status_code == 404


def test_json_nested_too_deep_is_a_field_error_or_plain_text_not_a_500(client: TestClient) -> None:
    csrf = sign_in(client)
    deep = "[" * 100_000 + "]" * 100_000
    trigger = client.post("/ui/new", data=form(csrf, trigger_kind="json", trigger_json=deep))
    assert trigger.status_code == 422
    assert 'id="trigger_json-error">nested too deep<' in trigger.text
    assert client.post("/ui/new", data=form(csrf, body=deep)).status_code == 303
    assert client.get("/jobs/nightly", headers=API).json()["target"]["body"] == deep


def test_an_edit_changes_what_the_form_changed_and_keeps_the_rest(client: TestClient) -> None:
    job = {
        "trigger": {"type": "cron", "expression": "0 2 * * *"},
        "target": {
            "url": TARGET,
            "headers": {"Authorization": "Bearer hush", "X-Key": "k"},
            "secret_headers": ["X-Key"],
        },
        "retry": {"max_attempts": 4, "initial_delay": 7, "max_delay": 70},
        "on_failure": {"url": "http://127.0.0.1:9/alerts", "secret": "s3"},
        "history": {"max_runs": 5},
    }
    assert client.put("/jobs/kept", json=job, headers=API).status_code == 201
    csrf = sign_in(client)
    edit = client.get("/ui/jobs/kept/edit")
    assert "hush" not in edit.text
    assert "Authorization: ***" in edit.text
    shown = JobForm.from_spec("kept", JobSpec.model_validate(job)).values()
    sent = {k: str(v) for k, v in shown.items() if not isinstance(v, bool)} | {"coalesce": "on"}
    sent |= {"csrf_token": csrf, "expression": "30 3 * * *"}
    assert client.post("/ui/jobs/kept/edit", data=sent).status_code == 303
    after = client.get("/jobs/kept", headers=API).json()
    assert after["trigger"]["expression"] == "30 3 * * *"
    assert after["retry"]["initial_delay"] == 7
    assert after["retry"]["max_attempts"] == 4
    assert after["history"] == {"max_runs": 5, "max_age": None}
    assert after["on_failure"]["secret"] == "***"  # kept, not dropped
    assert after["target"]["secret_headers"] == ["X-Key"]
    audit = client.get("/audit?target=kept", headers=API).json()["items"]
    assert (audit[0]["action"], audit[0]["actor"]) == ("job.update", "admin-token")


def test_a_form_names_a_dot_id_and_a_zone_that_is_a_folder(client: TestClient) -> None:
    csrf = sign_in(client)
    response = client.post("/ui/new", data=form(csrf, id="..", timezone="America"))
    assert response.status_code == 422
    errors = dict(
        re.findall(r'<div class="error" id="([a-z_]+)-error">([^<]+)</div>', response.text)
    )
    assert set(errors) >= {"id", "timezone"}
    assert "not . or .." in errors["id"]
    preview = client.post("/ui/preview", data={"csrf_token": csrf, "timezone": "America"})
    assert preview.status_code == 200
    assert "Time zone" in preview.text
    assert client.get("/jobs", headers=API).json()["items"] == []


def test_an_edit_sending_the_target_elsewhere_must_give_its_secrets_again(
    client: TestClient,
) -> None:
    job = {
        "trigger": {"type": "cron", "expression": "0 2 * * *"},
        "target": {"url": TARGET, "headers": {"Authorization": "Bearer hush"}},
    }
    assert client.put("/jobs/kept", json=job, headers=API).status_code == 201
    csrf = sign_in(client)
    shown = JobForm.from_spec("kept", JobSpec.model_validate(job)).values()
    sent = {k: str(v) for k, v in shown.items() if not isinstance(v, bool)} | {"coalesce": "on"}
    sent |= {"csrf_token": csrf, "url": "http://attacker.example/steal"}
    refused = client.post("/ui/jobs/kept/edit", data=sent)
    assert refused.status_code == 422
    assert 'id="headers-error"' in refused.text
    assert "sent again for a new host" in refused.text
    assert client.get("/jobs/kept", headers=API).json()["target"]["url"] == TARGET
    sent["headers"] = "Authorization: Bearer for-them"
    assert client.post("/ui/jobs/kept/edit", data=sent).status_code == 303


def test_the_preview_says_the_schedule_in_words_or_names_the_problem(client: TestClient) -> None:
    csrf = sign_in(client)
    fields: dict[str, Any] = {"csrf_token": csrf, "timezone": "Asia/Tokyo"}
    words = client.post(
        "/ui/preview", data=fields | {"trigger_kind": "cron", "expression": "15 9 * * 1-5"}
    )
    assert "At 09:15 on Monday through Friday" in words.text
    assert words.text.count("JST</li>") == 5
    every = client.post(
        "/ui/preview",
        data=fields | {"trigger_kind": "interval", "every": "90", "every_unit": "minutes"},
    )
    assert "Every 1 hour and 30 minutes" in every.text
    wrong = client.post(
        "/ui/preview", data=fields | {"trigger_kind": "cron", "expression": "1 2 3"}
    )
    assert 'role="alert"' in wrong.text
    assert "expression" in wrong.text
    zone = client.post("/ui/preview", data={"csrf_token": csrf, "timezone": "Mars/Olympus"})
    assert "Time zone" in zone.text


def test_a_viewer_without_a_scope_gets_a_page_saying_which(client: TestClient) -> None:
    key = client.post("/auth/keys", json={"name": "r", "scopes": ["jobs:read"]}, headers=API).json()
    sign_in(client, key["key"])
    jobs = client.get("/ui/jobs")
    assert jobs.status_code == 200
    assert "New job" not in jobs.text
    for path in ("/ui/runs", "/ui/audit", "/ui/cluster", "/ui/new"):
        page = client.get(path)
        assert page.status_code == 403, path
        assert "scope" in page.text


def test_the_form_reads_back_every_trigger_kind() -> None:
    def trigger(**spec: Any) -> dict[str, Any]:
        built = JobSpec.model_validate({"trigger": spec, "target": {"url": TARGET}})
        return JobForm.from_spec("j", built).trigger()

    assert trigger(type="cron", expression="0 2 * * *") == {
        "type": "cron",
        "expression": "0 2 * * *",
    }
    assert trigger(type="interval", hours=2) == {"type": "interval", "seconds": 7200.0}
    assert trigger(type="date", run_date="2030-01-01T09:00:00")["run_date"].startswith(
        "2030-01-01T09:00"
    )
    fancy = trigger(type="cron", hour="*/2", jitter=5)  # the simple fields cannot show it
    assert fancy == {"type": "cron", "hour": "*/2", "jitter": 5.0}


def python_form(csrf: str, **changes: str) -> dict[str, str]:
    return (
        form(
            csrf,
            target_kind="python",
            task="crawl",
            args='["example.com"]',
            kwargs='{"depth": 2}',
            timeout="30",
        )
        | changes
    )


def crawl(site: str, depth: int = 1) -> None:
    """The task the node of ``client_with_tasks`` has registered."""


@pytest.fixture
def client_with_tasks() -> Iterator[TestClient]:
    settings = Settings(database_url="memory://", admin_token=ADMIN)
    tasks = TaskRegistry()
    tasks.register("crawl", crawl)
    tasks.register("reports.daily", crawl)
    app = create_app(settings, scheduler=Scheduler.from_settings(settings, tasks=tasks))
    with TestClient(app, follow_redirects=False) as test_client:
        yield test_client


def field_errors(page: str) -> dict[str, str]:
    return dict(re.findall(r'<div class="error" id="([a-z_]+)-error">([^<]+)</div>', page))


def test_a_python_target_job_is_shown_and_its_form_keeps_it_python(client: TestClient) -> None:
    csrf = sign_in(client)
    target = {"type": "python", "task": "crawl", "args": ["example.com"], "timeout": 30}
    job = {"trigger": {"type": "cron", "expression": "0 2 * * *"}, "target": target}
    assert client.put("/jobs/nightly", json=job, headers=API).status_code == 201
    page = client.get("/ui/jobs/nightly").text
    assert "task crawl" in page
    # No node of this app has registered the task: the page says why the job does not fire.
    assert "Waiting for a node:" in page
    assert "no live node has registered the task <code>crawl</code>" in page
    assert client.get("/jobs/nightly", headers=API).json()["waiting_for_task"] == "crawl"
    edit = client.get("/ui/jobs/nightly/edit").text
    assert re.search(r'id="target_kind_python"[^>]*checked', edit)
    assert not re.search(r'id="target_kind_http"[^>]*checked', edit)
    # This node has no tasks of its own: the task is typed, any name goes.
    assert '<input id="task" name="task" type="text" value="crawl"' in edit
    assert "&#34;example.com&#34;" in edit  # the args, as JSON
    shown = JobForm.from_spec("nightly", JobSpec.model_validate(job))
    assert (shown.target_kind, shown.task, shown.args, shown.kwargs, shown.timeout) == (
        "python",
        "crawl",
        '["example.com"]',
        "{}",
        "30",
    )
    sent = python_form(csrf, task="crawl.deep", kwargs='{"depth": 3}', timeout="")
    assert client.post("/ui/jobs/nightly/edit", data=sent).status_code == 303
    after = client.get("/jobs/nightly", headers=API).json()["target"]
    assert after == {
        "type": "python",
        "task": "crawl.deep",
        "args": ["example.com"],
        "kwargs": {"depth": 3},
        "timeout": None,
    }
    assert client.post("/ui/jobs/nightly/edit", data=form(csrf)).status_code == 303
    shown_http = client.get("/jobs/nightly", headers=API).json()["target"]
    assert (shown_http["type"], shown_http["url"]) == ("http", TARGET)


def test_the_form_offers_this_nodes_tasks_and_creates_a_python_job(
    client_with_tasks: TestClient,
) -> None:
    csrf = sign_in(client_with_tasks)
    new = client_with_tasks.get("/ui/new").text
    offered = re.search(r'<select id="task" name="task"[^>]*>(.*?)</select>', new, re.S)
    assert offered is not None
    assert re.findall(r"<option[^>]*>([^<]+)</option>", offered[1]) == ["crawl", "reports.daily"]
    created = client_with_tasks.post("/ui/new", data=python_form(csrf))
    assert created.status_code == 303, created.text
    assert created.headers["location"] == "/ui/jobs/nightly"
    job = client_with_tasks.get("/jobs/nightly", headers=API).json()
    assert job["target"] == {
        "type": "python",
        "task": "crawl",
        "args": ["example.com"],
        "kwargs": {"depth": 2},
        "timeout": 30.0,
    }
    assert job["waiting_for_task"] is None
    page = client_with_tasks.get("/ui/jobs/nightly").text
    assert "task crawl" in page
    assert "Waiting for a node:" not in page


@pytest.mark.parametrize(
    ("changes", "field", "says"),
    [
        ({"kwargs": "{depth: 2}"}, "kwargs", "not JSON"),
        ({"kwargs": "[2]"}, "kwargs", "a JSON object"),
        ({"args": '{"site": "example.com"}'}, "args", "a JSON array"),
        ({"args": "[NaN]"}, "args", "NaN and infinity are not JSON numbers"),
        ({"args": "[" * 100_000 + "]" * 100_000}, "args", "nested too deep"),
        ({"kwargs": '{"depth": "deep"}'}, "kwargs", "valid integer"),
        ({"kwargs": '{"width": 2}'}, "kwargs", "crawl has no such parameter"),
        ({"args": '["example.com", 2, 3]'}, "args", "crawl takes at most 2 positional"),
        ({"args": "[]", "kwargs": "{}"}, "kwargs", "missing: crawl requires it"),
        ({"task": "nope"}, "task", "no task 'nope' is registered"),
        ({"task": "9lives"}, "task", "is not a task name"),
        ({"timeout": "-1"}, "timeout", "greater than 0"),
        ({"target_kind": "ftp"}, "target_kind", "one of http, python"),
    ],
)
def test_a_bad_python_target_is_named_at_its_field_not_a_500(
    client_with_tasks: TestClient, changes: dict[str, str], field: str, says: str
) -> None:
    csrf = sign_in(client_with_tasks)
    response = client_with_tasks.post("/ui/new", data=python_form(csrf, **changes))
    assert response.status_code == 422
    errors = field_errors(response.text)
    assert field in errors, errors
    assert says in errors[field].replace("&#39;", "'")
    assert client_with_tasks.get("/jobs/nightly", headers=API).status_code == 404


def test_an_edit_of_a_python_job_that_no_longer_fits_its_task_is_refused_at_the_field(
    client_with_tasks: TestClient,
) -> None:
    csrf = sign_in(client_with_tasks)
    assert client_with_tasks.post("/ui/new", data=python_form(csrf)).status_code == 303
    edit = client_with_tasks.get("/ui/jobs/nightly/edit").text
    assert re.search(r"<option selected>crawl</option>", edit)
    assert "{&#34;depth&#34;: 2}" in edit
    refused = client_with_tasks.post(
        "/ui/jobs/nightly/edit", data=python_form(csrf, kwargs='{"depth": [1]}')
    )
    assert refused.status_code == 422
    assert "valid integer" in field_errors(refused.text)["kwargs"]
    assert "{&#34;depth&#34;: [1]}" in refused.text  # what was typed is kept
    kept = client_with_tasks.get("/jobs/nightly", headers=API).json()["target"]
    assert kept["kwargs"] == {"depth": 2}
    moved = python_form(csrf, task="reports.daily", args='["example.org"]', kwargs="")
    assert client_with_tasks.post("/ui/jobs/nightly/edit", data=moved).status_code == 303
    after = client_with_tasks.get("/jobs/nightly", headers=API).json()["target"]
    assert (after["task"], after["args"], after["kwargs"]) == ("reports.daily", ["example.org"], {})
