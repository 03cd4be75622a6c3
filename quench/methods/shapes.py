"""Shape rules of what a scheme stores: a weight group or block must fit the model's layer
widths. Methods apply them in check_model() (the base does); engines reuse not_multiples()."""

from __future__ import annotations

import math
from typing import Any

from quench.geometry import head_dim_of
from quench.methods.storage import Storage


def storage_problems(scheme: str, storage: Storage | None, config: dict[str, Any]) -> list[str]:
    """The first shape rule `storage` breaks on the model of `config`, as a one-item list."""
    if storage is None:
        return []
    for problem in (group_problem(storage, config), block_problem(scheme, storage, config)):
        if problem:
            return [problem]
    return []


def group_problem(storage: Storage, config: dict[str, Any]) -> str | None:
    """A weight group size must divide every quantized layer's input width."""
    group = storage.group_size
    if not group:
        return None
    heads, hidden = config.get("num_attention_heads"), config.get("hidden_size")
    head_dim = head_dim_of(config)
    widths = {
        "hidden_size": hidden,
        "intermediate_size": config.get("intermediate_size"),
        "num_attention_heads * head_dim": heads * head_dim if heads and head_dim else None,
    }
    bad = not_multiples(widths, group)
    if not bad:
        return None
    return (f"quantization.options.group_size: {group} does not divide the model's {bad}; "
            f"it must divide each of {sorted({w for w in widths.values() if w})}")


def block_problem(scheme: str, storage: Storage, config: dict[str, Any]) -> str | None:
    """Block-wise FP8: its activations are quantized per 128 input columns, and
    compressed-tensors 0.19 fails on a partial group in the forward pass
    (compute_dynamic_scales_and_zp: unflatten), so the input widths must be whole blocks."""
    block = block_side(storage)
    if not block:
        return None
    inputs = {"hidden_size": config.get("hidden_size") or 0,
              "intermediate_size": config.get("intermediate_size") or 0}
    bad = not_multiples(inputs, block)
    if not bad:
        return None
    return (f"quantization.scheme: {scheme} needs {bad}"
            f" to be a multiple of {block} (its activations are quantized in groups of "
            f"{block} input columns; compressed-tensors fails on a partial group, so the "
            "checkpoint cannot be evaluated); use scheme FP8_DYNAMIC (per-channel scales) "
            "for this model")


def block_side(storage: Storage | None) -> int | None:
    """The side of a square weight block (128 for 128 x 128); None: not block-wise."""
    if storage is None or not storage.block_weights:
        return None
    return math.isqrt(storage.block_weights)


def not_multiples(widths: dict[str, int | None], of: int) -> str:
    """The named widths that are not multiples of `of`, as "name (width), ..."; "" if none."""
    return ", ".join(f"{name} ({w})" for name, w in widths.items() if w and w % of)
