"""Windowed perplexity with per-window NLLs, and KL divergence from a reference's top-k.

Protocol: the corpus is tokenized once without special tokens; window i covers corpus tokens
[i*stride, i*stride + window) (BOS prepended when asked, on top of the window); a token is
scored once, in the first window that predicts it; only full windows are used.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pipeline import progress


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
    """Per-window sums; the reference top-k arrays when this run is a baseline."""

    nll_sum: list[float] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    kl_sum: list[float] = field(default_factory=list)
    top1_agree: list[int] = field(default_factory=list)
    topk_logprobs: list[np.ndarray] = field(default_factory=list)
    topk_ids: list[np.ndarray] = field(default_factory=list)


def score_windows(
    model, windows: Windows, batch_size: int, top_k: int | None, reference=None
) -> Scores:
    """Runs the model over all windows; keeps top-k for a baseline, KL against a reference.

    `reference` is (logprobs [N, k], ids [N, k]) over the same scored positions, in order.
    """
    import torch

    scores, position = Scores(), 0
    for begin in range(0, len(windows.inputs), batch_size):
        batch = torch.from_numpy(windows.inputs[begin : begin + batch_size])
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=batch).logits[:, :-1].float(), dim=-1)
        targets = batch[:, 1:]
        for row in range(len(batch)):
            first = int(windows.first_scored[begin + row])
            lp = logp[row, first:]
            nll = -lp.gather(-1, targets[row, first:, None]).squeeze(-1)
            scores.nll_sum.append(float(nll.double().sum()))
            scores.tokens.append(int(nll.numel()))
            if top_k:
                values, ids = lp.topk(top_k, dim=-1)
                scores.topk_logprobs.append(values.numpy().astype(np.float32))
                scores.topk_ids.append(ids.numpy().astype(np.int32))
            if reference is not None:
                ref_lp, ref_ids = (a[position : position + nll.numel()] for a in reference)
                kl, agree = kl_from_topk(lp, torch.from_numpy(ref_lp), torch.from_numpy(ref_ids))
                scores.kl_sum.append(kl)
                scores.top1_agree.append(agree)
            position += nll.numel()
        progress.advance(len(batch))  # of the caller's progress.task, if any
    return scores


def kl_from_topk(logp, ref_logp, ref_ids) -> tuple[float, int]:
    """Sum over positions of KL(reference || candidate) on the reference's top-k plus the rest.

    The reference's distribution is coarsened to its top-k tokens and one "other" bucket; the
    candidate's is coarsened the same way. This is a lower bound of the full KL (coarsening
    never increases divergence) and equals it as k approaches the vocabulary size.
    Returns (KL sum, number of positions whose argmax matches the reference's top-1).
    """
    import torch

    ref_logp, logp = ref_logp.double(), logp.double()
    cand_logp = logp.gather(-1, ref_ids.long())
    p = ref_logp.exp()
    rest_p = (1 - p.sum(-1)).clamp(min=0)
    rest_q = (1 - cand_logp.exp().sum(-1)).clamp(min=1e-12)
    head = (p * (ref_logp - cand_logp)).sum(-1)
    tail = torch.where(rest_p > 0, rest_p * (rest_p.clamp(min=1e-300).log() - rest_q.log()), 0.0)
    # Ties count as agreement: bf16 logits tie often, and argmax breaks ties arbitrarily.
    agree = int((cand_logp[:, 0] >= logp.max(-1).values).sum())
    return float((head + tail).sum()), agree
