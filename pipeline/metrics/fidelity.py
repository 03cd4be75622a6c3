"""How far a quantized checkpoint is from its original: per-layer weight error, output cosine."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def layer_weight_errors(original_dir: Path, model: Any) -> dict[str, float]:
    """||W_q - W|| / ||W|| per quantized Linear, reading original tensors one at a time.

    `model` is the reloaded (decompressed) checkpoint. Methods that rescale weights before
    rounding (SmoothQuant, AWQ) fold that rescaling into this number too.
    """
    import torch
    from safetensors import safe_open

    wanted = {f"{name}.weight": module for name, module in model.named_modules()
              if isinstance(module, torch.nn.Linear) and name != "lm_head"}
    errors: dict[str, float] = {}
    for shard in sorted(original_dir.glob("*.safetensors")):
        with safe_open(str(shard), framework="pt") as fh:
            for key in fh.keys():  # noqa: SIM118 - safe_open is not a mapping
                if key in wanted:
                    original = fh.get_tensor(key).double()
                    quantized = _effective_weight(wanted[key]).double()
                    denom = original.norm()
                    errors[key.removesuffix(".weight")] = float(
                        (quantized - original).norm() / denom) if denom > 0 else 0.0
    return errors


def _effective_weight(module: Any) -> Any:
    """The weight a forward pass uses: ModelOpt's fake-quantized modules round it on the fly."""
    import torch

    with torch.no_grad():
        quantizer = getattr(module, "weight_quantizer", None)
        weight = module.weight.detach()
        return quantizer(weight) if quantizer is not None else weight


def output_cosine(original: Any, quantized: Any, batches: list[list[int]]) -> float:
    """Mean cosine similarity of the two models' logits over every position of the batches."""
    import torch

    total, count = 0.0, 0
    with torch.no_grad():
        for ids in batches:
            x = torch.tensor([ids])
            a, b = original(x).logits.double(), quantized(x).logits.double()
            total += float(torch.nn.functional.cosine_similarity(a, b, dim=-1).sum())
            count += a.shape[1]
    return total / count
