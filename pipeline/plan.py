"""Sizing and cost: predicted serving memory per GPU, the recommended recipe, $ per million tokens.

Memory = (weights + KV cache) x (1 + margin). Weights: the decoder's linear layers at the
scheme's bits (plus one 16-bit scale per group, and a zero point for asymmetric schemes),
embeddings, lm_head and norms at the serving dtype. KV cache, the seed guide's formula with
GQA: batch x seq_len x layers x 2 x hidden x bytes / gqa_factor (gqa_factor = heads / kv_heads;
hidden / gqa_factor is kv_heads x head_dim).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pipeline.compute import resolve_device
from pipeline.errors import OfflineMiss, QuenchError
from pipeline.geometry import Geometry
from pipeline.recipe.schema import Recipe

GIB = 1024**3
DEFAULT_BATCH, DEFAULT_SEQ_LEN, DEFAULT_MARGIN = 16, 4096, 0.2
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


@dataclass(frozen=True)
class Gpu:
    """A GPU: nominal memory, compute capability (FP8 tensor cores from 8.9) and a price."""

    name: str
    arch: str
    memory_gib: float
    compute: float
    usd_per_hour: float


# Prices: approximate on-demand cloud list prices per GPU-hour (USD), for orientation only;
# they differ between providers and change often: set cost.gpu_usd_per_hour in the recipe.
GPUS = (
    Gpu("T4", "Turing", 16, 7.5, 0.53),
    Gpu("L4", "Ada", 24, 8.9, 0.80),
    Gpu("A10G", "Ampere", 24, 8.6, 1.01),
    Gpu("A100-40G", "Ampere", 40, 8.0, 4.10),
    Gpu("A100-80G", "Ampere", 80, 8.0, 5.12),
    Gpu("H100", "Hopper", 80, 9.0, 6.88),
    Gpu("H200", "Hopper", 141, 9.0, 7.60),
)

# Shapes of common hub models, from their config.json, for sizing without the hub.
KNOWN_SHAPES: dict[str, dict[str, Any]] = {
    "llama-3.1-8b": dict(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32,
                         num_key_value_heads=8, intermediate_size=14336, vocab_size=128256,
                         tie_word_embeddings=False, torch_dtype="bfloat16"),
    "llama-3.1-70b": dict(hidden_size=8192, num_hidden_layers=80, num_attention_heads=64,
                          num_key_value_heads=8, intermediate_size=28672, vocab_size=128256,
                          tie_word_embeddings=False, torch_dtype="bfloat16"),
    "llama-3.2-1b": dict(hidden_size=2048, num_hidden_layers=16, num_attention_heads=32,
                         num_key_value_heads=8, intermediate_size=8192, vocab_size=128256,
                         tie_word_embeddings=True, torch_dtype="bfloat16"),
    "llama-3.2-3b": dict(hidden_size=3072, num_hidden_layers=28, num_attention_heads=24,
                         num_key_value_heads=8, intermediate_size=8192, vocab_size=128256,
                         tie_word_embeddings=True, torch_dtype="bfloat16"),
    "qwen2.5-7b": dict(hidden_size=3584, num_hidden_layers=28, num_attention_heads=28,
                       num_key_value_heads=4, intermediate_size=18944, vocab_size=152064,
                       tie_word_embeddings=False, torch_dtype="bfloat16"),
}


@dataclass(frozen=True)
class Scheme:
    """A quantization scheme as sizing sees it: weight bits, group, KV cache bytes."""

    label: str
    weight_bits: float | None  # None: weights at the serving dtype
    group_size: int | None = None
    asymmetric: bool = False
    fp8_kv: bool = False

    def bits_per_weight(self, dense_bytes: int) -> float:
        if self.weight_bits is None:
            return 8.0 * dense_bytes
        extra = (16 + (self.weight_bits if self.asymmetric else 0)) / self.group_size \
            if self.group_size else 0.0
        return self.weight_bits + extra


@dataclass(frozen=True)
class Estimate:
    weights_bytes: float
    kv_bytes: float
    margin: float

    @property
    def total_bytes(self) -> float:
        return (self.weights_bytes + self.kv_bytes) * (1 + self.margin)

    def as_gib(self) -> dict[str, float]:
        return {"weights_gib": self.weights_bytes / GIB, "kv_cache_gib": self.kv_bytes / GIB,
                "margin": self.margin, "total_gib": self.total_bytes / GIB}


def kv_cache_bytes(shape: Geometry, batch: int, seq_len: int, elem_bytes: float) -> float:
    """batch x seq_len x layers x 2 (K and V) x hidden x bytes / gqa_factor."""
    return batch * seq_len * shape.layers * 2 * shape.hidden * elem_bytes / shape.gqa_factor


def estimate(shape: Geometry, scheme: Scheme, dense_bytes: int, batch: int, seq_len: int,
             margin: float = DEFAULT_MARGIN) -> Estimate:
    weights = (shape.linear_params * scheme.bits_per_weight(dense_bytes) / 8
               + shape.other_params * dense_bytes)
    kv = kv_cache_bytes(shape, batch, seq_len, 1 if scheme.fp8_kv else dense_bytes)
    return Estimate(weights, kv, margin)


def recipe_scheme(recipe: Recipe) -> Scheme:
    """The recipe's method/scheme in sizing terms."""
    q = recipe.quantization
    opts, scheme = q.options, str(q.scheme)
    if q.method == "none":
        return Scheme("unquantized", None)
    if q.method == "llmcompressor":
        raise QuenchError("quantization.method: llmcompressor (a raw recipe) has no scheme "
                          "sizing can read; size the scheme it applies instead")
    kv = bool(opts.get("kv_cache"))  # fp8 and modelopt: an FP8 KV cache
    if scheme.startswith("FP8"):
        return Scheme(scheme + (" + FP8 KV" if kv else ""), 8, fp8_kv=kv)
    if scheme.startswith("INT") and scheme[3:4].isdigit():  # modelopt: INT8_SQ, INT4_AWQ
        bits = int(scheme[3])
        group = opts.get("group_size") if bits == 4 else None
        return Scheme(scheme + (" + FP8 KV" if kv else ""), bits, group, fp8_kv=kv)
    bits = int(scheme[1]) if scheme[:1] == "W" and scheme[1:2].isdigit() else None
    if bits is None:
        raise QuenchError(f"quantization.scheme: sizing does not know {scheme!r}")
    from pipeline.methods import get_method

    group = get_method(q.method).group_size(scheme, opts)
    asym = scheme.endswith("_ASYM") or opts.get("symmetric") is False
    return Scheme(scheme, bits, group, asym)


