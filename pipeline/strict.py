"""Base for every config model: unknown keys are errors, so typos never pass silently."""

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """A pydantic model that forbids extra keys."""

    model_config = ConfigDict(extra="forbid")
