"""``kairos secrets ...``: the named secrets of a running server (``/secrets``, admin only).

A value is never an argument (it would land in the shell's history): it is read from standard
input, from a prompt, or from an environment variable named by ``--from-env``.
"""

from __future__ import annotations

import getpass
import os
import sys
from typing import Annotated

import typer
from rich.table import Table

from kairos.cli.client import DEFAULT_URL, Token, Url, connect
from kairos.cli.common import fail, out, print_json

__all__ = ["secrets_app"]

secrets_app = typer.Typer(
    help="Manage the secrets jobs refer to as ${secret:name}.", no_args_is_help=True
)

FromEnv = Annotated[
    str | None,
    typer.Option("--from-env", metavar="VAR", help="Take the value from this environment variable"),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print the API's JSON, for scripts")]


@secrets_app.command("set")
def _secrets_set(
    name: str, from_env: FromEnv = None, url: Url = DEFAULT_URL, token: Token = None
) -> None:
    """Set a secret; its value comes from --from-env, standard input or a prompt."""
    value = _value(from_env)
    with connect(url, token) as api:
        answer = api.set_secret(name, value)
    out.print(f"Secret {name!r} {'set' if answer.created else 'replaced'}.")


@secrets_app.command("list")
def _secrets_list(url: Url = DEFAULT_URL, token: Token = None, as_json: AsJson = False) -> None:
    """List the secrets' names and times (never their values)."""
    with connect(url, token) as api:
        secrets = api.list_secrets()
    items = [secret.model_dump(mode="json") for secret in secrets]
    if as_json:
        print_json({"items": items})
        return
    table = Table("name", "created", "updated")
    for item in items:
        table.add_row(item["name"], item["created_at"], item["updated_at"])
    out.print(table)


@secrets_app.command("delete")
def _secrets_delete(name: str, url: Url = DEFAULT_URL, token: Token = None) -> None:
    """Delete a secret; jobs that refer to it fail their calls until it is set again."""
    with connect(url, token) as api:
        api.delete_secret(name)
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
