"""Settings read from the environment: lists and ranges, and clear errors for bad values."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from kairos.settings import Settings


def test_retry_statuses_take_codes_and_ranges(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().retry_statuses == frozenset({429, *range(500, 600)})
    monkeypatch.setenv("KAIROS_RETRY_STATUSES", "408, 429,502-504")
    assert Settings().retry_statuses == frozenset({408, 429, 502, 503, 504})


@pytest.mark.parametrize(
    ("value", "message"),
    [("5xx", "'5xx' is neither a status code"), ("500-700", "run from 100 to 599")],
)
def test_bad_retry_statuses_are_named(
    monkeypatch: pytest.MonkeyPatch, value: str, message: str
) -> None:
    monkeypatch.setenv("KAIROS_RETRY_STATUSES", value)
    with pytest.raises(ValidationError, match="retry_statuses") as raised:
        Settings()
    assert message in str(raised.value)


def test_the_allow_list_setting_is_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAIROS_BLOCK_PRIVATE_NETWORKS", "true")
    monkeypatch.setenv("KAIROS_ALLOWED_NETWORKS", "10.0.0.0/8, billing.internal ,")
    settings = Settings()
    assert settings.block_private_networks is True
    assert settings.allowed_networks == ["10.0.0.0/8", "billing.internal"]


def test_host_limits_are_json_by_host(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().host_limits == {}
    monkeypatch.setenv(
        "KAIROS_HOST_LIMITS", '{"billing.internal:8443": {"max_concurrency": 8, "adaptive": false}}'
    )
    [(key, limits)] = Settings().host_limits.items()
    assert (key, limits.max_concurrency, limits.max_per_second, limits.adaptive) == (
        "billing.internal:8443",
        8,
        None,
        False,
    )
    monkeypatch.setenv("KAIROS_HOST_LIMITS", '{"h": {"max_concurrency": 0}}')
    with pytest.raises(ValidationError, match=r"host_limits\.h\.max_concurrency"):
        Settings()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("KAIROS_MAX_CONNECTIONS", "0"),
        ("KAIROS_HEADER_TIMEOUT", "0"),
        ("KAIROS_BODY_TIMEOUT", "-1"),
        ("KAIROS_KEEP_ALIVE_TIMEOUT", "0.5"),
    ],
)
def test_bad_connection_limits_are_named(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError) as raised:
        Settings()
    assert raised.value.errors()[0]["loc"] == (variable.removeprefix("KAIROS_").lower(),)


def test_request_bodies_are_limited_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings()
    assert (settings.max_request_bytes, settings.max_batch_bytes) == (1_048_576, 16_777_216)
    monkeypatch.setenv("KAIROS_MAX_REQUEST_BYTES", "65536")
    assert Settings().max_request_bytes == 65_536


@pytest.mark.parametrize(
    ("given", "url"),
    [
        ("kairos.db", "sqlite:///kairos.db"),
        ("./data/k.db", "sqlite:///./data/k.db"),
        ("/var/lib/kairos/k.db", "sqlite:////var/lib/kairos/k.db"),
        ("sqlite:///k.db", "sqlite:///k.db"),
        ("postgresql://u@h:5432/db", "postgresql://u@h:5432/db"),
        ("memory://", "memory://"),
    ],
)
def test_the_database_is_a_url_or_a_sqlite_files_path(
    monkeypatch: pytest.MonkeyPatch, given: str, url: str
) -> None:
    assert Settings(database_url=given).database_url == url
    monkeypatch.setenv("KAIROS_DATABASE_URL", given)
    assert Settings().database_url == url
