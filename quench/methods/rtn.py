"""Round-to-nearest weight-only quantization with llmcompressor's QuantizationModifier."""

from typing import Any

from quench.methods import Method, Storage, register_method
from quench.methods.kv_cache import kv_cache_scheme
from quench.methods.rotations import rotation_modifiers, transform_kind
from quench.methods.weights import (
    WEIGHT_BITS,
    WeightOnlyOptions,
    weight_config_groups,
    weight_storage,
)


@register_method
class RoundToNearest(Method[WeightOnlyOptions]):
    name = "rtn"
    schemes = tuple(WEIGHT_BITS)
    default_scheme = "W4A16"
    options_model = WeightOnlyOptions

    def needs_calibration(self, scheme: str, options: WeightOnlyOptions) -> bool:
        return options.kv_cache  # the KV cache scales are calibrated

    def storage(self, scheme: str, options: WeightOnlyOptions) -> Storage:
        return weight_storage(scheme, options)

    def transform(self, options: WeightOnlyOptions) -> str:
        return transform_kind(options.rotation)

    def modifiers(self, scheme: str, options: WeightOnlyOptions) -> list[Any]:
        from llmcompressor.modifiers.quantization import QuantizationModifier

        groups = weight_config_groups(scheme, options)
        return rotation_modifiers(options.rotation) + [
            QuantizationModifier(config_groups=groups, ignore=options.ignore,
                                 kv_cache_scheme=kv_cache_scheme(options))]
