"""The base of every config and message model: unknown keys are errors, instances are immutable."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """A typo in a YAML key or payload field fails validation instead of being ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)
