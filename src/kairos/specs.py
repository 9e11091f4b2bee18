"""The base of every spec model, and how a spec the store kept is told from a client's."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, ValidationInfo

__all__ = ["STORED", "Spec", "stored"]


class Spec(BaseModel):
    # No NaN or infinity: they are not JSON, and no duration or limit means them.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


STORED = {"stored": True}
"""The validation context of a spec read back from the store (``JobSpec.from_stored``)."""


def stored(info: ValidationInfo) -> bool:
    """Validating a spec the store kept (``JobSpec.from_stored``): checks added to the API
    since it was written do not apply to it."""
    return bool(info.context and info.context.get("stored"))
