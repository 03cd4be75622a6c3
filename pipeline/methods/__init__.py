"""Quantization methods: one module each, registered with @register_method and found at start-up."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any, ClassVar

from pipeline.strict import StrictModel


class Method:
    """A quantization method: its schemes, its options model and the llmcompressor modifiers."""

    name: ClassVar[str]
    schemes: ClassVar[tuple[str, ...]]
    default_scheme: ClassVar[str]
    needs_calibration: ClassVar[bool] = False
    options_model: ClassVar[type[StrictModel]] = StrictModel

    def modifiers(self, scheme: str, options: dict[str, Any]) -> list[Any]:
        """The llmcompressor modifiers for `oneshot`; an empty list means no quantization."""
        raise NotImplementedError


_METHODS: dict[str, type[Method]] = {}


def register_method(cls: type[Method]) -> type[Method]:
    """Class decorator: makes a method available to recipes under `cls.name`."""
    if cls.name in _METHODS:
        raise ValueError(f"method {cls.name!r} registered twice")
    _METHODS[cls.name] = cls
    return cls


def _load_all() -> None:
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")


def get_method(name: str) -> Method | None:
    """The registered method called `name`, or None."""
    _load_all()
    cls = _METHODS.get(name)
    return cls() if cls else None


def method_names() -> list[str]:
    """Every registered method name, sorted."""
    _load_all()
    return sorted(_METHODS)
