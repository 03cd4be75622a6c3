"""Base for every config model: unknown keys are errors and values are never coerced, so typos
and lax types (`"on"` for true, `true` for 1, `"256"` for 256, `.inf`) never pass silently."""

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """A pydantic model that forbids extra keys, type coercion and infinite or NaN floats.

    pydantic's strict mode still accepts an int for a float field (64 for 64.0), which YAML
    users expect; it rejects bools for ints, strings for numbers or bools.
    """

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
