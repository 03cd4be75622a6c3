"""SmoothQuant W8A8: migrate activation outliers into weights, then int8 weights + activations."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from quench.methods import Method, Storage, WorkingSet, register_method
from quench.methods.kv_cache import KvCacheOptions, kv_cache_dtype, kv_cache_scheme


class SmoothQuantOptions(KvCacheOptions):
    smoothing_strength: float = Field(0.8, ge=0, le=1, description="SmoothQuant alpha.")
    weights: Literal["gptq", "rtn"] = Field("gptq", description="How the int8 weights are "
                                            "rounded: GPTQ or round-to-nearest.")
    activations: Literal["dynamic", "static"] = Field(
        "dynamic", description="Per-token dynamic or per-tensor static (calibrated) int8 inputs."
    )


@register_method
class SmoothQuant(Method[SmoothQuantOptions]):
    name = "smoothquant"
    schemes = ("W8A8",)
    default_scheme = "W8A8"
    options_model = SmoothQuantOptions

    def needs_calibration(self, scheme: str, options: SmoothQuantOptions) -> bool:
        return True

    def logs_each_module(self, scheme: str, options: SmoothQuantOptions) -> bool:
        return options.weights == "gptq"  # GPTQModifier

    def working_set(self, scheme: str, options: SmoothQuantOptions) -> WorkingSet:
        return WorkingSet(hessians=options.weights == "gptq")

    def storage(self, scheme: str, options: SmoothQuantOptions) -> Storage:
        """Symmetric int8 weights per output channel, int8 activations."""
        return Storage(weight_bits=8, activation_bits=8, kv_cache_dtype=kv_cache_dtype(options))

    def modifiers(self, scheme: str, options: SmoothQuantOptions) -> list[Any]:
        from llmcompressor.modifiers.gptq import GPTQModifier
        from llmcompressor.modifiers.quantization import QuantizationModifier
        from llmcompressor.modifiers.transform import SmoothQuantModifier

        weights = {"num_bits": 8, "type": "int", "symmetric": True, "strategy": "channel"}
        dynamic = options.activations == "dynamic"
        inputs = {"num_bits": 8, "type": "int", "symmetric": True, "dynamic": dynamic,
                  "strategy": "token" if dynamic else "tensor"}
        groups = {"group_0": {"targets": options.targets, "weights": weights,
                              "input_activations": inputs}}
        quantizer = GPTQModifier if options.weights == "gptq" else QuantizationModifier
        return [
            SmoothQuantModifier(smoothing_strength=options.smoothing_strength),
            quantizer(config_groups=groups, ignore=options.ignore,
                      kv_cache_scheme=kv_cache_scheme(options)),
        ]
