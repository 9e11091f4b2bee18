"""The deployment files in ``deploy/`` read as their tools would read them: the Dockerfile's
stages, the compose file's services and mounts, the systemd unit's directives (and
``systemd-analyze verify`` where it is installed), the alert rules' structure and PromQL.
Whether the metrics they name exist is tested against a real scrape in
``tests/integration/test_deploy_metrics.py``; the image's install and start commands run in
``tests/e2e/test_deploy_image.py``."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import promql_parser as promql
import pytest

from kairos.settings import Settings
from tests.support.deploy import (
    DEPLOY,
    REPO,
    Stage,
    kairos_variables,
    load_yaml,
    read_dockerfile,
    read_unit,
)

SETTINGS_VARIABLES = {f"KAIROS_{name.upper()}" for name in Settings.model_fields}
KAIROS_SERVICES = ("kairos-1", "kairos-2")


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return read_dockerfile(DEPLOY / "Dockerfile")[1]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = load_yaml(DEPLOY / "docker-compose.yml")
    return loaded


@pytest.fixture(scope="module")
def unit() -> dict[str, list[tuple[str, str]]]:
    return read_unit(DEPLOY / "kairos.service")


def service_settings(unit: dict[str, list[tuple[str, str]]]) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for key, value in unit["Service"]:
        values.setdefault(key, []).append(value)
    return values


def test_every_kairos_variable_the_deploy_files_name_is_a_setting() -> None:
    files = [path for path in DEPLOY.rglob("*") if path.is_file()]
    named = {path.name: kairos_variables(path.read_text()) for path in files}
    assert named["Dockerfile"]
    assert named["docker-compose.yml"]
    assert named["kairos.service"]
    unknown = {name: sorted(found - SETTINGS_VARIABLES) for name, found in named.items()}
    assert {name: found for name, found in unknown.items() if found} == {}


def test_the_image_is_built_from_the_source_tree_and_runs_as_a_user_of_its_own(
    stages: list[Stage],
) -> None:
    build, runtime = stages
    assert build.name == "build"
    assert runtime.base == build.base
    assert runtime.base.endswith("-slim")
    (build_run,) = build.all("RUN")
    assert build_run.arguments.endswith(" ."), "the wheel is built from the source tree"
    ignored = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    assert {".git", ".venv", "**/__pycache__"} <= set(ignored)
    copied = [c.arguments.split()[:-1] for c in build.all("COPY")]
    assert all((REPO / source).exists() for sources in copied for source in sources)
    installs = [r for r in runtime.all("RUN") if "pip install" in r.arguments]
    assert len(installs) == 1
    assert "--mount=type=bind,from=build" in installs[0].flags[0]
    (user,) = runtime.all("USER")
    assert user.arguments not in ("root", "0")
    assert runtime.exec_form("CMD") == ["kairos", "serve"]


def test_the_image_serves_on_its_exposed_port_and_keeps_sqlite_in_its_volume(
    stages: list[Stage],
) -> None:
    runtime = stages[-1]
    env = runtime.env()
    Settings.model_validate(
        {k.removeprefix("KAIROS_").lower(): v for k, v in env.items() if k.startswith("KAIROS_")}
    )
    assert env["KAIROS_HOST"] == "0.0.0.0"
    assert [e.arguments for e in runtime.all("EXPOSE")] == [env["KAIROS_PORT"]]
    sqlite_dir = str(Path(env["KAIROS_DATABASE_URL"].removeprefix("sqlite:///")).parent)
    assert [v.arguments for v in runtime.all("VOLUME")] == [sqlite_dir]
    assert runtime.all("WORKDIR")[-1].arguments == sqlite_dir


def test_the_healthcheck_asks_readyz_with_python(stages: list[Stage]) -> None:
    runtime = stages[-1]
    command = runtime.exec_form("HEALTHCHECK")
    assert command[:2] == ["python", "-c"]
    assert "/readyz" in command[2]
    assert "KAIROS_PORT" in command[2]
    compile(command[2], "HEALTHCHECK", "exec")
    flags = dict(f.removeprefix("--").split("=") for f in runtime.all("HEALTHCHECK")[0].flags)
    assert set(flags) == {"interval", "timeout", "start-period", "retries"}


def test_compose_runs_postgres_two_replicas_prometheus_and_grafana(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    assert set(services) == {"postgres", *KAIROS_SERVICES, "prometheus", "grafana"}
    for name, service in services.items():
        image = service.get("image", "")
        assert re.fullmatch(r"[\w./-]+:(?!latest$)[\w.-]+", image), f"{name}: pin the image"
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    for name in KAIROS_SERVICES:
        service = services[name]
        build = service["build"]
        assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == DEPLOY / "Dockerfile"
        assert service["depends_on"] == {"postgres": {"condition": "service_healthy"}}
        assert service["environment"]["KAIROS_DATABASE_URL"].startswith("postgresql://")
        assert "@postgres:5432/" in service["environment"]["KAIROS_DATABASE_URL"]


def test_compose_gives_running_calls_their_shutdown_grace(compose: dict[str, Any]) -> None:
    for name in KAIROS_SERVICES:
        service = compose["services"][name]
        grace = float(service["environment"]["KAIROS_SHUTDOWN_GRACE"])
        assert duration_s(service["stop_grace_period"]) > grace
        assert service["init"] is True, "a process of its own reaps the HTTP workers' children"


def test_compose_mounts_files_that_exist_and_interpolates_nothing_unset(
    compose: dict[str, Any],
) -> None:
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name} mounts {source}"
    text = (DEPLOY / "docker-compose.yml").read_text()
    for expression in re.findall(r"\$\{([^}]*)\}", text):
        assert re.fullmatch(r"\w+(:-.*|:\?.+)", expression), f"${{{expression}}} needs a default"


def test_prometheus_scrapes_each_replica_and_loads_the_mounted_alert_rules(
    compose: dict[str, Any], stages: list[Stage]
) -> None:
    config = load_yaml(DEPLOY / "prometheus" / "prometheus.yml")
    (scrape,) = config["scrape_configs"]
    port = stages[-1].env()["KAIROS_PORT"]
    targets = [t for static in scrape["static_configs"] for t in static["targets"]]
    assert targets == [f"{name}:{port}" for name in KAIROS_SERVICES]
    assert scrape["metrics_path"] == "/metrics"
    mounts = mounted(compose["services"]["prometheus"])
    assert [mounts[path] for path in config["rule_files"]] == ["./prometheus/alerts.yml"]
    assert mounts["/etc/prometheus/prometheus.yml"] == "./prometheus/prometheus.yml"


def test_grafana_provisions_prometheus_and_the_dashboard(compose: dict[str, Any]) -> None:
    mounts = mounted(compose["services"]["grafana"])
    provisioning = DEPLOY / mounts["/etc/grafana/provisioning"]
    (datasource,) = load_yaml(provisioning / "datasources" / "prometheus.yml")["datasources"]
    assert datasource["type"] == "prometheus"
    assert datasource["isDefault"] is True
    assert datasource["url"] == "http://prometheus:9090"
    (provider,) = load_yaml(provisioning / "dashboards" / "kairos.yml")["providers"]
    dashboards = [m for m in mounts if Path(m).parent == Path(provider["options"]["path"])]
    assert [mounts[m] for m in dashboards] == ["./grafana-dashboard.json"]


def mounted(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> host path of a service's bind mounts."""
    pairs = (volume.split(":")[:2] for volume in service["volumes"])
    return {target: source for source, target in pairs if source.startswith(".")}


