"""FP4 (E2M1) weights with FP4 or 16-bit activations: the NVFP4 and MXFP4 presets."""

from __future__ import annotations

from typing import Any

from quench.methods import Method, Storage, WorkingSet, register_method
from quench.methods.kv_cache import kv_cache_dtype
from quench.methods.rounding import RoundingOptions, preset_modifiers

# Per scheme, from compressed-tensors 0.19's presets (quantization/quant_scheme.py): weights
# per scale group, scale bytes (NVFP4: FP8 E4M3 per 16 under a float32 per-tensor global
# scale; MXFP4: one E8M0 exponent byte per 32), and whether activations are FP4 too.
FP4_SCHEMES: dict[str, tuple[int, int, bool]] = {
    "NVFP4": (16, 1, True), "NVFP4A16": (16, 1, False),
    "MXFP4": (32, 1, True), "MXFP4A16": (32, 1, False),
}


class FP4Options(RoundingOptions):
    """Rounding (rtn or gptq), the FP8 KV cache option; group sizes are fixed by the formats."""


@register_method
class FP4(Method[FP4Options]):
    name = "fp4"
    schemes = tuple(FP4_SCHEMES)
    default_scheme = "NVFP4A16"
    options_model = FP4Options

    def needs_calibration(self, scheme: str, options: FP4Options) -> bool:
        """NVFP4 calibrates its activations' per-tensor global scale (input_global_scale)."""
        return scheme == "NVFP4" or options.kv_cache or options.weights == "gptq"

    def logs_each_module(self, scheme: str, options: FP4Options) -> bool:
        return options.weights == "gptq"  # preset_modifiers' GPTQModifier

    def working_set(self, scheme: str, options: FP4Options) -> WorkingSet:
        return WorkingSet(hessians=options.weights == "gptq")

    def storage(self, scheme: str, options: FP4Options) -> Storage:
        """4-bit E2M1 weights, a 1-byte scale per group; NVFP4 adds float32 global scales."""
        group, scale, fp4_inputs = FP4_SCHEMES[scheme]
        global_scales = (8 if fp4_inputs else 4) if scheme.startswith("NV") else 0
        return Storage(weight_bits=4, weight_type="float", group_size=group, scale_bytes=scale,
                       tensor_scale_bytes=global_scales,
                       activation_bits=4 if fp4_inputs else None, activation_type="float",
                       kv_cache_dtype=kv_cache_dtype(options))

    def modifiers(self, scheme: str, options: FP4Options) -> list[Any]:
        return preset_modifiers(scheme, options)
