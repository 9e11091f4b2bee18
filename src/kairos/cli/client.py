"""How the ``kairos`` commands reach a running server: a ``kairos.client.Client`` whose
failures end the command with one line saying what to do."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer

from kairos.cli.common import fail
from kairos.client import ApiError, Client, Unauthorized, Unreachable
from kairos.client.calls import DEFAULT_URL

__all__ = ["DEFAULT_URL", "Token", "Url", "connect"]

Url = Annotated[str, typer.Option("--url", envvar="KAIROS_URL", help="The server's base URL")]
Token = Annotated[str | None, typer.Option("--token", envvar="KAIROS_TOKEN", help="A bearer token")]


@contextmanager
def connect(url: str, token: str | None) -> Iterator[Client]:
    """A client of the server at ``url``; an error it raises inside ends the command."""
    try:
        with Client(url, token) as client:
            yield client
    except Unauthorized:
        fail("not authorised: pass a valid token with --token or KAIROS_TOKEN")
    except Unreachable as exc:
        fail(
            f"cannot reach Kairos at {url} (--url or KAIROS_URL): {exc.cause};"
            " is `kairos serve` running there?"
        )
    except ApiError as exc:
        fail(str(exc))
