"""Windowed perplexity with per-window NLLs, and KL divergence against a reference.

Protocol: the corpus is tokenized once without special tokens; window i covers corpus tokens
[i*stride, i*stride + window) (BOS prepended when asked, on top of the window); a token is
scored once, in the first window that predicts it; only full windows are used.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from quench import progress
from quench.metrics.kl import exact_kl, top1_agreement, topk_kl, topk_mass
from quench.metrics.reference import Reference, ReferenceWriter


@dataclass
class Windows:
    """Model inputs [W, T] and, per window, the index of its first scored target."""

    inputs: np.ndarray
    first_scored: np.ndarray
    dropped_tail_tokens: int


def make_windows(
    ids: list[int], window: int, stride: int, bos_id: int | None, max_windows: int | None
) -> Windows:
    """Cuts a token sequence into overlapping windows; each token is scored exactly once."""
    starts = list(range(0, len(ids) - window + 1, stride))
    if max_windows is not None:
        starts = starts[:max_windows]
    if not starts:
        raise ValueError(f"the corpus has {len(ids)} tokens, fewer than one window ({window})")
    offset = 0 if bos_id is not None else 1  # corpus position of target 0, relative to start
    rows, first, scored_upto = [], [], 0
    for start in starts:
        chunk = ids[start : start + window]
        rows.append(([bos_id] if bos_id is not None else []) + chunk)
        first.append(max(0, scored_upto - (start + offset)))
        scored_upto = start + window
    dropped = len(ids) - scored_upto
    return Windows(np.asarray(rows, dtype=np.int64), np.asarray(first, dtype=np.int64), dropped)


@dataclass
class Scores:
    """Per-window sums, and a candidate's KL totals."""

    nll_sum: list[float] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    kl_sum: list[float] = field(default_factory=list)
    top1_agree: list[int] = field(default_factory=list)
    topk_mass_sum: float = 0.0
    exact_tokens: int = 0
    kl_exact_sum: float = 0.0  # over the exact subset: the full-vocabulary KL ...
    kl_bound_subset_sum: float = 0.0  # ... and the top-k bound, on the same positions


def scored_positions(windows: Windows) -> int:
    """How many positions the windows score (each token once)."""
    return int((windows.inputs.shape[1] - 1 - windows.first_scored).sum())


def score_windows(
    model, windows: Windows, batch_size: int, writer: ReferenceWriter | None = None,
    reference: Reference | None = None,
) -> Scores:
    """Runs the model over all windows; a baseline streams its distribution to `writer`, a
    candidate gets KL against a stored `reference`.

    Log-softmax, top-k and KL run one window at a time on the model's device, so beyond the
    model's own logits memory is O(window x vocabulary), not O(batch x window x vocabulary).
    """
    import torch

    device = next(model.parameters()).device
    scores, position = Scores(), 0
    for begin in range(0, len(windows.inputs), batch_size):
        batch = torch.from_numpy(windows.inputs[begin : begin + batch_size]).to(device)
        with torch.no_grad():
            logits = model(input_ids=batch).logits
            for row in range(len(batch)):
                first = int(windows.first_scored[begin + row])
                logp = torch.log_softmax(logits[row, first:-1].float(), dim=-1)
                targets = batch[row, first + 1 :]
                _score_row(scores, logp, targets)
                if writer is not None:
                    writer.add(logp)
                if reference is not None:
                    _compare_row(scores, logp, reference, position)
                position += len(targets)
        del logits
        progress.advance(len(batch))  # of the caller's progress.task, if any
    return scores


def _score_row(s: Scores, logp, targets) -> None:
    """The NLL sum and token count of one window."""
    nll = -logp.gather(-1, targets[:, None]).squeeze(-1)
    s.nll_sum.append(float(nll.double().sum()))
    s.tokens.append(int(nll.numel()))


def _compare_row(s: Scores, logp, ref: Reference, position: int) -> None:
    """KL bound and top-1 agreement of one window; exact KL where the reference has it."""
    import torch

    n = len(logp)
    if position + n > len(ref.ids):
        raise ValueError(f"the reference has {len(ref.ids)} positions, fewer than scored here")
    ref_lp, ref_ids, ref_rest = (torch.from_numpy(a[position : position + n]).to(logp.device)
                                 for a in (ref.logprobs, ref.ids, ref.rest))
    bound = topk_kl(logp, ref_lp, ref_ids, ref_rest)
    s.kl_sum.append(float(bound.sum()))
    s.top1_agree.append(top1_agreement(logp, ref_ids))
    s.topk_mass_sum += topk_mass(ref_rest)
    m = min(n, len(ref.exact) - position)
    if m > 0:
        stored = torch.from_numpy(ref.exact[position : position + m]).to(logp.device)
        s.kl_exact_sum += float(exact_kl(logp[:m], stored).sum())
        s.kl_bound_subset_sum += float(bound[:m].sum())
        s.exact_tokens += m
