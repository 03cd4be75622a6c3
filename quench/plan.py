"""Sizing and cost: predicted serving memory per GPU, the recommended recipe, $ per million tokens.

Memory = (weights + KV cache) x (1 + margin). Weights: the decoder's linear layers at the
scheme's bits (plus one scale per group at the scheme's scale width: 16-bit, FP8 E4M3 per 16
for NVFP4, E8M0 per 32 for MXFP4, float32 per 128x128 block for FP8_BLOCK; a zero point for
asymmetric schemes; float32 per-tensor global scales for NVFP4), embeddings, lm_head and
norms at the serving dtype. KV cache, the seed guide's formula with
GQA: batch x seq_len x layers x 2 x hidden x bytes / gqa_factor (gqa_factor = heads / kv_heads;
hidden / gqa_factor is kv_heads x head_dim).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from quench import stage_memory as memory
from quench.compat import Gpu, sized_gpus
from quench.compute import resolve_device
from quench.errors import OfflineMiss, QuenchError
from quench.geometry import Geometry
from quench.memory_fit import offload_advice
from quench.methods import Storage, get_method
from quench.plan_cpu import cpu_hosts, render_cpu_hosts
from quench.recipe.schema import Recipe
from quench.stage_memory import DTYPE_BYTES, GIB, format_size

DEFAULT_BATCH, DEFAULT_SEQ_LEN, DEFAULT_MARGIN = 16, 4096, 0.2
FP8_COMPUTE = 8.9  # compute capability of the first FP8 tensor cores (Ada)
FP4_COMPUTE = 10.0  # compute capability of the first FP4 tensor cores (Blackwell)
LINEARS_PER_LAYER = 7  # q, k, v, o, gate, up, down: each carries its own per-tensor scales
GPUS: tuple[Gpu, ...] = sized_gpus()  # quench/compat/matrix.yaml `gpus:`, smallest first

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
    scale_bits: int = 16  # one scale per group
    fp8_compute: bool = False  # FP8 activations: FP8 tensor cores needed
    tensor_scale_bytes: int = 0  # per quantized Linear (NVFP4's float32 global scales)
    fp4_compute: bool = False  # FP4 activations: FP4 tensor cores (Blackwell) needed

    @classmethod
    def of(cls, label: str, storage: Storage) -> Scheme:
        """The scheme a method's Storage describes."""
        return cls(label, storage.weight_bits, storage.group_size or storage.block_weights,
                   storage.zero_points,
                   storage.kv_cache_dtype == "fp8", 8 * storage.scale_bytes,
                   storage.needs_fp8_compute, storage.tensor_scale_bytes,
                   storage.needs_fp4_compute)

    @property
    def min_compute(self) -> float:
        """The compute capability its activations need tensor cores of (0: any)."""
        return FP4_COMPUTE if self.fp4_compute else FP8_COMPUTE if self.fp8_compute else 0.0

    def bits_per_weight(self, dense_bytes: int) -> float:
        if self.weight_bits is None:
            return 8.0 * dense_bytes
        extra = (self.scale_bits + (self.weight_bits if self.asymmetric else 0)) \
            / self.group_size if self.group_size else 0.0
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
               + shape.layers * LINEARS_PER_LAYER * scheme.tensor_scale_bytes
               + shape.other_params * dense_bytes)
    kv = kv_cache_bytes(shape, batch, seq_len, 1 if scheme.fp8_kv else dense_bytes)
    return Estimate(weights, kv, margin)


def recipe_scheme(recipe: Recipe) -> Scheme:
    """The recipe's method/scheme in sizing terms, as the method says it stores them."""
    q = recipe.quantization
    storage = get_method(q.method).storage(q.scheme, q.options)
    if storage is None:
        raise QuenchError(f"quantization.method: {q.method} ({q.scheme}) has no scheme sizing "
                          "can read; size the scheme it applies instead")
    if not storage.quantized:
        return Scheme.of("unquantized", storage)
    return Scheme.of(str(q.scheme) + (" + FP8 KV" if storage.kv_cache_dtype == "fp8" else ""),
                     storage)


def _candidate(label: str, method: str, scheme: str, **options: object) -> Scheme:
    """A scheme of the decision tree, sized from its method's own Storage."""
    m = get_method(method)
    return Scheme.of(label, m.storage(scheme, m.parse_options(options)))


