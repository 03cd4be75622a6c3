"""FP8 (E4M3) KV cache with calibrated scales, an option of every llmcompressor method."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from quench.methods import ModuleOptions

# vLLM loads calibrated E4M3 K/V scales per tensor (k_scale/v_scale of shape [1]) or, with its
# Flash Attention backend only, per KV head ([num_kv_heads]):
# https://docs.vllm.ai/en/latest/features/quantization/quantized_kvcache/
KvStrategy = Literal["tensor", "attn_head"]


class KvCacheOptions(ModuleOptions):
    """Module targets plus an FP8 KV cache; mixed into every llmcompressor method's options."""

    kv_cache: bool = Field(False, description="Also quantize the KV cache to FP8 E4M3 with "
                           "calibrated K/V scales, which vLLM loads with --kv-cache-dtype fp8; "
                           "it makes the method calibrate.")
    kv_cache_strategy: KvStrategy = Field(
        "tensor", description="One K/V scale per layer (tensor) or per KV head (attn_head; "
        "vLLM's Flash Attention backend only).")


def kv_cache_scheme(options: KvCacheOptions) -> dict[str, Any] | None:
    """compressed-tensors' kv_cache_scheme for the options; None: KV cache at the serving dtype."""
    if not options.kv_cache:
        return None
    return {"num_bits": 8, "type": "float", "strategy": options.kv_cache_strategy,
            "dynamic": False, "symmetric": True}


def kv_cache_dtype(options: KvCacheOptions) -> Literal["fp8"] | None:
    """The KV cache dtype sizing reads (Storage.kv_cache_dtype)."""
    return "fp8" if options.kv_cache else None
