"""Predicted peak memory of each stage that holds a model, host RAM and accelerator.

A stage's peak is the runtime (interpreter and libraries) plus its largest phase:
- quantize: one dense copy of the model (at the load dtype) and, at the same time, the
  method's working set on one decoder layer (GPTQ's float32 Hessians, AWQ's float32 layer
  copies and cached activations: `Method.working_set`) or the compressed state dict being
  saved; then the saved checkpoint reloaded dense while its packed weights are mapped.
- baseline_eval, evaluate, lm_eval: one dense copy, the packed weights of a compressed
  checkpoint (mapped from disk while it is dequantized), a batch of float32 logits.
With disk offload (compute.offload_folder) the dense copy becomes compute.max_cpu_memory (or
the whole model when it fits) plus the modules onloaded at a time: one decoder layer and the
largest single tensor (the embedding). The coefficients below are fitted to the scaling
benchmark (`make bench-scaling`: RTN, GPTQ, AWQ, SmoothQuant on 0.4-2.2 GB models, each stage
within 15 % of the measured peak); llm-compressor onloads one layer to an accelerator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from quench.compute import resolve_device
from quench.geometry import Geometry
from quench.methods import Method, WorkingSet, get_method
from quench.offload import OFFLOAD_SHARD_SIZE
from quench.recipe.schema import Recipe
from quench.units import parse_size

GIB = 1024**3
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
RUNTIME_BYTES = int(0.55 * GIB)  # resident before any model: interpreter and libraries
SLACK = 1.0  # the fitted terms below already carry the allocator's fragmentation
LOGITS_COPIES = 1.0  # float32 logits of a batch (its rows' log-softmax comes one at a time)
SAVE_COPIES = 1.2  # compressing: packed weights made beside the dense ones, x their bytes
HESSIAN_COPIES = 2.5  # GPTQ: Hessians, their inverse and Cholesky factor, float32 weights
# llm-compressor's own estimate for a model-free shard: 2.5x its tensors
# (llmcompressor/entrypoints/model_free/__init__.py, _validate_shard's fallback)
MODEL_FREE_SHARD_FACTOR = 2.5
# the reload check's forward, one held-out record at a time: float32 logits and two float64
# copies the cosine is computed on (quench/metrics/fidelity.py), per token per vocabulary entry
HELDOUT_LOGIT_BYTES = 4 + 8 + 8
LM_EVAL_TOKENS = 2048  # the longest lm-eval request assumed per sequence of a batch
OFFLOAD_SHARD_BYTES = parse_size(OFFLOAD_SHARD_SIZE)
CT_RESERVED_BYTES = 5 * 10**9  # compressed-tensors keeps this much RAM free by default


@dataclass(frozen=True)
class StepMemory:
    """One stage's predicted peak: host bytes and accelerator bytes (0: it does not use one)."""

    step: str
    host_bytes: float
    accelerator_bytes: float
    note: str


@dataclass(frozen=True)
class Sizes:
    """The byte counts every prediction is made of, for one recipe on one model."""

    model: float  # one dense copy at the load dtype
    packed: float  # the quantized checkpoint's linear weights (0: unquantized)
    checkpoint: float  # the whole quantized checkpoint
    layer: float  # one decoder layer's weights at the load dtype
    largest_tensor: float  # the embedding (or lm_head)
    resident: float  # weights kept in RAM: the model, or what the offload budget holds
    shard: float  # the largest safetensors shard of a checkpoint quench writes while offloading

    @property
    def offloaded(self) -> bool:
        return self.resident < self.model

    @property
    def onloaded(self) -> float:
        """While offloaded: the largest module read back from disk at a time (a decoder layer
        or the embedding)."""
        return max(self.layer, self.largest_tensor) if self.offloaded else 0.0


def load_dtype_bytes(recipe: Recipe, shape: Geometry) -> int:
    """Bytes per weight at model.dtype (auto: the checkpoint's torch_dtype)."""
    name = shape.dtype if recipe.model.dtype == "auto" else recipe.model.dtype
    return DTYPE_BYTES.get(name, 4)


def layer_weight_bytes(shape: Geometry, dtype_bytes: int) -> float:
    return shape.linear_params / shape.layers * dtype_bytes


def gptq_hessian_bytes(shape: Geometry) -> float:
    """One float32 Hessian per Linear of a decoder layer: q, k, v, o, gate, up and down."""
    q_in = shape.hidden
    o_in = shape.heads * shape.head_dim
    return 4.0 * (3 * q_in**2 + o_in**2 + 2 * shape.hidden**2 + shape.intermediate**2)