# The seed decision tree's candidates, each with the bundled example recipe it corresponds to.
FP8 = _candidate("FP8_DYNAMIC + FP8 KV", "fp8", "FP8_DYNAMIC", kv_cache=True)
INT8 = _candidate("W8A8 (SmoothQuant)", "smoothquant", "W8A8")
INT4 = _candidate("W4A16_ASYM (AWQ)", "awq", "W4A16_ASYM")
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
    first = FP8 if gpu.compute >= FP8_COMPUTE else INT8
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
    from quench.sources import model_config, resolve_spec

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
            "gpu": gpu.name, "arch": gpu.arch.capitalize(), "memory_gib": gpu.memory_gib,
            "usd_per_hour": gpu_price(recipe, gpu.name),
            "fits": mine.total_bytes <= gpu.memory_gib * GIB,
            "fp8_compute": gpu.compute >= FP8_COMPUTE,
            "compute_ok": gpu.compute >= scheme.min_compute,
            "max_batch": max_batch(gpu, shape, scheme, dense, seq_len, margin),
            "recommended": rec[0].label if rec else None,
            "recommended_max_batch": rec[1] if rec else None,
            "recommended_total_gib": rec_est.total_bytes / GIB if rec_est else None,
            "example": EXAMPLES[rec[0].label] if rec else None,
        })
    return {"model": recipe.model.id, "shape": asdict(shape), "shape_source": source,
            "params": shape.linear_params + shape.other_params, "dense_bytes": dense,
            "scheme": scheme.label, "scheme_needs_fp8_compute": scheme.fp8_compute,
            "scheme_min_compute": scheme.min_compute,
            "batch": batch, "seq_len": seq_len,
            "estimate": mine.as_gib(), "gpus": rows,
            "cpu_hosts": cpu_hosts(shape, batch, seq_len, margin),
            "run_memory": run_memory(recipe, shape)}


def run_memory(recipe: Recipe, shape: Geometry) -> dict[str, Any]:
    """Each stage's predicted peak on this machine, and the offload settings that would fit
    when a stage does not."""
    device = resolve_device(recipe.compute.device)
    host, _ = memory.machine_memory("cpu")
    steps = memory.predict(recipe, shape, device, host)
    advice = None
    if any(s.host_bytes > host for s in steps):
        advice = offload_advice(recipe, shape, host)
    return {"device": device, "host_gib": host / GIB, "steps": memory.as_rows(steps),
            "offload_advice": advice}


def render(p: dict[str, Any]) -> str:
    """The plan as text for the terminal."""
    e = p["estimate"]
    lines = [
        f"model {p['model']}: {p['params'] / 1e9:.3f} B parameters ({p['shape_source']})",
        f"recipe scheme {p['scheme']}, other weights {p['dense_bytes']} bytes each; "
        f"batch {p['batch']} x seq_len {p['seq_len']}:",
        f"  weights {format_size(e['weights_gib'])} + KV cache {format_size(e['kv_cache_gib'])}, "
        f"+{e['margin']:.0%} margin = {format_size(e['total_gib'])}",
        "",
        f"{'GPU':<9} {'arch':<7} {'GiB':>4} {'$/h':>5}  {'this recipe':<13} {'max batch':>9}"
        "  recommended",
    ]
    fp8, fp4 = p["scheme_needs_fp8_compute"], p.get("scheme_min_compute") == FP4_COMPUTE
    for r in p["gpus"]:
        mine = ("fits" if r["fits"] else "does not fit") + ("" if r.get("compute_ok", True)
                                                              else "*")
        rec = "nothing fits on one GPU: tensor parallelism"
        if r["recommended"]:
            rec = f"{r['recommended']}, {format_size(r['recommended_total_gib'])}"
            if r["recommended_max_batch"] < p["batch"]:
                rec = f"{r['recommended']} at batch <= {r['recommended_max_batch']} only"
            rec += f" (like {r['example']})"
        price = f"{r['usd_per_hour']:.2f}" if r["usd_per_hour"] is not None else "-"
        lines.append(f"{r['gpu']:<9} {r['arch']:<7} {r['memory_gib']:>4g} {price:>5}  "
                     f"{mine:<13} {r['max_batch']:>9}  {rec}")
    if fp4:
        lines += ["", "* no FP4 compute: FP4 W4A4 (NVFP4, MXFP4) needs Blackwell (compute "
                  "capability >= 10.0); elsewhere vLLM runs FP4 checkpoints weight-only."]
    elif fp8:
        lines += ["", "* no FP8 compute: FP8 W8A8 needs compute capability >= 8.9 (Ada, Hopper)."]
    lines += ["", "GPU memory is nominal (usable memory is a little lower); $/h are approximate "
              "on-demand prices: override with cost.gpu_usd_per_hour."]
    lines += render_cpu_hosts(p["cpu_hosts"], p["batch"], p["seq_len"])
    return "\n".join(lines + memory.render_run_memory(p["run_memory"]))


def config_shape(model_dir: Path) -> Geometry:
    return Geometry.for_sizing(json.loads((Path(model_dir) / "config.json").read_text()))
