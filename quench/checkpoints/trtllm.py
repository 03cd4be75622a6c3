"""The TensorRT-LLM checkpoint (legacy engine input): config.json + rank<N>.safetensors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from quench.checkpoints.common import check_linear, read_header, read_json, spec
from quench.geometry import Geometry

GATED_ACTS = ("silu", "swiglu", "gelu_new_gated", "geglu")  # MLPs with a separate gate GEMM


def check(path: Path, kind: str, source: dict[str, Any] | None,
          problems: list[str]) -> dict[str, Any]:
    """Adds the checkpoint's problems to `problems`; returns its facts."""
    rules = spec()["trtllm_checkpoint"]
    config = read_json(path / "config.json", problems)
    if config is None:
        return {}
    missing = [k for k in rules["required"] if k not in config]
    if missing:
        problems.append(f"config.json: missing required keys {missing} (TensorRT-LLM "
                        f"checkpoint format, {rules['source'].split()[0]})")
        return {}
    if config["dtype"] not in rules["dtypes"]:
        problems.append(f"config.json: dtype {config['dtype']!r} not one of {rules['dtypes']}")
    quant = config.get("quantization") or {}
    algo, kv_algo = quant.get("quant_algo"), quant.get("kv_cache_quant_algo")
    if algo is not None and algo not in rules["quant_algos"]:
        problems.append(f"config.json: quantization.quant_algo {algo!r} is not a TensorRT-LLM "
                        f"quantization algorithm; allowed: {', '.join(rules['quant_algos'])}")
    if kv_algo is not None and kv_algo not in rules["kv_cache_quant_algos"]:
        problems.append(f"config.json: quantization.kv_cache_quant_algo {kv_algo!r} not one of "
                        f"{rules['kv_cache_quant_algos']}")
    world, tp = _mapping(config, problems)
    geometry = _geometry(config, source, problems)
    headers = _rank_headers(path, world, problems)
    if geometry is not None:
        for rank, header in headers.items():
            _check_tensors(header, config, geometry, tp, f"rank{rank}.safetensors", problems)
    return {"quant_algo": algo, "kv_cache_quant_algo": kv_algo, "world_size": world,
            "tensors": sum(len(h) for h in headers.values()),
            "files": [f"rank{r}.safetensors" for r in sorted(headers)]}


def _mapping(config: dict[str, Any], problems: list[str]) -> tuple[int, int]:
    mapping = config.get("mapping") or {}
    world = int(mapping.get("world_size", 1))
    tp, pp = int(mapping.get("tp_size", 1)), int(mapping.get("pp_size", 1))
    if world != tp * pp:
        problems.append(f"config.json: mapping.world_size {world} != tp_size {tp} x pp_size {pp}")
    return world, tp


def _geometry(config: dict[str, Any], source: dict[str, Any] | None,
              problems: list[str]) -> Geometry | None:
    """The model's shapes; the config's head_size must agree with the source model's."""
    try:
        own = Geometry.of(config)
    except (KeyError, TypeError, ValueError) as exc:
        problems.append(f"config.json: cannot read the model geometry ({exc})")
        return None
    if source is None:
        if "head_size" in config and own.head_dim * own.heads != own.hidden:
            problems.append(f"config.json: head_size {own.head_dim} x num_attention_heads "
                            f"{own.heads} != hidden_size {own.hidden}")
        return own
    true = Geometry.of(source)
    for field in ("layers", "hidden", "heads", "kv_heads", "head_dim"):
        if getattr(own, field) != getattr(true, field):
            key = {"layers": "num_hidden_layers", "hidden": "hidden_size",
                   "heads": "num_attention_heads", "kv_heads": "num_key_value_heads",
                   "head_dim": "head_size"}[field]
            problems.append(f"config.json: {key} {getattr(own, field)} disagrees with the source "
                            f"model's {getattr(true, field)}")
    return true


def _rank_headers(path: Path, world: int, problems: list[str]) -> dict[int, dict[str, Any]]:
    """rank0..rank<world-1>.safetensors must all be there, and no others."""
    headers: dict[int, dict[str, Any]] = {}
    for rank in range(world):
        file = path / f"rank{rank}.safetensors"
        if not file.is_file():
            problems.append(f"{file.name}: missing (mapping.world_size is {world})")
            continue
        header = read_header(file, problems)
        if header is not None:
            headers[rank] = header
    extra = sorted(p.name for p in path.glob("rank*.safetensors")
                   if p.stem[4:].isdigit() and int(p.stem[4:]) >= world)
    if extra:
        problems.append(f"{extra}: rank files beyond mapping.world_size {world}")
    return headers


def _expected(config: dict[str, Any], g: Geometry, tp: int) -> dict[str, tuple[int, int]]:
    """Unpacked (out, in) shape of each per-layer Linear on one tensor-parallel rank."""
    kv = max(g.kv_heads // tp, 1)
    inter = int(config.get("intermediate_size") or g.intermediate or 4 * g.hidden) // tp
    shapes = {"attention.qkv": ((g.heads // tp + 2 * kv) * g.head_dim, g.hidden),
              "attention.dense": (g.hidden, g.heads // tp * g.head_dim),
              "mlp.fc": (inter, g.hidden), "mlp.proj": (g.hidden, inter)}
    if config["hidden_act"] in GATED_ACTS:
        shapes["mlp.gate"] = (inter, g.hidden)
    return shapes


def _check_tensors(header: dict[str, Any], config: dict[str, Any], g: Geometry, tp: int,
                   file: str, problems: list[str]) -> None:
    quant = config.get("quantization") or {}
    layout = spec()["layouts"].get(quant.get("quant_algo") or "", {}).get("trtllm")
    excluded = set(quant.get("exclude_modules") or [])
    names = ["transformer.vocab_embedding.weight", "transformer.ln_f.weight"]
    if not config.get("share_embedding_table"):
        names.append("lm_head.weight")
    shapes = _expected(config, g, tp)
    for i in range(g.layers):
        prefix = f"transformer.layers.{i}"
        names += [f"{prefix}.input_layernorm.weight", f"{prefix}.post_layernorm.weight"]
        for module, (out, inp) in shapes.items():
            name = f"{prefix}.{module}"
            entry = header.get(f"{name}.weight")
            if entry is None:
                problems.append(f"{file}: missing tensor {name}.weight")
                continue
            check_linear(f"{file}: ", name, entry, (out, inp),
                         None if name in excluded else layout, header, problems)
        if quant.get("kv_cache_quant_algo"):
            names.append(f"{prefix}.attention.kv_cache_scaling_factor")
    absent = [n for n in names if n not in header]
    if absent:
        problems.append(f"{file}: missing tensors {absent[:5]}"
                        + (f" and {len(absent) - 5} more" if len(absent) > 5 else ""))
