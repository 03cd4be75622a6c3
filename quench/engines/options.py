"""Typed `target.options`: each engine names a pydantic model; errors name the key and the
allowed ones, with a "did you mean" for a near miss."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import ValidationError

from quench.strict import StrictModel, first_error

M = TypeVar("M", bound=StrictModel)


def parse_options(model: type[M], options: dict[str, Any], engine: str) -> M:
    """`options` as `model`; a ValueError `target.options.<key>: message (got value)`."""
    try:
        return model.model_validate(options)
    except ValidationError as exc:
        raise ValueError(first_error(exc, "target.options", model.model_fields,
                                     f"option for engine {engine!r}")) from None
