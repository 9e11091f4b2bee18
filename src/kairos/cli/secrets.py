"""``kairos secrets ...``: the named secrets of a running server (``/secrets``, admin only).

A value is never an argument (it would land in the shell's history): it is read from standard
input, from a prompt, or from an environment variable named by ``--from-env``.
"""

from __future__ import annotations

import getpass
import os
import sys
from typing import Annotated, NoReturn

import typer
from rich.table import Table

from kairos.cli.client import ApiClient, ApiError
from kairos.cli.common import fail, out, print_json

__all__ = ["secrets_app"]

secrets_app = typer.Typer(
    help="Manage the secrets jobs refer to as ${secret:name}.", no_args_is_help=True
)

Url = Annotated[str, typer.Option("--url", envvar="KAIROS_URL", help="The server's base URL")]
Token = Annotated[str | None, typer.Option("--token", envvar="KAIROS_TOKEN", help="A bearer token")]
FromEnv = Annotated[
    str | None,
    typer.Option("--from-env", metavar="VAR", help="Take the value from this environment variable"),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print the API's JSON, for scripts")]
DEFAULT_URL = "http://127.0.0.1:8000"


@secrets_app.command("set")
def _secrets_set(
    name: str, from_env: FromEnv = None, url: Url = DEFAULT_URL, token: Token = None
) -> None:
    """Set a secret; its value comes from --from-env, standard input or a prompt."""
    value = _value(from_env)
    with _client(url, token) as api:
        answer = api.call("PUT", f"/secrets/{name}", json={"value": value})
    out.print(f"Secret {name!r} {'set' if answer['created'] else 'replaced'}.")


@secrets_app.command("list")
def _secrets_list(url: Url = DEFAULT_URL, token: Token = None, as_json: AsJson = False) -> None:
    """List the secrets' names and times (never their values)."""
    with _client(url, token) as api:
        answer = api.call("GET", "/secrets")
    if as_json:
        print_json(answer)
        return
    table = Table("name", "created", "updated")
    for item in answer["items"]:
        table.add_row(item["name"], item["created_at"], item["updated_at"])
    out.print(table)


@secrets_app.command("delete")
def _secrets_delete(name: str, url: Url = DEFAULT_URL, token: Token = None) -> None:
    """Delete a secret; jobs that refer to it fail their calls until it is set again."""
    with _client(url, token) as api:
        api.call("DELETE", f"/secrets/{name}")
    out.print(f"Secret {name!r} deleted.")


def _value(from_env: str | None) -> str:
    if from_env is not None:
        value = os.environ.get(from_env)
        if value is None:
            fail(f"--from-env: {from_env} is not set")
        return value
    if sys.stdin.isatty():
        value = getpass.getpass("Value: ")
    else:
        value = sys.stdin.read().removesuffix("\n")
    if not value:
        fail("the value is empty")
    return value


def _client(url: str, token: str | None) -> ApiClient:
    return ApiClient(url, token, on_error=_api_failed)


def _api_failed(error: ApiError) -> NoReturn:
    fail(str(error))
