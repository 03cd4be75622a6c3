"""FP8 (E4M3) weights and activations: dynamic (no data), static (calibrated) or block-wise."""

from __future__ import annotations

from typing import Any

from quench.methods import Method, Storage, register_method
from quench.methods.kv_cache import KvCacheOptions, kv_cache_dtype, kv_cache_scheme

# FP8_BLOCK (compressed-tensors preset): one float32 scale per 128 x 128 weight block,
# activations quantized dynamically per group of 128 (DeepSeek-V3 style).
BLOCK = 128


class FP8Options(KvCacheOptions):
    """Targets, ignore and the FP8 KV cache option (kv_cache, kv_cache_strategy)."""


@register_method
class FP8(Method[FP8Options]):
    name = "fp8"
    schemes = ("FP8_DYNAMIC", "FP8", "FP8_BLOCK")
    default_scheme = "FP8_DYNAMIC"
    options_model = FP8Options

    def needs_calibration(self, scheme: str, options: FP8Options) -> bool:
        return scheme == "FP8" or options.kv_cache

    def storage(self, scheme: str, options: FP8Options) -> Storage:
        """E4M3 weights (per channel, per tensor, or per 128x128 block with a float32 scale)."""
        block = {"block_weights": BLOCK * BLOCK, "scale_bytes": 4} if scheme == "FP8_BLOCK" else {}
        return Storage(weight_bits=8, weight_type="float", activation_bits=8,
                       activation_type="float", kv_cache_dtype=kv_cache_dtype(options), **block)

    def modifiers(self, scheme: str, options: FP8Options) -> list[Any]:
        from llmcompressor.modifiers.quantization import QuantizationModifier

        return [QuantizationModifier(targets=options.targets, scheme=scheme,
                                     ignore=options.ignore,
                                     kv_cache_scheme=kv_cache_scheme(options))]
