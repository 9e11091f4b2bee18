"""The one exception tree of Kairos.

Every domain error carries the HTTP status it maps to, so the API renders all of them through a
single handler as ``{"detail": ...}`` and no route builds an ``HTTPException`` for a domain case.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "ApiKeyNotFound",
    "Conflict",
    "Forbidden",
    "InvalidField",
    "InvalidTask",
    "JobExists",
    "JobNotFound",
    "KairosError",
    "LifecycleError",
    "MissingScope",
    "NotFound",
    "NotStarted",
    "RunEnded",
    "RunNotFound",
    "SecretNotFound",
    "SecretsKeyMissing",
    "StoreUnavailable",
    "TooManyAttempts",
    "Unauthorized",
    "UnresolvedReferences",
    "UserExists",
    "UserNotFound",
]


class KairosError(Exception):
    """Root of every error Kairos raises on purpose."""

    status_code: int = 500

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    def body(self) -> Any:
        return self.detail

    def headers(self) -> dict[str, str] | None:
        return None


class InvalidField(KairosError):
    """Input that parsed but means nothing valid; ``loc`` names the field, as pydantic does."""

    status_code = 422

    def __init__(self, loc: Sequence[str | int], message: str, *, source: str = "body") -> None:
        self.loc = tuple(loc)
        self.source = source
        super().__init__(f"{'.'.join(str(p) for p in self.loc)}: {message}")
        self.message = message

    def body(self) -> Any:
        return [{"loc": [self.source, *self.loc], "msg": self.message, "type": "value_error"}]


class InvalidTask(KairosError):
    """A function that cannot be registered as a task under the name given: the name is not a
    task name, is taken by another function, or the function's signature cannot be checked.
    Raised where an application registers its tasks, never for a request."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"task {name!r}: {message}")
        self.name = name


class NotFound(KairosError):
    status_code = 404


class JobNotFound(NotFound):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"Job {job_id!r} not found")
        self.job_id = job_id


class RunNotFound(NotFound):
    def __init__(self, run_id: int) -> None:
        super().__init__(f"Run {run_id} not found")
        self.run_id = run_id


class UserNotFound(NotFound):
    def __init__(self, name: str) -> None:
        super().__init__(f"User {name!r} not found")
        self.name = name


class ApiKeyNotFound(NotFound):
    def __init__(self, key_id: str) -> None:
        super().__init__(f"API key {key_id!r} not found")
        self.key_id = key_id


class SecretNotFound(NotFound):
    def __init__(self, name: str) -> None:
        super().__init__(f"secret {name!r} not found")
        self.name = name


class Conflict(KairosError):
    status_code = 409


class RunEnded(Conflict):
    def __init__(self, run_id: int, status: str) -> None:
        super().__init__(
            f"Run {run_id} has already ended ({status}): only a queued or running run can be"
            " cancelled"
        )
        self.run_id = run_id


class UserExists(Conflict):
    def __init__(self, name: str) -> None:
        super().__init__(f"User {name!r} already exists")
        self.name = name


class JobExists(Conflict):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"Job {job_id!r} already exists; use PUT /jobs/{job_id} to replace it")
        self.job_id = job_id


class SecretsKeyMissing(Conflict):
    """Secrets cannot be kept: the server has no key to encrypt them with."""

    def __init__(self) -> None:
        super().__init__(
            "this server keeps no secrets: set KAIROS_SECRETS_KEY in its environment "
            '(one made by: python -c "import secrets; print(secrets.token_urlsafe(32))")'
        )


class UnresolvedReferences(InvalidField):
    """References in a spec that this server cannot resolve: each problem with its field."""

    def __init__(self, problems: Sequence[tuple[Sequence[str | int], str]]) -> None:
        super().__init__(problems[0][0], problems[0][1])
        self.problems = [(tuple(loc), message) for loc, message in problems]
        if len(self.problems) > 1:
            self.detail = "; ".join(
                f"{'.'.join(str(p) for p in loc)}: {message}" for loc, message in self.problems
            )
            self.args = (self.detail,)

    def body(self) -> Any:
        return [
            {"loc": [self.source, *loc], "msg": message, "type": "value_error"}
            for loc, message in self.problems
        ]


class Unauthorized(KairosError):
    status_code = 401

    def headers(self) -> dict[str, str] | None:
        return {"WWW-Authenticate": "Bearer"}


class Forbidden(KairosError):
    status_code = 403


class MissingScope(Forbidden):
    def __init__(self, scope: str) -> None:
        super().__init__(f"This token lacks the {scope!r} scope that this request needs")
        self.scope = scope

    def headers(self) -> dict[str, str] | None:
        return {"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{self.scope}"'}


class TooManyAttempts(KairosError):
    """Sign-ins refused for a while after repeated failures."""

    status_code = 429

    def __init__(self, retry_after_s: float) -> None:
        self.retry_after_s = max(1, round(retry_after_s + 0.5))
        super().__init__(
            "Too many failed sign-ins for this user or from this address; "
            f"try again in {self.retry_after_s} s"
        )

    def headers(self) -> dict[str, str] | None:
        return {"Retry-After": str(self.retry_after_s)}


class StoreUnavailable(KairosError):
    """The database cannot be reached; callers may retry later."""

    status_code = 503


class LifecycleError(KairosError):
    """An embedded ``Kairos`` used out of order: started while started, its router asked for
    twice. A mistake in the code that embeds it, said when it happens."""


class NotStarted(LifecycleError):
    """A request or a call reached an embedded ``Kairos`` that is not running."""

    status_code = 503

    def __init__(self) -> None:
        super().__init__(
            "Kairos is not started: pass kairos.lifespan to FastAPI(lifespan=...), enter it in "
            "the app's own lifespan, or await kairos.start()"
        )