def packed_bytes(method: Method[Any], recipe: Recipe, shape: Geometry) -> float:
    """Bytes of the quantized linear weights with their scales (0: stored dense)."""
    q = recipe.quantization
    storage = method.storage(q.scheme, q.options)
    if storage is None or storage.weight_bits is None:
        return 0.0
    group = storage.group_size or storage.block_weights
    extra = (8 * storage.scale_bytes + (storage.weight_bits if storage.zero_points else 0)) \
        / group if group else 0.0
    return shape.linear_params * (storage.weight_bits + extra) / 8


def offload_budget(recipe: Recipe, host_bytes: int | None) -> float | None:
    """Weights the offloaded model keeps in RAM: compute.max_cpu_memory, else what
    compressed-tensors leaves (available RAM - 5 GB); None: not offloaded."""
    c = recipe.compute
    if not c.offload_folder:
        return None
    if c.max_cpu_memory:
        return float(parse_size(c.max_cpu_memory))
    return float(max((host_bytes or 0) - CT_RESERVED_BYTES, 0))


def sizes(recipe: Recipe, shape: Geometry, host_bytes: int | None = None) -> Sizes:
    """The byte counts of this recipe's model (host_bytes: RAM, for the default budget)."""
    method = get_method(recipe.quantization.method)
    dtype = load_dtype_bytes(recipe, shape)
    model = float((shape.linear_params + shape.other_params) * dtype)
    packed = packed_bytes(method, recipe, shape)
    checkpoint = packed + shape.other_params * dtype if packed else model
    layer = layer_weight_bytes(shape, dtype)
    embedding = float((shape.vocab or 0) * shape.hidden * dtype)
    budget = offload_budget(recipe, host_bytes)
    # accelerate keeps room for the largest module inside the budget (infer_auto_device_map)
    resident = model if budget is None or budget >= model else \
        max(budget - max(layer, embedding), 0.0)
    shard = float(min(parse_size(recipe.output.max_shard_size), OFFLOAD_SHARD_BYTES))
    return Sizes(model, packed, checkpoint, layer, embedding, resident, shard)


def method_bytes(work: WorkingSet, recipe: Recipe, shape: Geometry) -> float:
    """The method's working set on one decoder layer, beside the model."""
    c = recipe.calibration
    total = HESSIAN_COPIES * gptq_hessian_bytes(shape) if work.hessians else 0.0
    total += work.layer_float32_copies * layer_weight_bytes(shape, 4)
    if work.cached_activations:  # the inputs of the layer's four mapping parents (AWQ)
        width = 4 * shape.hidden + shape.intermediate
        total += c.num_samples * c.max_seq_length * width * load_dtype_bytes(recipe, shape)
    return total


def predict(recipe: Recipe, shape: Geometry, device: str | None = None,
            host_bytes: int | None = None) -> list[StepMemory]:
    """Every model-holding stage's predicted peak on `device` (default: the recipe's)."""
    device = device or resolve_device(recipe.compute.device)
    on_gpu = device != "cpu"
    s = sizes(recipe, shape, host_bytes)
    steps = [_quantize(recipe, shape, s, on_gpu)]
    p = recipe.evaluation.perplexity
    if p is not None:
        logits = LOGITS_COPIES * p.batch_size * (p.window + 1) * shape.vocab * 4.0
        what = f"a batch of {p.batch_size} x {p.window} float32 logits"
        steps.append(_evaluation("baseline_eval", recipe, s, 0.0, logits, on_gpu, what))
        steps.append(_evaluation("evaluate", recipe, s, s.packed, logits, on_gpu, what))
    if recipe.evaluation.lm_eval is not None and "hf" in recipe.evaluation.lm_eval.engines:
        batch = recipe.evaluation.lm_eval.batch_size
        logits = LOGITS_COPIES * batch * LM_EVAL_TOKENS * shape.vocab * 4.0
        steps.append(_evaluation("lm_eval", recipe, s, s.packed, logits, on_gpu,
                                 f"hf: {batch} x {LM_EVAL_TOKENS} float32 logits"))
    return steps


def _weights_note(recipe: Recipe, s: Sizes) -> str:
    if s.offloaded:
        return (f"{format_size(s.resident / GIB)} of weights in RAM, the rest read from "
                f"{recipe.compute.offload_folder} a module at a time")
    return "one dense copy"


