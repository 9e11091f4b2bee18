"""``/secrets``: the named secrets job specs refer to as ``${secret:name}`` (admin only).

A value goes in and never comes out: no answer holds one, and the audit log records the name.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from kairos.api.admin_schemas import SecretIn, SecretList, SecretOut, SecretSet
from kairos.api.deps import AdminUser, SchedulerDep, allowed
from kairos.api.routing import KairosRoute
from kairos.clock import from_us
from kairos.identity import Scope
from kairos.references import SECRET_NAME_PATTERN

__all__ = ["router"]

router = APIRouter(route_class=KairosRoute, tags=["secrets"], dependencies=[allowed(Scope.ADMIN)])

SecretName = Annotated[str, Path(pattern=f"^{SECRET_NAME_PATTERN}$")]


@router.put("/secrets/{name}")
async def set_secret(
    scheduler: SchedulerDep, who: AdminUser, name: SecretName, body: SecretIn, response: Response
) -> SecretSet:
    """Keep a secret, encrypted (201 created, 200 replaced); jobs refer to it as
    ``${secret:<name>}``. 409 when the server has no ``KAIROS_SECRETS_KEY``."""
    created = await scheduler.set_secret(name, body.value, actor=who.name)
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return SecretSet(name=name, created=created)


@router.get("/secrets")
async def list_secrets(scheduler: SchedulerDep) -> SecretList:
    """Every secret's name and times; never a value."""
    records = await scheduler.list_secrets()
    return SecretList(
        items=[
            SecretOut(
                name=r.name, created_at=from_us(r.created_us), updated_at=from_us(r.updated_us)
            )
            for r in records
        ]
    )


@router.delete("/secrets/{name}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_secret(scheduler: SchedulerDep, who: AdminUser, name: SecretName) -> None:
    """Forget a secret (404 if unknown). Jobs that refer to it are kept; their calls fail,
    naming the reference, until it is set again."""
    await scheduler.delete_secret(name, actor=who.name)
