"""How a preset scheme's weights are rounded: round-to-nearest or GPTQ (fp4 and w4a8 methods)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from pipeline.methods.kv_cache import KvCacheOptions, kv_cache_scheme

Rounding = Literal["rtn", "gptq"]


class RoundingOptions(KvCacheOptions):
    """Targets, ignore, the FP8 KV cache option and the weight rounding algorithm."""

    weights: Rounding = Field("rtn", description="How weights are rounded: round-to-nearest "
                              "(QuantizationModifier) or GPTQ (calibrated).")
    dampening_frac: float = Field(0.01, gt=0, lt=1, description="GPTQ Hessian dampening.")


def preset_modifiers(scheme: str, options: RoundingOptions) -> list[Any]:
    """One llm-compressor modifier applying the compressed-tensors preset `scheme`."""
    from llmcompressor.modifiers.gptq import GPTQModifier
    from llmcompressor.modifiers.quantization import QuantizationModifier

    common = {"targets": options.targets, "scheme": scheme, "ignore": options.ignore,
              "kv_cache_scheme": kv_cache_scheme(options)}
    if options.weights == "gptq":
        return [GPTQModifier(dampening_frac=options.dampening_frac, **common)]
    return [QuantizationModifier(**common)]