def duration_s(text: str) -> float:
    return promql.parse_duration(text).total_seconds()


ALERTS = ("ReplicaDown", "FiresFailing", "FireLagHigh", "BreakerTripped", "StoreErrors")


def test_alert_rules_are_well_formed_and_cover_the_failures_that_matter() -> None:
    (group,) = load_yaml(DEPLOY / "prometheus" / "alerts.yml")["groups"]
    rules = group["rules"]
    names = [rule["alert"] for rule in rules]
    assert len(set(names)) == len(names)
    assert {f"Kairos{alert}" for alert in ALERTS} <= set(names)
    for rule in rules:
        assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        promql.parse(rule["expr"])
        assert promql.parse_duration(rule["for"]) >= timedelta(minutes=1)
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert set(rule["annotations"]) == {"summary", "description"}


def test_the_unit_runs_kairos_serve_hardened(unit: dict[str, list[tuple[str, str]]]) -> None:
    service = service_settings(unit)
    assert service["ExecStart"][0].endswith("/bin/kairos serve")
    hardened = {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "DynamicUser": "yes",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
    }
    assert {key: service[key][-1] for key in hardened} == hardened
    assert service["EnvironmentFile"][0].startswith("-/etc/kairos/")
    assert unit["Install"] == [("WantedBy", "multi-user.target")]


def test_the_unit_may_write_its_database_and_nothing_else(
    unit: dict[str, list[tuple[str, str]]],
) -> None:
    service = service_settings(unit)
    env = dict(e.split("=", 1) for e in service["Environment"])
    database = Path(env["KAIROS_DATABASE_URL"].removeprefix("sqlite:///"))
    assert service["ReadWritePaths"] == [str(database.parent)]
    assert service["StateDirectory"] == [database.parent.name]
    assert Path(service["WorkingDirectory"][0]) == database.parent
    grace = Settings.model_fields["shutdown_grace"].default
    assert duration_s(service["TimeoutStopSec"][0]) > grace


SYSTEMD_ANALYZE = shutil.which("systemd-analyze")


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed")
def test_systemd_knows_every_directive_of_the_unit(tmp_path: Path) -> None:
    assert SYSTEMD_ANALYZE is not None
    # verify insists that ExecStart's program exists: point it at this environment's kairos.
    kairos = Path(sys.executable).parent / "kairos"
    text = (DEPLOY / "kairos.service").read_text().replace("/opt/kairos/bin/kairos", str(kairos))
    copy = tmp_path / "kairos.service"
    copy.write_text(text)
    verify = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", str(copy)], capture_output=True, text=True, timeout=30
    )
    assert (verify.returncode, verify.stdout + verify.stderr) == (0, "")
    security = subprocess.run(
        [SYSTEMD_ANALYZE, "security", "--offline=true", "--no-pager", str(copy)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    exposure = re.search(r"Overall exposure level for kairos.service: ([\d.]+)", security.stdout)
    assert exposure is not None, security.stdout + security.stderr
    assert float(exposure[1]) <= 2.0
