"""``EngineOptions``: what the engine is told, as plain values (no environment is read here)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from kairos.engine.hosts import HostGates, HostLimits
from kairos.executors.guard import OutboundGuard
from kairos.models import HostLimitSpec, Webhook
from kairos.settings import Settings

__all__ = ["EngineOptions"]


@dataclass(frozen=True, slots=True)
class EngineOptions:
    """The engine's limits and timings; the defaults are ``Settings``'s (see there for each)."""

    max_concurrent: int = 500
    claim_batch: int = 500
    claim_ahead_s: float = 0.05
    max_poll_s: float = 5.0
    shutdown_grace_s: float = 10.0
    node_lease_s: float = 10.0
    heartbeat_s: float = 2.0
    interrupted_retries: int = 1
    default_timeout_s: float = 30.0
    runs_keep_per_job: int = 1000
    runs_max_age_s: float = 30 * 86_400
    audit_max_age_s: float = 365 * 86_400
    max_consecutive_failures: int | None = None
    on_failure: Webhook | None = None
    on_pause: Webhook | None = None
    host_max_concurrency: int = 128
    host_limits: Mapping[str, HostLimitSpec] = field(default_factory=dict)
    block_private_networks: bool = False
    secrets_key: str | None = field(default=None, repr=False)
    """Encrypts the named secrets; None: none can be set or resolved."""
    allowed_networks: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> EngineOptions:
        return cls(
            max_concurrent=settings.max_concurrent_runs,
            claim_batch=settings.claim_batch_size,
            claim_ahead_s=settings.claim_ahead,
            max_poll_s=settings.max_poll_interval,
            shutdown_grace_s=settings.shutdown_grace,
            node_lease_s=settings.node_lease,
            heartbeat_s=settings.heartbeat_interval,
            interrupted_retries=settings.interrupted_retries,
            default_timeout_s=settings.default_http_timeout,
            runs_keep_per_job=settings.runs_keep_per_job,
            runs_max_age_s=settings.runs_max_age,
            audit_max_age_s=settings.audit_max_age,
            max_consecutive_failures=settings.max_consecutive_failures,
            on_failure=settings.webhook("failure"),
            on_pause=settings.webhook("pause"),
            host_max_concurrency=settings.host_max_concurrency,
            host_limits=dict(settings.host_limits),
            block_private_networks=settings.block_private_networks,
            allowed_networks=tuple(settings.allowed_networks),
            secrets_key=settings.secrets_key,
        )

    def guard(self) -> OutboundGuard:
        """The outbound guard of the engine's own calls (webhooks)."""
        return OutboundGuard(block_private=self.block_private_networks, allow=self.allowed_networks)

    def host_gates(self) -> HostGates:
        most = self.host_max_concurrency
        overrides = {
            key: HostLimits(spec.max_concurrency or most, spec.max_per_second, spec.adaptive)
            for key, spec in self.host_limits.items()
        }
        return HostGates(HostLimits(most), overrides)
