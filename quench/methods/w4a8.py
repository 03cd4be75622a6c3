"""Int4 weights (groups of 128) with dynamic per-token FP8 (W4AFP8) or INT8 (W4A8) activations."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from quench.methods import Method, Storage, WorkingSet, register_method
from quench.methods.kv_cache import kv_cache_dtype
from quench.methods.rounding import Rounding, RoundingOptions, preset_modifiers

# compressed-tensors 0.19 presets W4AFP8 and W4A8: symmetric int4 weights, one scale per 128
# input columns; activations quantized at run time, so only GPTQ or the KV cache need data.
GROUP = 128
ACTIVATION_TYPE: dict[str, Literal["int", "float"]] = {"W4AFP8": "float", "W4A8": "int"}
# The checkpoint format each vLLM kernel reads: CompressedTensorsW4A8Fp8 (Hopper) loads
# `weight_packed` (pack-quantized: 8 int4 per int32), while compressed-tensors 0.19 would infer
# int-quantized (one int8 per weight); CompressedTensorsW4A8Int (CPU) loads that int8 `weight`.
FORMAT = {"W4AFP8": "pack-quantized", "W4A8": None}


class W4A8Options(RoundingOptions):
    weights: Rounding = Field("gptq", description="How the int4 weights are rounded: GPTQ "
                              "(calibrated) or round-to-nearest.")


@register_method
class W4A8(Method[W4A8Options]):
    name = "w4a8"
    schemes = tuple(ACTIVATION_TYPE)
    default_scheme = "W4AFP8"
    options_model = W4A8Options

    def needs_calibration(self, scheme: str, options: W4A8Options) -> bool:
        return options.weights == "gptq" or options.kv_cache

    def logs_each_module(self, scheme: str, options: W4A8Options) -> bool:
        return options.weights == "gptq"  # preset_modifiers' GPTQModifier

    def working_set(self, scheme: str, options: W4A8Options) -> WorkingSet:
        return WorkingSet(hessians=options.weights == "gptq")

    def storage(self, scheme: str, options: W4A8Options) -> Storage:
        """Int4 weights + a 16-bit scale per 128; 8-bit activations of the scheme's type."""
        return Storage(weight_bits=4, group_size=GROUP, activation_bits=8,
                       activation_type=ACTIVATION_TYPE[scheme],
                       kv_cache_dtype=kv_cache_dtype(options))

    def modifiers(self, scheme: str, options: W4A8Options) -> list[Any]:
        return preset_modifiers(scheme, options, FORMAT[scheme])
