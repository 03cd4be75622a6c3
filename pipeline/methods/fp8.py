"""FP8 (E4M3) weights and activations: dynamic (no data) or static (calibrated), FP8 KV cache."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from pipeline.methods import Method, ModuleOptions, Storage, register_method

KV_CACHE_FP8 = {"num_bits": 8, "type": "float", "strategy": "tensor", "dynamic": False,
                "symmetric": True}


class FP8Options(ModuleOptions):
    kv_cache: bool = Field(False, description="Also quantize the KV cache to FP8 (calibrated).")


@register_method
class FP8(Method[FP8Options]):
    name = "fp8"
    schemes = ("FP8_DYNAMIC", "FP8")
    default_scheme = "FP8_DYNAMIC"
    options_model = FP8Options

    def needs_calibration(self, scheme: str, options: FP8Options) -> bool:
        return scheme == "FP8" or options.kv_cache

    def storage(self, scheme: str, options: FP8Options) -> Storage:
        """E4M3 weights (per channel, FP8_DYNAMIC, or per tensor) and activations."""
        return Storage(weight_bits=8, weight_type="float", activation_bits=8,
                       activation_type="float", kv_cache_dtype="fp8" if options.kv_cache else None)

    def modifiers(self, scheme: str, options: FP8Options) -> list[Any]:
        from llmcompressor.modifiers.quantization import QuantizationModifier

        kv = KV_CACHE_FP8 if options.kv_cache else None
        return [QuantizationModifier(targets=options.targets, scheme=scheme,
                                     ignore=options.ignore, kv_cache_scheme=kv)]
