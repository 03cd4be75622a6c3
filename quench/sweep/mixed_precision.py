"""Mixed-precision proposals from per-group sensitivities: keep the k groups whose lone
quantization cost the most KL at full precision, for k = 0, 1, ..., while the size estimated from
the measured per-group savings stays within the budget. Plain numbers in, plain plans out, so
the ranking and the budget are testable without running a model."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class GroupResult:
    """One group's phase-1 trial: its KL when quantized alone and the bytes that saved."""

    index: int
    layers: list[int]
    kl: float | None  # None: the trial failed or measured no KL (ranked most sensitive)
    saved_bytes: float | None  # bytes keeping it at full precision adds; None: not measured


@dataclass(frozen=True)
class Proposal:
    """Keep `kept` groups (most sensitive first) at full precision; estimated size."""

    k: int
    kept: list[int]  # group indices
    kept_layers: list[int]
    size_bytes: float
    size_ratio: float


def full_precision_costs(probe_sizes: list[float | None], all_quantized: float,
                         dense: float) -> list[float | None]:
    """Bytes each group adds to the all-quantized checkpoint when kept at full precision.

    A probe (group g alone quantized) weighs all_quantized + D - d_g, D the sum of every d_h;
    summing the G probes gives D = (sum(probes) - G * all_quantized) / (G - 1). This uses only
    checkpoints quench wrote: the base model's folder carries other files than a compressed-
    tensors checkpoint (on TinyStories about 55 kB less), so `dense - probe` would misstate
    d_g by that offset. With one group, or a probe unmeasured, `dense - probe` is used."""
    count = len(probe_sizes)
    if count < 2 or any(size is None for size in probe_sizes):
        return [None if size is None else dense - size for size in probe_sizes]
    total = (sum(s for s in probe_sizes if s is not None) - count * all_quantized) / (count - 1)
    return [all_quantized + total - s for s in probe_sizes if s is not None]


def rank(groups: list[GroupResult]) -> list[GroupResult]:
    """Most sensitive first: highest KL; unmeasured KL before all; ties by group order."""
    return sorted(groups, key=lambda g: (-(math.inf if g.kl is None else g.kl), g.index))


def plan(groups: list[GroupResult], dense_bytes: float, all_quantized_bytes: float,
         proposals: int, max_size_ratio: float | None) -> list[Proposal]:
    """Up to `proposals` plans for k = 0, 1, ... (k < the group count: keeping every group
    is the dense model), stopping at the first whose estimate exceeds max_size_ratio.
    The estimate is the measured all-quantized size plus the kept groups' measured savings;
    a group whose savings were not measured counts as the mean of the measured ones."""
    measured = [g.saved_bytes for g in groups if g.saved_bytes is not None]
    fallback = sum(measured) / len(measured) if measured else 0.0
    ordered = rank(groups)
    out: list[Proposal] = []
    for k in range(len(ordered)):
        kept = ordered[:k]
        size = all_quantized_bytes + sum(
            fallback if g.saved_bytes is None else g.saved_bytes for g in kept)
        ratio = size / dense_bytes
        if max_size_ratio is not None and ratio > max_size_ratio:
            break
        out.append(Proposal(k, [g.index for g in kept],
                            sorted(i for g in kept for i in g.layers), size, ratio))
        if len(out) == proposals:
            break
    return out
