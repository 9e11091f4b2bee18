"""What the API's routes and the UI's pages work with, and how they find it.

A ``Context`` holds the running parts of one Kairos (its scheduler, authenticator, accounts and
metrics). A ``Binding`` is the slot through which the routes and pages of one Kairos reach its
context: filled when it starts, emptied when it stops. Each request carries the context in its
ASGI scope under ``CONTEXT_KEY``, put there by the route or app that serves it, never read from
``request.app.state``: an app that embeds Kairos is not Kairos's own.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from starlette.requests import HTTPConnection

from kairos.auth import Accounts, Authenticator
from kairos.engine import Scheduler
from kairos.errors import NotStarted
from kairos.metrics import SchedulerCollector

__all__ = ["CONTEXT_KEY", "Binding", "Context", "context_of"]

CONTEXT_KEY = "kairos.context"


@dataclass(frozen=True, slots=True)
class Context:
    """The running parts of one Kairos, as its routes and pages see them."""

    scheduler: Scheduler
    authenticator: Authenticator
    accounts: Accounts
    metrics: CollectorRegistry
    collector: SchedulerCollector


class Binding:
    """Where the routes and pages of one Kairos find its ``Context``."""

    __slots__ = ("context", "host_auth")

    def __init__(self) -> None:
        self.context: Context | None = None
        self.host_auth = False
        """True when the app's own dependency says who the caller is, not Kairos's tokens."""

    def require(self) -> Context:
        """The context; ``NotStarted`` (a 503 for a request) while Kairos is not running."""
        if self.context is None:
            raise NotStarted()
        return self.context


def context_of(connection: HTTPConnection) -> Context:
    """The context of the Kairos serving this request (the route or app serving it put it
    in the scope)."""
    context: Context = connection.scope[CONTEXT_KEY]
    return context