# The seed decision tree's candidates, each with the bundled example recipe it corresponds to.
FP8 = Scheme("FP8_DYNAMIC + FP8 KV", 8, fp8_kv=True)
INT8 = Scheme("W8A8 (SmoothQuant)", 8)
INT4 = Scheme("W4A16_ASYM (AWQ)", 4, 128, asymmetric=True)
EXAMPLES = {FP8.label: "recipes/examples/llama31-8b-fp8-h100.yaml",
            INT8.label: "recipes/examples/llama31-8b-int8-sq-a100.yaml",
            INT4.label: "recipes/examples/llama31-8b-int4-awq.yaml"}


def max_batch(gpu: Gpu, shape: Geometry, scheme: Scheme, dense_bytes: int, seq_len: int,
              margin: float) -> int:
    """The largest batch of seq_len-token sequences that fits (0: not even the weights)."""
    one = estimate(shape, scheme, dense_bytes, 1, seq_len, 0.0)
    room = gpu.memory_gib * GIB / (1 + margin) - one.weights_bytes
    return max(0, int(room // one.kv_bytes))


def recommend(gpu: Gpu, shape: Geometry, dense_bytes: int, batch: int, seq_len: int,
              margin: float) -> tuple[Scheme, int] | None:
    """Hopper/Ada: FP8 + FP8 KV; Ampere (and Turing): INT8 SmoothQuant; tight memory: INT4 AWQ.

    Returns the scheme and the largest batch it fits at (below `batch` when only INT4 fits
    at a smaller one), or None when not even one sequence fits.
    """
    first = FP8 if gpu.compute >= 8.9 else INT8
    fits = {s: max_batch(gpu, shape, s, dense_bytes, seq_len, margin) for s in (first, INT4)}
    for scheme in (first, INT4):
        if fits[scheme] >= batch:
            return scheme, fits[scheme]
    best = max((first, INT4), key=lambda s: fits[s])
    return (best, fits[best]) if fits[best] >= 1 else None


def serving_dtype_bytes(shape: Geometry, option: str | None = None) -> int:
    """vLLM's `auto` dtype: the checkpoint's, but float32 checkpoints are served in bfloat16."""
    if option and option != "auto":
        return DTYPE_BYTES.get(option, 2)
    return 2 if shape.dtype == "float32" else DTYPE_BYTES.get(shape.dtype, 2)


def model_shape(recipe: Recipe) -> tuple[Geometry, str]:
    """The model's shape and where it came from: its config.json, or the known-shapes table."""
    from pipeline.sources import model_config, resolve_spec

    ref = recipe.model.id
    try:
        resolved = resolve_spec(recipe.model, download=False)
        if resolved.origin != "hub":
            where = resolved.gguf_file or resolved.path / "config.json"
            return Geometry.for_sizing(model_config(resolved)), str(where)
    except OfflineMiss:
        pass
    key = ref.rsplit("/", 1)[-1].lower().removesuffix("-instruct")
    if key in KNOWN_SHAPES:
        return Geometry.for_sizing(KNOWN_SHAPES[key]), f"known shape of {key} (quench.plan)"
    raise QuenchError(f"model.id: {ref!r}: no config.json offline (local folder or mirror) and "
                      f"not a known shape ({', '.join(KNOWN_SHAPES)})")


def gpu_price(recipe: Recipe, name: str) -> float | None:
    """USD/hour of a GPU: the recipe's override, else the table's; None when unknown."""
    overrides = {k.lower(): v for k, v in recipe.cost.gpu_usd_per_hour.items()}
    if name.lower() in overrides:
        return overrides[name.lower()]
    return next((g.usd_per_hour for g in GPUS if g.name.lower() == name.lower()), None)


def usd_per_million_tokens(usd_per_hour: float, tokens_per_s: float) -> float:
    return usd_per_hour / (tokens_per_s * 3600) * 1e6


def plan(recipe: Recipe, batch: int | None = None, seq_len: int | None = None,
         margin: float = DEFAULT_MARGIN) -> dict[str, Any]:
    """The sizing table: this recipe and the recommended one on each GPU."""
    spec = recipe.evaluation.throughput
    batch = batch or (max(spec.concurrency) if spec else DEFAULT_BATCH)
    seq_len = seq_len or (spec.input_len + spec.output_len if spec else DEFAULT_SEQ_LEN)
    shape, source = model_shape(recipe)
    options = recipe.target.options if recipe.target else {}
    dense = serving_dtype_bytes(shape, options.get("dtype"))
    scheme = recipe_scheme(recipe)
    mine = estimate(shape, scheme, dense, batch, seq_len, margin)
    rows = []
    for gpu in GPUS:
        rec = recommend(gpu, shape, dense, batch, seq_len, margin)
        rec_est = estimate(shape, rec[0], dense, batch, seq_len, margin) if rec else None
        rows.append({
            "gpu": gpu.name, "arch": gpu.arch, "memory_gib": gpu.memory_gib,
            "usd_per_hour": gpu_price(recipe, gpu.name),
            "fits": mine.total_bytes <= gpu.memory_gib * GIB,
            "fp8_compute": gpu.compute >= 8.9,
            "max_batch": max_batch(gpu, shape, scheme, dense, seq_len, margin),
            "recommended": rec[0].label if rec else None,
            "recommended_max_batch": rec[1] if rec else None,
            "recommended_total_gib": rec_est.total_bytes / GIB if rec_est else None,
            "example": EXAMPLES[rec[0].label] if rec else None,
        })
    from pipeline import memory  # memory builds on this module's shapes

    return {"model": recipe.model.id, "shape": asdict(shape), "shape_source": source,
            "params": shape.linear_params + shape.other_params, "dense_bytes": dense,
            "scheme": scheme.label, "batch": batch, "seq_len": seq_len,
            "estimate": mine.as_gib(), "gpus": rows,
            "run_memory": {"device": resolve_device(recipe.compute.device),
                           "steps": memory.as_rows(memory.predict(recipe, shape))}}


def render(p: dict[str, Any]) -> str:
    """The plan as text for the terminal."""
    e = p["estimate"]
    lines = [
        f"model {p['model']}: {p['params'] / 1e9:.3f} B parameters ({p['shape_source']})",
        f"recipe scheme {p['scheme']}, other weights {p['dense_bytes']} bytes each; "
        f"batch {p['batch']} x seq_len {p['seq_len']}:",
        f"  weights {_size(e['weights_gib'])} + KV cache {_size(e['kv_cache_gib'])}, "
        f"+{e['margin']:.0%} margin = {_size(e['total_gib'])}",
        "",
        f"{'GPU':<9} {'arch':<7} {'GiB':>4} {'$/h':>5}  {'this recipe':<13} {'max batch':>9}"
        "  recommended",
    ]
    fp8 = p["scheme"].startswith("FP8")
    for r in p["gpus"]:
        mine = ("fits" if r["fits"] else "does not fit") + ("*" if fp8 and not r["fp8_compute"]
                                                              else "")
        rec = "nothing fits on one GPU: tensor parallelism"
        if r["recommended"]:
            rec = f"{r['recommended']}, {_size(r['recommended_total_gib'])}"
            if r["recommended_max_batch"] < p["batch"]:
                rec = f"{r['recommended']} at batch <= {r['recommended_max_batch']} only"
            rec += f" (like {r['example']})"
        price = f"{r['usd_per_hour']:.2f}" if r["usd_per_hour"] is not None else "-"
        lines.append(f"{r['gpu']:<9} {r['arch']:<7} {r['memory_gib']:>4g} {price:>5}  "
                     f"{mine:<13} {r['max_batch']:>9}  {rec}")
    if fp8:
        lines += ["", "* no FP8 compute: FP8 W8A8 needs compute capability >= 8.9 (Ada, Hopper)."]
    lines += ["", "GPU memory is nominal (usable memory is a little lower); $/h are approximate "
              "on-demand prices: override with cost.gpu_usd_per_hour."]
    from pipeline.memory import render_run_memory

    return "\n".join(lines + render_run_memory(p["run_memory"]))


def _size(gib: float) -> str:
    return f"{gib:.2f} GiB" if gib >= 1 else f"{gib * 1024:.1f} MiB"


def config_shape(model_dir: Path) -> Geometry:
    return Geometry.for_sizing(json.loads((Path(model_dir) / "config.json").read_text()))
