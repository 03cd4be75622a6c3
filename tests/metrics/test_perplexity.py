"""The windowing protocol and the top-k KL divergence."""

import numpy as np
import pytest
import torch

from pipeline.metrics.perplexity import kl_from_topk, make_windows


@pytest.mark.parametrize(("window", "stride", "bos"), [(8, 8, 1), (8, 3, 1), (8, 8, None),
                                                       (8, 5, None)])
def test_every_token_is_scored_at_most_once_and_in_order(window, stride, bos):
    ids = list(range(100, 160))
    w = make_windows(ids, window, stride, bos, None)
    offset = 0 if bos is not None else 1
    scored = []
    for row, first, start in zip(w.inputs, w.first_scored, range(0, 60, stride), strict=False):
        targets = list(row[1:])
        scored += targets[first:]
        assert targets[0] == ids[start + offset]  # target j is corpus token start+offset+j
    assert scored == sorted(set(scored))  # never twice, always forward
    last_start = (len(ids) - window) // stride * stride
    assert scored[-1] == ids[last_start + window - 1]
    assert len(ids) - (last_start + window) == w.dropped_tail_tokens


def test_bos_is_prepended_on_top_of_the_window():
    w = make_windows(list(range(10, 30)), 4, 4, bos_id=1, max_windows=2)
    assert w.inputs.tolist() == [[1, 10, 11, 12, 13], [1, 14, 15, 16, 17]]
    assert w.first_scored.tolist() == [0, 0]


def test_too_short_corpus_is_an_error():
    with pytest.raises(ValueError, match="fewer than one window"):
        make_windows([1, 2, 3], 8, 8, 1, None)


def _full_kl(p_logits, q_logits):
    lp, lq = torch.log_softmax(p_logits, -1), torch.log_softmax(q_logits, -1)
    return float((lp.exp() * (lp - lq)).sum())


def test_kl_is_zero_for_identical_models_and_agreement_is_full():
    logp = torch.log_softmax(torch.randn(5, 50, dtype=torch.float64), -1)
    values, ids = logp.topk(10, -1)
    kl, agree = kl_from_topk(logp, values, ids)
    assert abs(kl) < 1e-9 and agree == 5


def test_kl_with_full_vocabulary_equals_exact_kl_and_top_k_is_a_lower_bound():
    gen = torch.Generator().manual_seed(0)
    p_logits = torch.randn(4, 40, generator=gen, dtype=torch.float64)
    q_logits = p_logits + 0.5 * torch.randn(4, 40, generator=gen, dtype=torch.float64)
    exact = _full_kl(p_logits, q_logits)
    ref = torch.log_softmax(p_logits, -1)
    cand = torch.log_softmax(q_logits, -1)
    full_v, full_i = ref.topk(40, -1)
    kl_full, _ = kl_from_topk(cand, full_v, full_i)
    assert kl_full == pytest.approx(exact, rel=1e-9)
    top_v, top_i = ref.topk(5, -1)
    kl_top, _ = kl_from_topk(cand, top_v, top_i)
    assert 0 < kl_top <= exact + 1e-12
    assert np.isfinite(kl_top)
