"""Quantization methods: one module each, registered with @register_method and found at start-up."""

from __future__ import annotations

from typing import Any, ClassVar

from pipeline.registry import Registry
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


METHODS: Registry[Method] = Registry("method", __name__)
register_method = METHODS.register


def get_method(name: str) -> Method | None:
    """The registered method called `name`, or None."""
    cls = METHODS.get(name)
    return cls() if cls else None


def method_names() -> list[str]:
    """Every registered method name, sorted."""
    return METHODS.names()
