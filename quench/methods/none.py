"""The baseline: the model saved unchanged in the recipe's dtype, for comparison."""

from typing import Any

from quench.methods import Method, NoOptions, Storage, register_method


@register_method
class NoQuantization(Method[NoOptions]):
    name = "none"
    schemes = ("none",)
    default_scheme = "none"

    def storage(self, scheme: str, options: NoOptions) -> Storage:
        return Storage()  # everything at the serving dtype

    def modifiers(self, scheme: str, options: NoOptions) -> list[Any]:
        return []
