"""compressed-tensors checkpoints: each quantized Linear's tensors as its config group's format
stores them (names, dtypes, packed and scale-group shapes), and the KV cache scales."""

from __future__ import annotations

import math
from typing import Any

from quench.checkpoints.common import spec
from quench.geometry import Geometry

FLOAT_DTYPES = ("F32", "BF16", "F16")


def group_of(config: dict[str, Any], problems: list[str]) -> tuple[str | None, dict[str, Any]]:
    """The single config group's format and weight args (None: mixed, nothing to check per
    tensor); an unknown format is a problem."""
    qc = config.get("quantization_config") or {}
    groups = qc.get("config_groups") or {}
    if len(groups) != 1:
        return None, {}
    group = next(iter(groups.values()))
    fmt = group.get("format") or qc.get("format")
    known = spec()["compressed_tensors"]["formats"]
    if fmt not in known:
        problems.append(f"config.json: compressed-tensors format {fmt!r} is not one quench "
                        f"validates ({', '.join(known)})")
        return None, {}
    return fmt, group


def check_linear(name: str, shape: tuple[int, int], fmt: str, group: dict[str, Any],
                 tensors: dict[str, Any], problems: list[str]) -> None:
    """One quantized Linear `name` of (out, in) `shape` against its format's layout."""
    layout = spec()["compressed_tensors"]["formats"][fmt]
    weights = group.get("weights") or {}
    pack = layout["pack"] or 32 // int(weights.get("num_bits") or 32)
    entry = tensors.get(f"{name}.{layout['weight']}")
    if entry is None:
        problems.append(f"missing tensor {name}.{layout['weight']} ({fmt})")
        return
    want = [shape[0], math.ceil(shape[1] / pack)]
    if list(entry["shape"]) != want or entry["dtype"] != layout["dtype"]:
        problems.append(f"{name}.{layout['weight']} is {entry['dtype']} {entry['shape']}, "
                        f"{fmt} stores {layout['dtype']} {want}")
    for scale, dtype in layout["scales"].items():
        found = tensors.get(f"{name}.{scale}")
        if found is None:
            problems.append(f"missing tensor {name}.{scale} ({fmt})")
        elif found["dtype"] != (dtype or found["dtype"]) or (
                dtype is None and found["dtype"] not in FLOAT_DTYPES):
            problems.append(f"{name}.{scale} is {found['dtype']}, {fmt} stores "
                            f"{dtype or ' or '.join(FLOAT_DTYPES)}")
    _check_scale_shape(name, shape, weights, tensors.get(f"{name}.weight_scale"), problems)
    inputs = group.get("input_activations") or {}
    static = layout.get("static_input")
    if static and inputs and inputs.get("dynamic") is not True and (
            f"{name}.{static}" not in tensors):
        problems.append(f"missing tensor {name}.{static} (calibrated input scale, {fmt})")


def _check_scale_shape(name: str, shape: tuple[int, int], weights: dict[str, Any],
                       scale: dict[str, Any] | None, problems: list[str]) -> None:
    """Group scales: one per `group_size` inputs per row; block scales: one per block."""
    if scale is None:
        return
    strategy = weights.get("strategy")
    if strategy in ("group", "tensor_group") and weights.get("group_size"):
        want = [shape[0], math.ceil(shape[1] / weights["group_size"])]
    elif strategy == "block" and weights.get("block_structure"):
        rows, cols = weights["block_structure"]
        want = [math.ceil(shape[0] / rows), math.ceil(shape[1] / cols)]
    else:
        return
    if list(scale["shape"]) != want:
        problems.append(f"{name}.weight_scale has shape {scale['shape']}, expected {want} "
                        f"({strategy} scales of the model geometry)")


def check_kv_scales(prefix: str, config: dict[str, Any], g: Geometry,
                    tensors: dict[str, Any], problems: list[str]) -> None:
    """A kv_cache_scheme needs each layer's K and V scales (per tensor or per KV head)."""
    kv = (config.get("quantization_config") or {}).get("kv_cache_scheme")
    if not kv:
        return
    heads = g.kv_heads if kv.get("strategy") == "attn_head" else 1
    for scale in spec()["compressed_tensors"]["kv_cache_scales"]:
        entry = tensors.get(f"{prefix}.self_attn.{scale}")
        if entry is None:
            problems.append(f"missing tensor {prefix}.self_attn.{scale} (kv_cache_scheme)")
        elif math.prod(entry["shape"]) != heads:
            problems.append(f"{prefix}.self_attn.{scale} holds {math.prod(entry['shape'])} "
                            f"scales, the kv_cache_scheme ({kv.get('strategy')}) {heads}")
