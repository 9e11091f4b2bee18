"""Configuration: one ``Settings`` object, read from ``KAIROS_*`` variables and CLI flags."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from kairos.models import HostLimitSpec, Webhook

__all__ = ["Settings", "database_url_of"]

_URL_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


def database_url_of(text: str) -> str:
    """A database URL as given, or a plain file path (``kairos.db``, ``/var/lib/kairos.db``,
    anything without ``scheme://``) as the URL of that SQLite file."""
    if not text or _URL_SCHEME.match(text):
        return text
    return f"sqlite:///{text}"


class Settings(BaseSettings):
    """Every setting maps to a ``KAIROS_<NAME>`` environment variable; CLI flags override them."""

    model_config = SettingsConfigDict(env_prefix="KAIROS_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    database_url: str = "sqlite:///./kairos.db"
    """A SQLAlchemy-style URL (``sqlite:///kairos.db``, ``postgresql://...``, ``memory://``),
    ``redis://...`` (``rediss://`` with TLS) or the plain path of a SQLite file."""
    redis_prefix: str = Field(default="kairos:", min_length=1, max_length=200)
    """The start of every key's name in a Redis store: installations sharing one Redis each
    take their own."""
    max_connections: int = Field(default=1000, ge=1, le=1_000_000)
    """Client connections ``kairos serve`` keeps open at once; one more is answered 503 and
    closed. Fewer where the open-file limit has no room for so many."""
    header_timeout: float = Field(default=10.0, gt=0, le=3600)
    """Seconds a client has to send a request's line and headers, from when it connects (or
    begins its next request): then its connection is closed."""
    body_timeout: float = Field(default=30.0, gt=0, le=3600)
    """Seconds a request's body may pause before its connection is closed."""
    keep_alive_timeout: int = Field(default=5, ge=1, le=3600)
    """Seconds an idle connection is kept open after an answer (whole seconds: uvicorn's)."""
    admin_token: str | None = Field(default=None, repr=False)
    jwt_secret: str | None = Field(default=None, repr=False, min_length=32)
    """The key that signs users' access tokens (HMAC-SHA256). Unset: one is generated at the
    first start and kept in the database, shared by every replica."""
    secrets_key: str | None = Field(default=None, repr=False, min_length=16)
    """The key the secrets of ``/secrets`` are encrypted with (AES-256-GCM, under a key derived
    from it); every replica needs the same one. Unset: no secret can be set or resolved."""
    token_ttl: int = Field(default=3600, ge=60, le=30 * 86_400)
    """Seconds a user's access token is valid."""
    audit_max_age: float = Field(default=365 * 86_400, gt=0, le=100 * 366 * 86_400)
    """Seconds an audit record is kept."""

    max_concurrent_runs: int = Field(default=500, ge=1, le=100_000)
    """Global cap on runs in flight in this process. Also how many due fires one claim may
    start: with fewer slots, a replica that falls behind claims in small batches, and the
    claims' fixed cost keeps it behind."""
    claim_batch_size: int = Field(default=500, ge=1, le=10_000)
    """How many due fires one claim transaction takes at most."""
    claim_ahead: float = Field(default=0.05, ge=0, le=1)
    """Fires due within this many seconds are claimed together and each called on its due time:
    fewer, larger claims, and calls that start on time instead of after their claim."""
    max_poll_interval: float = Field(default=5.0, gt=0, le=3600)
    """Longest the dispatcher sleeps without looking at the store (safety net for wake-ups)."""
    shutdown_grace: float = Field(default=10.0, ge=0, le=3600)
    """On shutdown, how long running calls may finish before they are recorded as interrupted."""
    node_lease: float = Field(default=10.0, gt=0, le=3600)
    """Seconds without a heartbeat after which a node is dead and its runs are taken over."""
    heartbeat_interval: float = Field(default=2.0, gt=0, le=600)
    interrupted_retries: int = Field(default=1, ge=0, le=100)
    """How many more attempts a run gets when the node running it dies (0: none)."""
    max_request_bytes: int = Field(default=1_048_576, ge=1_024, le=1_073_741_824)
    """The largest request body the API takes (a larger one is a 413), but for batches."""
    max_batch_bytes: int = Field(default=16_777_216, ge=1_024, le=1_073_741_824)
    """The largest body of ``POST /jobs:batch``, which carries up to 10,000 jobs."""
    response_excerpt_bytes: int = Field(default=4096, ge=0, le=1_048_576)
    """How much of a target's response body each run keeps."""
    default_http_timeout: float = Field(default=30.0, gt=0, le=86_400)
    connect_timeout: float = Field(default=5.0, gt=0, le=3600)
    """Seconds a call may take to connect to its target (within its ``timeout``). A call that
    could not connect was never sent, so it is tried again within the fire's misfire grace."""
    host_max_concurrency: int = Field(default=128, ge=1, le=100_000)
    """Most calls in flight to one target host (``host:port``) from this process. Below it,
    the limit adapts to how the host answers; ``host_limits`` overrides it per host."""
    host_limits: dict[str, HostLimitSpec] = {}
    """Limits of particular hosts, as JSON: ``{"billing.internal:8443": {"max_concurrency": 8,
    "max_per_second": 50, "adaptive": true}}``; a key without a port applies to every port."""
    http_workers: int | None = Field(default=None, ge=0, le=64)
    """Worker processes that make the HTTP calls (0: this process makes them), so that the
    scheduler's process keeps its core for the schedule. Unset: ``kairos serve`` starts two
    where it may use two cores or more (``executors.default_http_workers``); an application
    that builds the API itself starts none."""
    tasks: Annotated[tuple[str, ...], NoDecode] = ()
    """Modules to import at start whose task registries (a ``Kairos`` object, or a
    ``TaskRegistry``, at their top level) give this node its python tasks; comma-separated."""
    task_threads: int = Field(default=8, ge=1, le=1024)
    """Threads that run python targets' plain (not ``async``) functions at once; a function
    past its timeout keeps its thread until it returns."""
    retry_statuses: Annotated[frozenset[int], NoDecode] = frozenset({429, *range(500, 600)})
    """HTTP statuses after which a job with a ``retry`` policy tries again, as a list of codes and
    ranges: ``429,500-599``. Timeouts and lost connections are always worth another try."""
    runs_keep_per_job: int = Field(default=1000, ge=1, le=1_000_000)
    """Finished runs kept per job (the newest); a job's ``history.max_runs`` overrides it."""
    runs_max_age: float = Field(default=30 * 86_400, gt=0, le=100 * 366 * 86_400)
    """Seconds a finished run is kept; a job's ``history.max_age`` overrides it."""
    max_consecutive_failures: int | None = Field(default=None, ge=1, le=10_000)
    """The circuit breaker of jobs created without ``max_consecutive_failures``: pause a job
    after this many failed fires in a row. Unset: off."""
    on_failure_url: str | None = None
    """A webhook told of every failed fire of every job, besides the job's own ``on_failure``."""
    on_failure_secret: str | None = Field(default=None, repr=False)
    on_pause_url: str | None = None
    """A webhook told whenever the circuit breaker pauses a job, besides the job's own."""
    on_pause_secret: str | None = Field(default=None, repr=False)
    block_private_networks: bool = False
    """Refuse target calls to private, loopback and other non-public addresses. Link-local and
    cloud metadata addresses are refused whatever this says."""
    allowed_networks: Annotated[list[str], NoDecode] = []
    """Exceptions to ``block_private_networks``: networks and host names, comma-separated."""
    trusted_proxies: Annotated[list[str], NoDecode] = []
    """The reverse proxies in front of the server, as addresses and networks, comma-separated
    (``127.0.0.1,10.0.0.0/8``): from them, and from no other client, ``X-Forwarded-Prefix`` is
    the path the UI and API are served under, and ``X-Forwarded-For`` and
    ``X-Forwarded-Proto`` name the client and its scheme. Empty: no ``X-Forwarded-Prefix`` is
    honoured (and the server's own defaults apply to the other two)."""
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = "text"
    """``json``: one JSON object per line, for log collectors."""

    @field_validator("database_url")
    @classmethod
    def _url_or_path(cls, value: str) -> str:
        return database_url_of(value)

    @field_validator("allowed_networks", "tasks", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _networks(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list):
            for entry in value:
                try:
                    ipaddress.ip_network(str(entry), strict=False)
                except ValueError:
                    raise ValueError(f"{entry!r} is neither an address nor a network") from None
        return value

    @field_validator("retry_statuses", mode="before")
    @classmethod
    def _status_list(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        codes: set[int] = set()
        for part in filter(None, (p.strip() for p in value.split(","))):
            low, _, high = part.partition("-")
            try:
                first, last = int(low), int(high or low)
            except ValueError:
                message = f"{part!r} is neither a status code nor a range like 500-599"
                raise ValueError(message) from None
            if not 100 <= first <= last <= 599:
                raise ValueError(f"{part!r}: status codes run from 100 to 599")
            codes.update(range(first, last + 1))
        return frozenset(codes)

    def webhook(self, event: str) -> Webhook | None:
        """The server's own webhook for ``failure`` or ``pause`` events, if one is set."""
        url = self.on_failure_url if event == "failure" else self.on_pause_url
        secret = self.on_failure_secret if event == "failure" else self.on_pause_secret
        return None if url is None else Webhook(url=url, secret=secret)

    @model_validator(mode="after")
    def _webhooks_are_valid(self) -> Settings:
        for event in ("failure", "pause"):
            try:
                self.webhook(event)
            except ValidationError as exc:
                raise ValueError(f"on_{event}_url: {exc.errors()[0]['msg']}") from None
        return self
