"""What a quantized checkpoint stores, in the terms sizing needs: told by the method itself."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

NumberType = Literal["int", "float"]


@dataclass(frozen=True)
class Storage:
    """Bits per weight (and per group), activation and KV cache formats of one scheme."""

    # None: dense weights at the serving dtype; fractional for a GGUF type's mix of tensor
    # types (bits per weight with its scales: give scale_bytes 0 then)
    weight_bits: float | None = None
    weight_type: NumberType = "int"
    group_size: int | None = None  # None: one scale per output channel (or tensor)
    scale_bytes: int = 2  # one float16/bfloat16 scale per group
    block_weights: int | None = None  # weights per block scale (FP8_BLOCK: 128 x 128)
    # float32 scales per quantized Linear (NVFP4: weight_global_scale, input_global_scale)
    tensor_scale_bytes: int = 0
    zero_points: bool = False  # asymmetric: a zero point (at weight_bits) per group
    activation_bits: int | None = None  # None: activations at the serving dtype
    activation_type: NumberType = "int"
    kv_cache_dtype: Literal["fp8"] | None = None  # None: the KV cache at the serving dtype

    @property
    def quantized(self) -> bool:
        """Whether anything is stored below the serving dtype."""
        return (self.weight_bits, self.activation_bits, self.kv_cache_dtype) != (None,) * 3

    @property
    def needs_fp8_compute(self) -> bool:
        """FP8 activations run on FP8 tensor cores only (compute capability >= 8.9)."""
        return self.activation_bits == 8 and self.activation_type == "float"

    @property
    def needs_fp4_compute(self) -> bool:
        """FP4 activations (NVFP4, MXFP4 W4A4) run on FP4 tensor cores only (Blackwell)."""
        return self.activation_bits == 4 and self.activation_type == "float"


@dataclass(frozen=True)
class WorkingSet:
    """What a method holds beside the model while it quantizes one decoder layer, as data for
    the memory predictions of `quench plan` and the pre-flight (quench/stage_memory.py)."""

    hessians: bool = False  # GPTQ: a float32 Hessian per Linear of the layer being quantized
    # AWQ's scale search: float32 copies of the layer's weights (originals, scaled, rounded),
    # and the inputs of the layer's mapping parents, cached for every calibration sample
    layer_float32_copies: float = 0.0
    cached_activations: bool = False
