"""``EngineOptions`` carry exactly what ``Settings`` say, and ``Scheduler.from_settings`` builds
the engine ``Settings`` describe."""

from __future__ import annotations

import os

import pytest

from kairos.engine import EngineOptions, Scheduler
from kairos.engine.hosts import HostLimits
from kairos.models import HostLimitSpec, Webhook
from kairos.settings import Settings
from kairos.store.memory import MemoryStore
from kairos.store.sqlite import SQLiteStore


@pytest.fixture(autouse=True)
def no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in os.environ:
        if name.startswith("KAIROS_"):
            monkeypatch.delenv(name)


def test_the_defaults_are_the_settings_defaults() -> None:
    assert EngineOptions.from_settings(Settings()) == EngineOptions()


def test_every_engine_setting_is_passed_on() -> None:
    settings = Settings(
        max_concurrent_runs=7,
        claim_batch_size=8,
        claim_ahead=0.5,
        max_poll_interval=9,
        shutdown_grace=3,
        node_lease=11,
        heartbeat_interval=1,
        interrupted_retries=4,
        default_http_timeout=12,
        runs_keep_per_job=13,
        runs_max_age=14,
        audit_max_age=15,
        max_consecutive_failures=16,
        on_failure_url="https://hooks.example/failure",
        on_failure_secret="s3cret",
        on_pause_url="https://hooks.example/pause",
        host_max_concurrency=17,
        host_limits={"billing:8443": {"max_concurrency": 2, "adaptive": False}},
        block_private_networks=True,
        allowed_networks="10.0.0.0/8, localhost",
    )
    assert EngineOptions.from_settings(settings) == EngineOptions(
        max_concurrent=7,
        claim_batch=8,
        claim_ahead_s=0.5,
        max_poll_s=9,
        shutdown_grace_s=3,
        node_lease_s=11,
        heartbeat_s=1,
        interrupted_retries=4,
        default_timeout_s=12,
        runs_keep_per_job=13,
        runs_max_age_s=14,
        audit_max_age_s=15,
        max_consecutive_failures=16,
        on_failure=Webhook.model_validate(
            {"url": "https://hooks.example/failure", "secret": "s3cret"}
        ),
        on_pause=Webhook.model_validate({"url": "https://hooks.example/pause"}),
        host_max_concurrency=17,
        host_limits={"billing:8443": HostLimitSpec(max_concurrency=2, adaptive=False)},
        block_private_networks=True,
        allowed_networks=("10.0.0.0/8", "localhost"),
    )


def test_host_limits_fall_back_to_the_host_maximum() -> None:
    options = EngineOptions(
        host_max_concurrency=17,
        host_limits={
            "billing": HostLimitSpec(max_per_second=5),
            "search:443": HostLimitSpec(max_concurrency=3, adaptive=False),
        },
    )
    gates = options.host_gates()
    assert gates.host("billing:8443").limits == HostLimits(17, 5)
    assert gates.host("search:443").limits == HostLimits(3, None, adaptive=False)
    assert gates.host("other:80").limits == HostLimits(17)


def test_the_guard_blocks_what_the_options_say() -> None:
    guard = EngineOptions(block_private_networks=True, allowed_networks=("10.0.0.0/8",)).guard()
    assert guard.refusal("db", "192.168.1.5") is not None
    assert guard.refusal("ops", "10.1.2.3") is None
    assert EngineOptions().guard().refusal("db", "192.168.1.5") is None


def test_from_settings_builds_the_store_the_url_names_and_applies_the_options() -> None:
    scheduler = Scheduler.from_settings(Settings(database_url="sqlite://", node_lease=7))
    assert isinstance(scheduler.store, SQLiteStore)
    assert scheduler.node_lease_s == 7
    in_memory = Scheduler.from_settings(Settings(database_url="memory://"))
    assert isinstance(in_memory.store, MemoryStore)
