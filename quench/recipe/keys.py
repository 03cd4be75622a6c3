"""Unknown-key messages: the closest allowed key ("did you mean") and every allowed one."""

from __future__ import annotations

import types
import typing
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from quench.strict import suggest


def unknown_key_message(loc: Sequence[Any], root: type[BaseModel] | None = None) -> str:
    """The message for an extra key at `loc` (pydantic's error location) under `root`."""
    if root is None:
        from quench.recipe.schema import Recipe

        root = Recipe
    model: type[BaseModel] | None = root
    for part in loc[:-1]:
        if model is None or not isinstance(part, str) or part not in model.model_fields:
            return "unknown key"
        model = _model_of(model.model_fields[part].annotation)
    if model is None:
        return "unknown key"
    return suggest(str(loc[-1]), model.model_fields)


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside an annotation such as `Spec | None`, if there is one."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _model_of(arg)
            if found is not None:
                return found
    return None
