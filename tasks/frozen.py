"""The base of every settings object: validated once, frozen, unknown keys refused (a typo never becomes a default)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
