"""Round-to-nearest weight-only quantization with llmcompressor's QuantizationModifier."""

from typing import Any

from pipeline.methods import Method, register_method
from pipeline.methods.weights import (
    WEIGHT_BITS,
    WeightOnlyOptions,
    resolved_group_size,
    weight_config_groups,
)


@register_method
class RoundToNearest(Method):
    name = "rtn"
    schemes = tuple(WEIGHT_BITS)
    default_scheme = "W4A16"
    options_model = WeightOnlyOptions

    def group_size(self, scheme: str, options: dict[str, Any]) -> int | None:
        return resolved_group_size(scheme, options)

    def modifiers(self, scheme: str, options: dict[str, Any]) -> list[Any]:
        from llmcompressor.modifiers.quantization import QuantizationModifier

        groups = weight_config_groups(scheme, options)
        return [QuantizationModifier(config_groups=groups, ignore=options["ignore"])]
