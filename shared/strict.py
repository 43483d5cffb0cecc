"""The base of every config and message model: unknown keys are errors, instances are immutable, and
no float is NaN or infinite (every comparison with NaN is false, so it would pass any bound)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """A typo in a YAML key or payload field fails validation instead of being ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