def _quantize(recipe: Recipe, shape: Geometry, s: Sizes, on_gpu: bool) -> StepMemory:
    """llm-compressor: model on the host, one layer onloaded; ModelOpt: all of it on device."""
    q = recipe.quantization
    method = get_method(q.method)
    caps = method.capabilities
    if caps.files_dense_copies:  # gguf: transformers' GGUF loader dequantizes the file
        return _step("quantize", RUNTIME_BYTES + caps.files_dense_copies * s.model, 0.0,
                     "the GGUF dequantized by transformers' loader (its tensors and the model)")
    if not caps.loads_model:  # model_free: one safetensors shard (Hub shards are <= 5 GB)
        shard = min(s.model, 5 * 10**9) * MODEL_FREE_SHARD_FACTOR
        return _step("quantize", RUNTIME_BYTES + shard, 0.0,
                     "one safetensors shard at a time, never the whole model (model_free)")
    work = method_bytes(method.working_set(q.scheme, q.options), recipe, shape)
    onloaded = s.onloaded
    save = SAVE_COPIES * (min(s.packed, s.shard) if s.offloaded else s.packed)
    note = _weights_note(recipe, s)
    if caps.loads_on_device and on_gpu:
        return _step("quantize", RUNTIME_BYTES + save, s.model + work,
                     "whole model on the device (ModelOpt calibrates with forward passes)")
    if on_gpu:
        return _step("quantize", RUNTIME_BYTES + s.resident + onloaded + save,
                     s.layer + work, f"{note} on the host, one decoder layer and the "
                     "method's working set on the device")
    heldout = HELDOUT_LOGIT_BYTES * recipe.calibration.max_seq_length * shape.vocab \
        if method.needs_calibration(q.scheme, q.options) else 0.0
    phases = {  # what each phase holds beside the runtime (quench.compute.PhasePeaks names them)
        "the method's working set on one layer": s.resident + onloaded + work,
        "the weights being compressed": s.resident + onloaded + save,
        # the saved checkpoint reloaded alone (one forward per held-out record when calibrated)
        "the reload": _checkpoint_in_ram(s) + (max(onloaded, heldout) if heldout else 0.0),
    }
    what = max(phases, key=phases.__getitem__)
    return _step("quantize", RUNTIME_BYTES + phases[what], 0.0, f"{note} + {what}")


def _checkpoint_in_ram(s: Sizes, compressed: bool = True) -> float:
    """Host bytes of a loaded checkpoint: its dense weights in RAM and the packed ones mapped
    from disk while they are dequantized (all of them, or one shard at a time when offloaded:
    the budget then holds compressed modules, dequantized in place)."""
    if not (compressed and s.packed):
        return s.resident
    if not s.offloaded:
        return s.resident + s.packed
    return min(s.model, s.resident * s.model / s.checkpoint) + min(s.packed, s.shard)


def _evaluation(name: str, recipe: Recipe, s: Sizes, packed: float, batch: float,
                on_gpu: bool, what: str) -> StepMemory:
    """A stage scoring the model (dequantized when compressed) on batches."""
    note = f"{_weights_note(recipe, s)} + {what}"
    weights = _checkpoint_in_ram(s, compressed=bool(packed))
    # offloaded, the logits come after the last layer is dropped: one or the other at a time
    working = max(s.onloaded, batch)
    if on_gpu:  # the weights on the device, the packed ones mapped on the host
        dense = min(s.model, s.resident * s.model / s.checkpoint) if packed and s.offloaded \
            else s.resident
        return _step(name, RUNTIME_BYTES + packed, dense + working, note)
    return _step(name, RUNTIME_BYTES + weights + working, 0.0, note)


def _step(name: str, host: float, accelerator: float, note: str) -> StepMemory:
    return StepMemory(name, host * SLACK, accelerator * SLACK, note)


def machine_memory(device: str) -> tuple[int, int | None]:
    """This machine's host RAM and the resolved accelerator's memory (None: no accelerator)."""
    import psutil

    host = int(psutil.virtual_memory().total)
    if device == "cpu":
        return host, None
    import torch

    return host, int(torch.cuda.mem_get_info(device)[1])


def as_rows(steps: list[StepMemory]) -> list[dict[str, Any]]:
    return [{"step": s.step, "host_gib": s.host_bytes / GIB,
             "accelerator_gib": s.accelerator_bytes / GIB, "note": s.note} for s in steps]


def render_run_memory(run: dict[str, Any]) -> list[str]:
    """The predicted peak of each step of `quench run` on the recipe's device."""
    lines = ["", f"Running this recipe on {run['device']} (predicted peak per stage):",
             f"{'stage':<13} {'host RAM':>10} {'accelerator':>12}  what dominates"]
    for r in run["steps"]:
        accel = format_size(r["accelerator_gib"]) if r["accelerator_gib"] else "-"
        lines.append(f"{r['step']:<13} {format_size(r['host_gib']):>10} {accel:>12}  {r['note']}")
    if run.get("offload_advice"):
        lines.append(run["offload_advice"])
    return lines


def format_size(gib: float) -> str:
    """GiB with two decimals, or MiB below one GiB."""
    return f"{gib:.2f} GiB" if gib >= 1 else f"{gib * 1024:.1f} MiB"
