"""Unknown-key messages: the closest allowed key ("did you mean") and every allowed one."""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel


def suggest(name: str, allowed: Iterable[str], noun: str = "key") -> str:
    """"unknown key; did you mean `x`? allowed: a, b" (no guess when nothing is close)."""
    allowed = list(allowed)
    close = difflib.get_close_matches(str(name)[:200], allowed, n=1, cutoff=0.6)
    guess = f"; did you mean `{close[0]}`?" if close else ";"
    return f"unknown {noun}{guess} allowed: {', '.join(allowed) or 'none'}"


def unknown_key_message(loc: Sequence[Any], root: type[BaseModel] | None = None) -> str:
    """The message for an extra key at `loc` (pydantic's error location) under `root`."""
    if root is None:
        from pipeline.recipe.schema import Recipe

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
