"""Hugging Face layout checkpoints: ModelOpt unified (hf_quant_config.json), compressed-tensors,
dense. config.json + *.safetensors (with model.safetensors.index.json when sharded)."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path
from typing import Any

from quench.checkpoints import compressed
from quench.checkpoints.common import check_linear, read_header, read_json, spec
from quench.geometry import Geometry

LAYER = re.compile(r"^(?:model\.)?layers\.(\d+)\.(.+)\.weight$")
# HF module name -> (rows, cols) of the unpacked weight, from the geometry.
LINEARS = {
    "self_attn.q_proj": lambda g: (g.heads * g.head_dim, g.hidden),
    "self_attn.k_proj": lambda g: (g.kv_heads * g.head_dim, g.hidden),
    "self_attn.v_proj": lambda g: (g.kv_heads * g.head_dim, g.hidden),
    "self_attn.o_proj": lambda g: (g.hidden, g.heads * g.head_dim),
    "mlp.gate_proj": lambda g: (g.intermediate, g.hidden),
    "mlp.up_proj": lambda g: (g.intermediate, g.hidden),
    "mlp.down_proj": lambda g: (g.hidden, g.intermediate),
}


def check(path: Path, kind: str, source: dict[str, Any] | None,
          problems: list[str]) -> dict[str, Any]:
    config = read_json(path / "config.json", problems)
    if config is None:
        return {}
    if not config.get("architectures"):
        problems.append("config.json: `architectures` is missing or empty (engines pick the "
                        "model class from it)")
    quant = _modelopt_quant(path, config, problems) if kind == "modelopt-hf" else {}
    ct: tuple[str | None, dict[str, Any]] = (None, {})
    if kind == "compressed-tensors":
        _check_compressed_tensors(config, problems)
        ct = compressed.group_of(config, problems)
    headers = _headers(path, problems)
    facts: dict[str, Any] = {"files": sorted(headers),
                             "tensors": sum(len(h) for h in headers.values()), **quant}
    try:
        geometry = Geometry.of(source or config)
    except (KeyError, TypeError, ValueError) as exc:
        problems.append(f"config.json: cannot read the model geometry ({exc})")
        return facts
    tensors = {k: v for h in headers.values() for k, v in h.items()}
    if kind == "compressed-tensors" and headers:
        _check_online_transforms(config, tensors, problems)
    if headers and geometry.intermediate:
        layout = spec()["layouts"].get(quant.get("quant_algo") or "", {}).get("hf")
        _check_layers(tensors, geometry, layout, quant, problems, config if ct[0] else None)
    return facts


def _modelopt_quant(path: Path, config: dict[str, Any], problems: list[str]) -> dict[str, Any]:
    """hf_quant_config.json: a ModelOpt producer, allowed algorithms, and config.json agreeing."""
    rules = spec()["modelopt_hf"]
    raw = read_json(path / "hf_quant_config.json", problems)
    if raw is None:
        return {}
    if (raw.get("producer") or {}).get("name") != "modelopt" and not str(
            raw.get("quant_method", "")).startswith("modelopt"):
        problems.append("hf_quant_config.json: not written by ModelOpt (producer.name)")
    q = raw.get("quantization") if isinstance(raw.get("quantization"), dict) else raw
    algo = q.get("quant_algo")
    kv = q.get("kv_cache_quant_algo")
    if algo not in rules["quant_algos"]:
        problems.append(f"hf_quant_config.json: quant_algo {algo!r} not one of "
                        f"{', '.join(rules['quant_algos'])}")
    if kv is not None and kv not in rules["kv_cache_quant_algos"]:
        problems.append(f"hf_quant_config.json: kv_cache_quant_algo {kv!r} not one of "
                        f"{rules['kv_cache_quant_algos']}")
    if algo in ("W4A16_AWQ", "W4A8_AWQ") and not isinstance(q.get("group_size"), int):
        problems.append(f"hf_quant_config.json: {algo} needs an integer group_size")
    inline = config.get("quantization_config") or {}
    if inline and inline.get("quant_algo") not in (None, algo):
        problems.append(f"config.json: quantization_config.quant_algo "
                        f"{inline.get('quant_algo')!r} disagrees with hf_quant_config.json's "
                        f"{algo!r}")
    return {"quant_algo": algo, "kv_cache_quant_algo": kv, "group_size": q.get("group_size"),
            "exclude_modules": q.get("exclude_modules") or q.get("ignore") or []}


def _check_compressed_tensors(config: dict[str, Any], problems: list[str]) -> None:
    qc = config.get("quantization_config") or {}
    groups = qc.get("config_groups")
    if not groups:
        problems.append("config.json: compressed-tensors quantization_config has no "
                        "config_groups")
        return
    for name, group in groups.items():
        if not (group.get("weights") or {}).get("num_bits"):
            problems.append(f"config.json: config_groups.{name} has no weights.num_bits")


def _check_online_transforms(config: dict[str, Any], tensors: dict[str, Any],
                             problems: list[str]) -> None:
    """Each online transform of transform_config (QuIP's `input`/`output` locations) needs its
    stored matrices, `<module>.<scheme>_<location>.weight`, square: an engine applying it
    (vLLM's HadamardTransform) loads them. Fused (weight_*) transforms store nothing."""
    groups = ((config.get("quantization_config") or {}).get("transform_config") or {}).get(
        "config_groups") or {}
    for name, scheme in groups.items():
        for location in sorted({a.get("location") for a in scheme.get("apply") or []}
                               & {"input", "output"}):
            suffix = f".{name}_{location}.weight"
            found = {k: v for k, v in tensors.items() if k.endswith(suffix)}
            if not found:
                problems.append(f"config.json: transform_config.config_groups.{name} applies "
                                f"an online {location} rotation, but no *{suffix} tensor is "
                                "stored")
            for key, entry in found.items():
                shape = list(entry["shape"])
                if len(shape) != 2 or shape[0] != shape[1]:
                    problems.append(f"{key} has shape {shape}, a rotation is square")


def _headers(path: Path, problems: list[str]) -> dict[str, dict[str, Any]]:
    """Every shard's tensor table; the index (when present) must point at real tensors."""
    index = path / "model.safetensors.index.json"
    if index.is_file():
        data = read_json(index, problems) or {}
        weight_map: dict[str, str] = data.get("weight_map") or {}
        files = sorted(set(weight_map.values()))
    else:
        weight_map, files = {}, sorted(p.name for p in path.glob("*.safetensors"))
    if not files:
        problems.append("no *.safetensors weights")
    headers: dict[str, dict[str, Any]] = {}
    for name in files:
        if not (path / name).is_file():
            problems.append(f"{name}: listed in the index but missing")
            continue
        header = read_header(path / name, problems)
        if header is not None:
            headers[name] = header
    lost = [t for t, f in weight_map.items() if f in headers and t not in headers[f]]
    if lost:
        problems.append(f"model.safetensors.index.json: {len(lost)} tensors not in the shard it "
                        f"names, e.g. {lost[0]}")
    return headers


def _check_layers(tensors: dict[str, Any], g: Geometry, layout: dict[str, Any] | None,
                  quant: dict[str, Any], problems: list[str],
                  ct_config: dict[str, Any] | None = None) -> None:
    """Each decoder layer's Linears: present, right shape, the quant_algo's dtype and scales
    (or, for a single-group compressed-tensors `ct_config`, its format's tensors)."""
    seen_layers = {int(m.group(1)) for t in tensors if (m := LAYER.match(t))}
    if seen_layers and seen_layers != set(range(g.layers)):
        problems.append(f"decoder layers {sorted(seen_layers)[:3]}..{max(seen_layers)} in the "
                        f"weights, config says num_hidden_layers {g.layers}")
    excluded = quant.get("exclude_modules") or []
    for i in sorted(seen_layers):
        prefix = next((p for p in (f"model.layers.{i}", f"layers.{i}")
                       if any(t.startswith(p + ".") for t in tensors)), f"model.layers.{i}")
        if ct_config is not None:
            _check_compressed_layer(prefix, ct_config, g, tensors, problems)
            continue
        for module, shape_of in LINEARS.items():
            name = f"{prefix}.{module}"
            entry = tensors.get(f"{name}.weight")
            if entry is None:
                if f"{name}.weight_packed" not in tensors:  # compressed-tensors packs elsewhere
                    problems.append(f"missing tensor {name}.weight")
                continue
            skip = any(fnmatch.fnmatch(name, p) for p in excluded)
            check_linear("", name, entry, shape_of(g), None if skip else layout, tensors,
                         problems)
        if quant.get("kv_cache_quant_algo"):
            for proj, scale in (("k_proj", "k_scale"), ("v_proj", "v_scale")):
                if f"{prefix}.self_attn.{proj}.{scale}" not in tensors:
                    problems.append(f"missing tensor {prefix}.self_attn.{proj}.{scale} (the "
                                    f"{quant['kv_cache_quant_algo']} KV cache scale)")


def _check_compressed_layer(prefix: str, config: dict[str, Any], g: Geometry,
                            tensors: dict[str, Any], problems: list[str]) -> None:
    """One decoder layer of a compressed-tensors checkpoint: Linears and KV cache scales."""
    fmt, group = compressed.group_of(config, [])
    ignore = (config.get("quantization_config") or {}).get("ignore") or []
    for module, shape_of in LINEARS.items():
        name = f"{prefix}.{module}"
        if name in ignore or any(i.startswith("re:") and re.match(i[3:], name) for i in ignore):
            if f"{name}.weight" not in tensors:
                problems.append(f"missing tensor {name}.weight (ignored: stored dense)")
            continue
        compressed.check_linear(name, shape_of(g), str(fmt), group, tensors, problems)
    compressed.check_kv_scales(prefix, config, g, tensors, problems)
