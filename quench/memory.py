"""Predicted peak memory of each step of a run, host RAM and accelerator, from the model's shape.

The model of memory follows the stages' design: a stage holds at most one dense copy of the
model (at the load dtype), plus what its step needs per batch. llm-compressor's sequential
pipeline keeps the model on the host and onloads one decoder layer at a time, with GPTQ's
Hessians (in_features^2 float32 per Linear) and the calibration activations of one layer
boundary; evaluation needs one batch of float32 logits and the per-window log-softmax.
RUNTIME_BYTES (Python, torch, transformers, llm-compressor, datasets imported) and the 10 %
allocator slack were fitted to the scaling benchmark (`make bench-scaling`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from quench.compute import resolve_device
from quench.errors import QuenchError
from quench.geometry import Geometry
from quench.methods import get_method
from quench.recipe.schema import Recipe

GIB = 1024**3
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
RUNTIME_BYTES = int(0.9 * GIB)  # resident before any model: interpreter and libraries
SLACK = 1.10  # allocator fragmentation and transient copies
# llm-compressor's own estimate for a model-free shard: 2.5x its tensors
# (llmcompressor/entrypoints/model_free/__init__.py, _validate_shard's fallback)
MODEL_FREE_SHARD_FACTOR = 2.5
LM_EVAL_TOKENS = 2048  # the longest lm-eval request assumed per sequence of a batch


@dataclass(frozen=True)
class StepMemory:
    """One step's predicted peak: host bytes and accelerator bytes (0: it does not use one)."""

    step: str
    host_bytes: float
    accelerator_bytes: float
    note: str


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


def predict(recipe: Recipe, shape: Geometry, device: str | None = None) -> list[StepMemory]:
    """Every in-process step's predicted peak on `device` (default: the recipe's, resolved)."""
    device = device or resolve_device(recipe.compute.device)
    on_gpu = device != "cpu"
    dtype = load_dtype_bytes(recipe, shape)
    params = shape.linear_params + shape.other_params
    model = params * dtype
    steps = [_quantize(recipe, shape, dtype, model, on_gpu)]
    p = recipe.evaluation.perplexity
    if p is not None:
        logits = p.batch_size * (p.window + 1) * shape.vocab * 4.0
        per_row = 3 * (p.window + 1) * shape.vocab * 4.0  # log-softmax, exp and top-k of one row
        steps.append(_resident("evaluate", model, logits + per_row, on_gpu,
                               f"one dense copy + batch of {p.batch_size} x {p.window} "
                               "float32 logits"))
    if recipe.evaluation.lm_eval is not None:
        batch = recipe.evaluation.lm_eval.batch_size
        logits = batch * LM_EVAL_TOKENS * shape.vocab * 4.0
        steps.append(_resident("lm_eval (hf)", model, logits, on_gpu,
                               f"one dense copy + {batch} x {LM_EVAL_TOKENS} float32 logits"))
    return steps


def _quantize(recipe: Recipe, shape: Geometry, dtype: int, model: float, on_gpu: bool
              ) -> StepMemory:
    """llm-compressor: model on the host, one layer onloaded; ModelOpt: all of it on device."""
    q, c = recipe.quantization, recipe.calibration
    method = get_method(q.method)
    if not method.loads_model:  # model_free: one safetensors shard (Hub shards are <= 5 GB)
        shard = min(model, 5 * 10**9) * MODEL_FREE_SHARD_FACTOR
        return _step("quantize", RUNTIME_BYTES + shard, 0.0,
                     "one safetensors shard at a time, never the whole model (model_free)")
    calibrated = method.needs_calibration(q.scheme, q.options)
    activations = c.num_samples * c.max_seq_length * shape.hidden * dtype * 1.0 \
        if calibrated else 0.0
    hessians = gptq_hessian_bytes(shape) if method.keeps_hessians else 0.0
    layer = layer_weight_bytes(shape, dtype) + hessians + activations / max(c.num_samples, 1)
    if recipe.compute.offload_folder:
        return _step("quantize", RUNTIME_BYTES + activations + hessians + layer,
                     layer if on_gpu else 0.0,
                     f"weights beyond host RAM offloaded to {recipe.compute.offload_folder}")
    if method.loads_on_device and on_gpu:
        return _step("quantize", RUNTIME_BYTES + activations, model + activations,
                     "whole model on the device (ModelOpt calibrates with forward passes)")
    if on_gpu:
        return _step("quantize", RUNTIME_BYTES + model + activations, layer,
                     "model on the host, one decoder layer (+ GPTQ Hessians) on the device")
    return _step("quantize", RUNTIME_BYTES + model + activations + hessians, 0.0,
                 "one dense copy on the host" + (" + one layer's GPTQ Hessians" if hessians
                                                 else ""))


def _resident(name: str, model: float, batch: float, on_gpu: bool, note: str) -> StepMemory:
    if on_gpu:
        return _step(name, RUNTIME_BYTES, model + batch, note)
    return _step(name, RUNTIME_BYTES + model + batch, 0.0, note)


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


class MemoryShortfall(QuenchError):
    """A step's predicted peak exceeds this machine: an error for `run`, a warning for
    `validate` (the recipe may be meant for a bigger host)."""


REMEDY = {"quantize": "a smaller model.dtype, compute.offload_folder or a GPU (compute.device)",
          "evaluate": "a smaller evaluation.perplexity.batch_size or a GPU",
          "lm_eval (hf)": "a smaller evaluation.lm_eval.batch_size or a GPU"}


def check_fits(recipe: Recipe, shape: Geometry) -> None:
    """Raises MemoryShortfall, with the numbers, when a step cannot fit this machine."""
    device = resolve_device(recipe.compute.device)
    host, accelerator = machine_memory(device)
    problems = []
    for s in predict(recipe, shape):
        if s.host_bytes > host:
            problems.append(f"{s.step} needs ~{s.host_bytes / GIB:.1f} GiB of host RAM, this "
                            f"machine has {host / GIB:.1f} GiB ({s.note}; try "
                            f"{REMEDY[s.step]})")
        if accelerator is not None and s.accelerator_bytes > accelerator:
            problems.append(f"{s.step} needs ~{s.accelerator_bytes / GIB:.1f} GiB on {device}, "
                            f"which has {accelerator / GIB:.1f} GiB ({s.note}; try "
                            f"{REMEDY[s.step]})")
    if problems:
        raise MemoryShortfall("compute.check_memory: the recipe does not fit this machine: "
                              + "; ".join(problems)
                              + " (compute.check_memory: false tries anyway)")


def as_rows(steps: list[StepMemory]) -> list[dict[str, Any]]:
    return [{"step": s.step, "host_gib": s.host_bytes / GIB,
             "accelerator_gib": s.accelerator_bytes / GIB, "note": s.note} for s in steps]


def render_run_memory(run: dict[str, Any]) -> list[str]:
    """The predicted peak of each step of `quench run` on the recipe's device."""
    lines = ["", f"Running this recipe on {run['device']} (predicted peak per step):",
             f"{'step':<13} {'host RAM':>10} {'accelerator':>12}  what dominates"]
    for r in run["steps"]:
        accel = format_size(r["accelerator_gib"]) if r["accelerator_gib"] else "-"
        lines.append(f"{r['step']:<13} {format_size(r['host_gib']):>10} {accel:>12}  {r['note']}")
    return lines


def format_size(gib: float) -> str:
    """GiB with two decimals, or MiB below one GiB."""
    return f"{gib:.2f} GiB" if gib >= 1 else f"{gib * 1024:.1f} MiB"
