"""Who may do what: scopes, users, API keys, and the audit log's records. Pure data."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "ALL_SCOPES",
    "MAX_KEY_LIFETIME_S",
    "SCOPE_HELP",
    "Actor",
    "ApiKeyRecord",
    "AuditRecord",
    "Principal",
    "Scope",
    "UserRecord",
    "parse_scopes",
    "scope_text",
]

MAX_KEY_LIFETIME_S = 10 * 365 * 86_400
"""The longest ``expires_in`` of an API key (ten years); a key meant to last is made without."""


class Scope(StrEnum):
    """What a token may do. ``admin`` includes every other scope."""

    JOBS_READ = "jobs:read"
    JOBS_WRITE = "jobs:write"
    RUNS_READ = "runs:read"
    ADMIN = "admin"


ALL_SCOPES = frozenset(Scope)

SCOPE_HELP = {
    Scope.JOBS_READ: "Read jobs and preview triggers",
    Scope.JOBS_WRITE: "Create, replace, change, pause, resume, run and delete jobs",
    Scope.RUNS_READ: "Read run history",
    Scope.ADMIN: "Everything, and manage API keys, read the audit log and the cluster",
}


def parse_scopes(names: str | Iterable[str]) -> frozenset[Scope]:
    """Scopes from names (a space- or comma-separated string, or a list); raise ``ValueError``
    naming an unknown one."""
    if isinstance(names, str):
        names = names.replace(",", " ").split()
    scopes = set()
    for name in names:
        try:
            scopes.add(Scope(name))
        except ValueError:
            known = ", ".join(scope.value for scope in Scope)
            raise ValueError(f"unknown scope {name!r} (known: {known})") from None
    return frozenset(scopes)


def scope_text(scopes: Iterable[Scope]) -> str:
    """Scopes as stored and sent in tokens: sorted, space-separated."""
    return " ".join(sorted(scope.value for scope in scopes))


@dataclass(frozen=True, slots=True)
class Principal:
    """Whoever a request's token stands for, and what it may do."""

    name: str
    """As the audit log names it (see ``Actor.name``)."""
    scopes: frozenset[Scope]

    def allows(self, scope: Scope) -> bool:
        return scope in self.scopes or Scope.ADMIN in self.scopes


@dataclass(frozen=True, slots=True)
class Actor:
    """Who makes a change, and when: what the audit log records with it."""

    name: str
    """``user:<name>``, ``key:<id>``, ``admin-token``, ``cli:<os user>``, ``circuit-breaker``,
    or ``system`` for changes made by code embedding Kairos."""
    at_us: int


@dataclass(frozen=True, slots=True)
class UserRecord:
    name: str
    password_hash: str
    """An argon2 hash (PHC string): never the password."""
    scopes: frozenset[Scope]
    generation: int
    """Raised by every password or scope change: tokens issued before it stop working."""
    created_us: int
    updated_us: int


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    id: str
    """The public part of the key, used to find it; the secret part is stored hashed."""
    name: str
    secret_hash: str
    scopes: frozenset[Scope]
    created_us: int
    created_by: str
    expires_us: int | None = None
    revoked_us: int | None = None

    def usable(self, now_us: int) -> bool:
        if self.revoked_us is not None:
            return False
        return self.expires_us is None or now_us < self.expires_us


@dataclass(frozen=True, slots=True)
class AuditRecord:
    id: int
    at_us: int
    actor: str
    action: str
    """``job.create``, ``job.replace``, ``job.update``, ``job.pause``, ``job.resume``,
    ``job.delete``, ``job.run``, ``jobs.apply`` (its target ``jobs``), ``key.create``,
    ``key.revoke``, ``user.add``, ``user.remove``, ``user.passwd``."""
    target: str
    """The job id, key id or user name the change was made to."""
    detail: str | None = None
    """JSON: what changed (a job's new definition with its secrets masked, a pause reason...)."""
