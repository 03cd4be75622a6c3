"""How far a quantized checkpoint is from its original: per-layer weight error, output cosine.

Both hold at most one model: weight errors read the two checkpoints tensor by tensor, and the
output cosine compares the reloaded model's logits with the original's, which the quantize
stage wrote to disk before quantizing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from quench.shards import Shards


def linear_module_names(model_dir: Path, trust_remote_code: bool = False) -> list[str]:
    """Names of the model's nn.Linear modules except lm_head, from a meta-device skeleton."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(model_dir, trust_remote_code=trust_remote_code)
    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
    return [name for name, module in skeleton.named_modules()
            if isinstance(module, torch.nn.Linear) and name != "lm_head"]


def relative_error(quantized: Any, original: Any) -> float:
    """||W_q - W|| / ||W||, accumulated in float64 without a float64 copy of the weight."""
    import torch

    original = original.float()
    denom = torch.linalg.vector_norm(original, dtype=torch.float64)
    if denom == 0:
        return 0.0
    diff = quantized.float() - original
    return float(torch.linalg.vector_norm(diff, dtype=torch.float64) / denom)


def checkpoint_weight_errors(original_dir: Path, saved_dir: Path, modules: list[str]
                             ) -> dict[str, float]:
    """Per Linear, the saved checkpoint's weight (dequantized by compressed-tensors when it is
    compressed) against the original's, one module's tensors in RAM at a time.

    Methods that rescale weights before rounding (SmoothQuant, AWQ) fold that rescaling into
    this number too.
    """
    dequantizer = _dequantizer(saved_dir)
    errors: dict[str, float] = {}
    with Shards(original_dir) as original, Shards(saved_dir) as saved:
        for module in modules:
            key = f"{module}.weight"
            if key not in original:
                continue
            tensors = dict(saved.module_tensors(module))
            # Quantized modules have scales (FP8 and int8 keep the name `weight` for the
            # quantized values); the rest are dense and read as they are.
            if dequantizer is not None and f"{module}.weight_scale" in tensors:
                tensors = dequantizer.process(tensors)
            if key in tensors:
                errors[module] = relative_error(tensors[key], original.get(key))
    return errors


def _dequantizer(saved_dir: Path) -> Any | None:
    """compressed-tensors' model-free dequantizer for a compressed checkpoint, else None."""
    import json

    import torch

    config = json.loads((Path(saved_dir) / "config.json").read_text())
    qc = config.get("quantization_config") or {}
    if qc.get("quant_method") != "compressed-tensors":
        return None
    from compressed_tensors.entrypoints.convert.converters.ct_dequantizer import (
        CompressedTensorsDequantizer,
    )

    return CompressedTensorsDequantizer(str(saved_dir), dtype=torch.float32)


def layer_weight_errors(original_dir: Path, model: Any) -> dict[str, float]:
    """||W_q - W|| / ||W|| per Linear of an in-memory (fake-quantized) model, reading the
    original tensors one at a time: for ModelOpt, whose checkpoint keeps dense weights."""
    import torch

    wanted = {f"{name}.weight": module for name, module in model.named_modules()
              if isinstance(module, torch.nn.Linear) and name != "lm_head"}
    errors: dict[str, float] = {}
    with Shards(original_dir) as original:
        for key, module in wanted.items():
            if key in original:
                errors[key.removesuffix(".weight")] = relative_error(
                    _effective_weight(module), original.get(key))
    return errors


def _effective_weight(module: Any) -> Any:
    """The weight a forward pass uses: ModelOpt's fake-quantized modules round it on the fly."""
    import torch

    with torch.no_grad():
        quantizer = getattr(module, "weight_quantizer", None)
        weight = module.weight.detach()
        return (quantizer(weight) if quantizer is not None else weight).cpu()


def save_logits(model: Any, batches: list[list[int]], folder: Path) -> list[Path]:
    """The model's logits over each batch, one .npy file each (float32), for a later cosine."""
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    with torch.no_grad():
        for i, ids in enumerate(batches):
            logits = model(_ids(model, ids)).logits[0].float().cpu().numpy()
            paths.append(folder / f"logits-{i}.npy")
            np.save(paths[-1], logits)
    return paths


def output_cosine(model: Any, batches: list[list[int]], reference: list[Path]) -> float:
    """Mean cosine similarity of the model's logits and the saved reference logits over every
    position of the batches; reads one batch of reference logits at a time."""
    import torch

    total, count = 0.0, 0
    with torch.no_grad():
        for ids, path in zip(batches, reference, strict=True):
            b = model(_ids(model, ids)).logits[0].double().cpu()
            a = torch.from_numpy(np.load(path, mmap_mode="r")[:]).double()
            total += float(torch.nn.functional.cosine_similarity(a, b, dim=-1).sum())
            count += a.shape[0]
    return total / count


def _ids(model: Any, ids: list[int]) -> Any:
    import torch

    return torch.tensor([ids], device=next(model.parameters()).device)
