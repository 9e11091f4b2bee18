"""The admin pages for people and programs: users (add, scopes, new password, remove) and API
keys (create, shown once; revoke). Every change goes through ``Accounts``, so it is checked and
audited as through the API."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import FormData

from kairos.auth.accounts import MAX_KEY_LIFETIME_S, Accounts
from kairos.context import context_of
from kairos.errors import InvalidField, KairosError, NotFound, UserExists
from kairos.identity import SCOPE_HELP, ApiKeyRecord, Scope
from kairos.web.render import page
from kairos.web.session import Viewer, ViewerDep, root_of

__all__ = ["router"]

router = APIRouter()
_DAY_S = 86_400
_MAX_DAYS = MAX_KEY_LIFETIME_S / _DAY_S
_SCOPES = [(scope.value, text) for scope, text in SCOPE_HELP.items()]


# Users ------------------------------------------------------------------------------------------


@router.get("/users", response_class=HTMLResponse)
async def users(request: Request, who: ViewerDep, note: str = "") -> Response:
    who.need(Scope.ADMIN)
    return await _users_page(request, who, note=note)


@router.post("/users", response_class=HTMLResponse)
async def add_user(request: Request, who: ViewerDep) -> Response:
    who.need(Scope.ADMIN)
    form = await request.form()
    name = _text(form, "name")
    try:
        scopes = _scopes(form)
        password = _text(form, "password", strip=False)
        await _accounts(request).add_user(name, password, scopes, actor=who.principal.name)
    except KairosError as exc:
        return await _users_page(request, who, exc.status_code, error=_said(exc), typed=name)
    return _back(request, "users", f"User {name} added.")


@router.post("/users/{name}/{change}", response_class=HTMLResponse)
async def change_user(request: Request, who: ViewerDep, name: str, change: str) -> Response:
    """``scopes``, ``password`` or ``remove``: then back to the list, saying what was done."""
    who.need(Scope.ADMIN)
    form = await request.form()
    accounts = _accounts(request)
    actor = who.principal.name
    try:
        if change == "scopes":
            await accounts.set_scopes(name, _scopes(form), actor=actor)
            done = f"The scopes of {name} are saved; their sessions have ended."
        elif change == "password":
            await accounts.set_password(name, _text(form, "password", strip=False), actor=actor)
            done = f"The password of {name} is reset; their sessions have ended."
        elif change == "remove":
            await accounts.remove_user(name, actor=actor)
            done = f"User {name} removed."
        else:
            return _no_such(request, who)
    except KairosError as exc:
        return await _users_page(request, who, exc.status_code, error=_said(exc))
    return _back(request, "users", done)


async def _users_page(
    request: Request,
    who: Viewer,
    status: int = 200,
    /,
    *,
    note: str = "",
    error: str | None = None,
    typed: str = "",
) -> Response:
    found = await _accounts(request).list_users()
    context: dict[str, Any] = {"users": found, "scopes": _SCOPES, "typed": typed}
    context["section"] = "Users"
    return page(request, "users.html", who, status, note=note, error=error, **context)


# API keys ---------------------------------------------------------------------------------------


@router.get("/keys", response_class=HTMLResponse)
async def keys(request: Request, who: ViewerDep, note: str = "") -> Response:
    who.need(Scope.ADMIN)
    return await _keys_page(request, who, note=note)


@router.post("/keys", response_class=HTMLResponse)
async def create_key(request: Request, who: ViewerDep) -> Response:
    """A new key, its text on this answer only (it is kept nowhere)."""
    who.need(Scope.ADMIN)
    form = await request.form()
    name = _text(form, "name")
    try:
        scopes = _scopes(form)
        expires_in_s = _expiry(_text(form, "expires_in_days"))
        key, text = await _accounts(request).create_key(
            name, scopes, expires_in_s=expires_in_s, actor=who.principal.name
        )
    except KairosError as exc:
        return await _keys_page(request, who, exc.status_code, error=_said(exc), typed=name)
    return await _keys_page(request, who, 201, created=(key.id, text))


@router.post("/keys/{key_id}/revoke", response_class=HTMLResponse)
async def revoke_key(request: Request, who: ViewerDep, key_id: str) -> Response:
    who.need(Scope.ADMIN)
    try:
        await _accounts(request).revoke_key(key_id, actor=who.principal.name)
    except KairosError as exc:
        return await _keys_page(request, who, exc.status_code, error=_said(exc))
    return _back(request, "keys", f"Key {key_id} revoked.")


async def _keys_page(
    request: Request,
    who: Viewer,
    status: int = 200,
    /,
    *,
    note: str = "",
    error: str | None = None,
    typed: str = "",
    created: tuple[str, str] | None = None,
) -> Response:
    found = await _accounts(request).list_keys()
    now_us = context_of(request).scheduler.now_us()
    states = {key.id: _key_state(key, now_us) for key in found}
    # The keys that open something first, newest first; then the expired, then the revoked.
    found.sort(key=lambda key: (_KEY_ORDER[states[key.id]], -key.created_us))
    context: dict[str, Any] = {"keys": found, "states": states, "scopes": _SCOPES, "typed": typed}
    context |= {"created": created, "section": "API keys"}
    return page(request, "keys.html", who, status, note=note, error=error, **context)


# Helpers ----------------------------------------------------------------------------------------


_KEY_ORDER = {"active": 0, "expired": 1, "revoked": 2}


def _key_state(key: ApiKeyRecord, now_us: int) -> str:
    """What the keys page says of ``key``: revoked, expired (past ``expires_us``, so the
    authenticator refuses it) or active."""
    if key.revoked_us is not None:
        return "revoked"
    return "active" if key.usable(now_us) else "expired"


def _accounts(request: Request) -> Accounts:
    return context_of(request).accounts


def _text(form: FormData, name: str, *, strip: bool = True) -> str:
    """A field as typed (spaces around it dropped, but in a password); missing: empty."""
    value = form.get(name)
    if not isinstance(value, str):
        return ""
    return value.strip() if strip else value


def _scopes(form: FormData) -> frozenset[Scope]:
    chosen = set()
    for value in form.getlist("scopes"):
        try:
            chosen.add(Scope(str(value)))
        except ValueError:
            raise InvalidField(["scopes"], f"no scope {value!r}") from None
    return frozenset(chosen)


def _expiry(days: str) -> float | None:
    """Seconds from a number of days; empty: the key never expires."""
    if not days:
        return None
    try:
        seconds = float(days) * _DAY_S
    except ValueError:
        seconds = -1.0
    if not 0 < seconds <= MAX_KEY_LIFETIME_S:
        raise InvalidField(["expires_in_days"], f"a number of days above 0, at most {_MAX_DAYS:g}")
    return seconds


def _said(exc: KairosError) -> str:
    """An error as the page says it: the field first, when one is at fault."""
    if isinstance(exc, InvalidField):
        field = str(exc.loc[-1]).replace("_", " ") if exc.loc else "input"
        return f"{field}: {exc.message}"
    if isinstance(exc, UserExists):
        return f"name: a user {exc.name!r} exists already"
    if isinstance(exc, NotFound):
        return f"{exc.detail} (it may have been removed already)."
    return str(exc.detail)


def _back(request: Request, where: str, note: str) -> Response:
    url = f"{root_of(request)}/{quote(where)}?" + urlencode({"note": note})
    return RedirectResponse(url, status_code=303)


def _no_such(request: Request, who: Viewer) -> Response:
    return page(request, "message.html", who, 404, heading="Not found", message="No such action.")
