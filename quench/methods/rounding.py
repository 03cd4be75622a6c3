"""How a preset scheme's weights are rounded: round-to-nearest or GPTQ (fp4 and w4a8 methods)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from quench.methods.kv_cache import KvCacheOptions, kv_cache_scheme

Rounding = Literal["rtn", "gptq"]


class RoundingOptions(KvCacheOptions):
    """Targets, ignore, the FP8 KV cache option and the weight rounding algorithm."""

    weights: Rounding = Field("rtn", description="How weights are rounded: round-to-nearest "
                              "(QuantizationModifier) or GPTQ (calibrated).")
    dampening_frac: float = Field(0.01, gt=0, lt=1, description="GPTQ Hessian dampening.")


def preset_modifiers(scheme: str, options: RoundingOptions,
                     fmt: str | None = None) -> list[Any]:
    """One llm-compressor modifier applying the compressed-tensors preset `scheme`, saved in
    checkpoint format `fmt` (None: the one compressed-tensors infers)."""
    from compressed_tensors.quantization import preset_name_to_scheme
    from llmcompressor.modifiers.gptq import GPTQModifier
    from llmcompressor.modifiers.quantization import QuantizationModifier

    common: dict[str, Any] = {"ignore": options.ignore,
                              "kv_cache_scheme": kv_cache_scheme(options)}
    if fmt is None:
        common.update(targets=options.targets, scheme=scheme)
    else:
        group = preset_name_to_scheme(scheme, options.targets)
        group.format = fmt
        common["config_groups"] = {"group_0": group}
    if options.weights == "gptq":
        return [GPTQModifier(dampening_frac=options.dampening_frac, **common)]
    return [QuantizationModifier(**common)]
