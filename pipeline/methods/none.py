"""The baseline: the model saved unchanged in the recipe's dtype, for comparison."""

from typing import Any

from pipeline.methods import Method, register_method


@register_method
class NoQuantization(Method):
    name = "none"
    schemes = ("none",)
    default_scheme = "none"

    def modifiers(self, scheme: str, options: dict[str, Any]) -> list[Any]:
        return []
