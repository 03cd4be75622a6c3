"""Base for every config model: unknown keys are errors and values are never coerced, so typos
and lax types (`"on"` for true, `true` for 1, `"256"` for 256, `.inf`) never pass silently."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import ErrorDetails

MAX_SHOWN = 80  # characters of a user value echoed in a message


class StrictModel(BaseModel):
    """A pydantic model that forbids extra keys, type coercion and infinite or NaN floats.

    pydantic's strict mode still accepts an int for a float field (64 for 64.0), which YAML
    users expect; it rejects bools for ints, strings for numbers or bools.
    """

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


def shorten(value: Any, limit: int = MAX_SHOWN) -> str:
    """repr(value), cut to `limit` characters: messages never echo megabytes of input."""
    text = repr(value)
    size = len(value) if isinstance(value, str) else len(text)
    return text if len(text) <= limit else f"{text[:limit]}... ({size} characters)"


def suggest(name: str, allowed: Iterable[str], noun: str = "key") -> str:
    """"unknown key; did you mean `x`? allowed: a, b" (no guess when nothing is close)."""
    allowed = list(allowed)
    close = difflib.get_close_matches(str(name)[:200], allowed, n=1, cutoff=0.6)
    guess = f"; did you mean `{close[0]}`?" if close else ";"
    return f"unknown {noun}{guess} allowed: {', '.join(allowed) or 'none'}"


def error_message(err: ErrorDetails) -> str:
    """pydantic's message for one error, without the "Value error, " it puts before ours."""
    return err["msg"].removeprefix("Value error, ")


def first_error(exc: ValidationError, prefix: str, allowed: Iterable[str], noun: str,
                echo_input: bool = True) -> str:
    """`prefix.key: message (got value)` for the first error (options models report one at a
    time); an unknown key gets a "did you mean" among `allowed`."""
    first = exc.errors()[0]
    where = ".".join([prefix, *(str(p) for p in first["loc"])])
    message = error_message(first)
    if first["type"] == "extra_forbidden":
        message = suggest(str(first["loc"][-1]), allowed, noun)
    elif echo_input and first["loc"]:
        message += f" (got {shorten(first.get('input'))})"
    return f"{where}: {message}"


class NoOptions(StrictModel):
    """The options of a method, engine, strategy or executor that takes none: any key is an
    error."""
