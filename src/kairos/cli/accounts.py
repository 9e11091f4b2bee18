"""``kairos users ...`` and ``kairos keys ...``: accounts, managed on the database directly
(no server or token needed: whoever can reach the database is in charge of it)."""

from __future__ import annotations

import getpass
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer

from kairos.auth import Accounts
from kairos.cli.common import fail, on_store, out, print_json, print_table, seconds
from kairos.clock import SystemClock, from_us
from kairos.identity import ApiKeyRecord, Scope, UserRecord, parse_scopes, scope_text

__all__ = ["keys_app", "users_app"]

T = TypeVar("T")

users_app = typer.Typer(
    help="Manage users (they sign in at POST /auth/token).", no_args_is_help=True
)
keys_app = typer.Typer(help="Manage API keys for machines.", no_args_is_help=True)

Db = Annotated[
    str | None,
    typer.Option("--db", help="Database URL or SQLite file [KAIROS_DATABASE_URL]"),
]
Scopes = Annotated[
    list[str] | None,
    typer.Option("--scope", "-s", help="jobs:read, jobs:write, runs:read or admin (repeatable)"),
]
PasswordStdin = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from standard input")
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON, for scripts")]
_USER_SCOPES = [Scope.JOBS_READ, Scope.JOBS_WRITE, Scope.RUNS_READ]


# Users -------------------------------------------------------------------------------------------


@users_app.command("add")
def _users_add(
    name: str, scope: Scopes = None, password_stdin: PasswordStdin = False, db: Db = None
) -> None:
    """Add a user (default scopes: jobs:read, jobs:write, runs:read)."""
    scopes = _scopes(scope) if scope else frozenset(_USER_SCOPES)
    password = _password(password_stdin)
    user = _accounts(db, lambda a: a.add_user(name, password, scopes, actor=_actor()))
    out.print(f"User {user.name!r} added with scopes {scope_text(user.scopes)}.")


@users_app.command("passwd")
def _users_passwd(name: str, password_stdin: PasswordStdin = False, db: Db = None) -> None:
    """Set a user's password; the user's access tokens stop working."""
    password = _password(password_stdin)
    _accounts(db, lambda a: a.set_password(name, password, actor=_actor()), create=False)
    out.print(f"Password of {name!r} changed.")


@users_app.command("scopes")
def _users_scopes(name: str, scope: Scopes = None, db: Db = None) -> None:
    """Set a user's scopes; the user's access tokens stop working."""
    scopes = _scopes(scope or [])
    user = _accounts(db, lambda a: a.set_scopes(name, scopes, actor=_actor()), create=False)
    out.print(f"User {name!r} now has scopes {scope_text(user.scopes)}.")


@users_app.command("remove")
def _users_remove(name: str, db: Db = None) -> None:
    """Remove a user; the user's access tokens stop working."""
    _accounts(db, lambda a: a.remove_user(name, actor=_actor()), create=False)
    out.print(f"User {name!r} removed.")


@users_app.command("list")
def _users_list(db: Db = None, as_json: AsJson = False) -> None:
    users = _accounts(db, lambda a: a.list_users(), create=False)
    rows = [_user_row(user) for user in users]
    if as_json:
        print_json(rows)
        return
    cells = [[r["name"], " ".join(r["scopes"]), r["created_at"], r["updated_at"]] for r in rows]
    print_table(["name", "scopes", "created", "changed"], cells, whole={"name"})


# API keys ----------------------------------------------------------------------------------------


@keys_app.command("create")
def _keys_create(
    name: Annotated[str, typer.Option("--name", help="What the key is for")],
    scope: Scopes = None,
    expires_in: Annotated[
        str | None, typer.Option("--expires-in", help="e.g. 30d, 12h; default: never")
    ] = None,
    db: Db = None,
    as_json: AsJson = False,
) -> None:
    """Create a key and print it: it is shown this once and kept nowhere."""
    scopes = _scopes(scope or [])
    expires_s = None if expires_in is None else seconds(expires_in, "--expires-in")
    key, text = _accounts(
        db, lambda a: a.create_key(name, scopes, expires_in_s=expires_s, actor=_actor())
    )
    if as_json:
        print_json(_key_row(key) | {"key": text})
        return
    out.print(f"API key {key.id} ({key.name!r}, scopes {scope_text(key.scopes)}):")
    out.print(text, highlight=False)
    out.print("Keep it now: it cannot be shown again.")


@keys_app.command("list")
def _keys_list(db: Db = None, as_json: AsJson = False) -> None:
    """Every key, revoked and expired ones too (never their text)."""
    rows = [_key_row(key) for key in _accounts(db, lambda a: a.list_keys(), create=False)]
    if as_json:
        print_json(rows)
        return
    dates = ("created_at", "created_by", "expires_at", "revoked_at")
    cells = [
        [r["id"], r["name"], " ".join(r["scopes"]), *(r[c] or "-" for c in dates)] for r in rows
    ]
    headers = ["id", "name", "scopes", "created", "by", "expires", "revoked"]
    print_table(headers, cells, whole={"id"})


@keys_app.command("revoke")
def _keys_revoke(key_id: str, db: Db = None) -> None:
    """Revoke a key: requests with it fail from now on, on every replica."""
    _accounts(db, lambda a: a.revoke_key(key_id, actor=_actor()), create=False)
    out.print(f"API key {key_id} revoked.")


# Helpers -----------------------------------------------------------------------------------------


def _accounts(
    db: str | None, action: Callable[[Accounts], Awaitable[T]], *, create: bool = True
) -> T:
    """Run ``action`` on the accounts of the database; ``create``: a new SQLite file may be
    made (adding a user or a key before the first ``kairos serve``), else it must exist."""
    return on_store(db, lambda store: action(Accounts(store, SystemClock())), create=create)


def _scopes(names: list[str]) -> frozenset[Scope]:
    try:
        scopes = parse_scopes(names)
    except ValueError as exc:
        fail(f"--scope: {exc}", code=2)
    if not scopes:
        fail("--scope: name at least one scope", code=2)
    return scopes


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    password: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return password


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _user_row(user: UserRecord) -> dict[str, Any]:
    return {
        "name": user.name,
        "scopes": sorted(user.scopes),
        "created_at": from_us(user.created_us).isoformat(timespec="seconds"),
        "updated_at": from_us(user.updated_us).isoformat(timespec="seconds"),
    }


def _key_row(key: ApiKeyRecord) -> dict[str, Any]:
    def at(us: int | None) -> str | None:
        return None if us is None else from_us(us).isoformat(timespec="seconds")

    return {
        "id": key.id,
        "name": key.name,
        "scopes": sorted(key.scopes),
        "created_at": at(key.created_us),
        "created_by": key.created_by,
        "expires_at": at(key.expires_us),
        "revoked_at": at(key.revoked_us),
    }
