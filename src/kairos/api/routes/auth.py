"""``/auth``: access tokens for users (``POST /auth/token``), API keys, and who am I."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Path, Request, status

from kairos.api.admin_schemas import KeyIn, KeyList, KeyOut, NewKeyOut, TokenOut, WhoAmI
from kairos.api.deps import AccountsDep, AdminUser, AuthDep, Caller
from kairos.api.routing import KairosRoute
from kairos.clock import from_us
from kairos.errors import InvalidField
from kairos.identity import ApiKeyRecord, parse_scopes, scope_text

__all__ = ["router"]

router = APIRouter(route_class=KairosRoute, prefix="/auth", tags=["auth"])


@router.post("/token")
async def sign_in(
    request: Request,
    authenticator: AuthDep,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=1024)],
    scope: Annotated[str, Form(description="Scopes wanted, space-separated; empty: all")] = "",
) -> TokenOut:
    """OAuth2 password flow: a signed access token (JWT) for a user. Repeated failures for one
    user or from one address are answered 429 for a while, doubling with each failure."""
    try:
        requested = parse_scopes(scope) or None
    except ValueError as exc:
        raise InvalidField(["scope"], str(exc)) from None
    client = request.client.host if request.client else "unknown"
    issued = await authenticator.sign_in(username, password, requested, client)
    return TokenOut(
        access_token=issued.access_token,
        expires_in=issued.expires_in,
        scope=scope_text(issued.scopes),
    )


@router.get("/me")
async def who_am_i(who: Caller) -> WhoAmI:
    """The caller, as its token says: any valid token may ask."""
    return WhoAmI(name=who.name, scopes=sorted(who.scopes))


@router.post("/keys", status_code=status.HTTP_201_CREATED)
async def create_key(accounts: AccountsDep, who: AdminUser, body: KeyIn) -> NewKeyOut:
    """A new API key. Its text is in this answer only: keep it now."""
    key, text = await accounts.create_key(
        body.name, frozenset(body.scopes), expires_in_s=body.expires_in, actor=who.name
    )
    return NewKeyOut(key=text, **_key_out(key).model_dump())


@router.get("/keys")
async def list_keys(accounts: AccountsDep, _who: AdminUser) -> KeyList:
    """Every key, revoked and expired ones too; never their text."""
    return KeyList(items=[_key_out(key) for key in await accounts.list_keys()])


@router.delete("/keys/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_key(
    accounts: AccountsDep, who: AdminUser, key_id: Annotated[str, Path(max_length=32)]
) -> None:
    """Revoke a key: requests with it fail from now on, on every replica."""
    await accounts.revoke_key(key_id, actor=who.name)


def _key_out(key: ApiKeyRecord) -> KeyOut:
    return KeyOut(
        id=key.id,
        name=key.name,
        scopes=sorted(key.scopes),
        created_at=from_us(key.created_us),
        created_by=key.created_by,
        expires_at=None if key.expires_us is None else from_us(key.expires_us),
        revoked_at=None if key.revoked_us is None else from_us(key.revoked_us),
    )
