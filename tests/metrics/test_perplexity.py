"""The windowing protocol, the top-k KL bound and the exact KL from the stored subset."""

import numpy as np
import pytest
import torch

from quench.metrics.kl import (
    encode_exact,
    exact_kl,
    kl_from_topk,
    topk_arrays,
    topk_kl,
)
from quench.metrics.perplexity import make_windows


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
    kl, agree = kl_from_topk(logp, *map(torch.from_numpy, topk_arrays(logp, 10)))
    assert 0 <= kl < 5 * 1e-6 and agree == 5  # float16 values: ~1e-7 per position, not 0


def test_kl_with_full_vocabulary_equals_exact_kl_and_top_k_is_a_lower_bound():
    gen = torch.Generator().manual_seed(0)
    p_logits = torch.randn(4, 40, generator=gen, dtype=torch.float64)
    q_logits = p_logits + 0.5 * torch.randn(4, 40, generator=gen, dtype=torch.float64)
    exact = _full_kl(p_logits, q_logits)
    ref = torch.log_softmax(p_logits, -1)
    cand = torch.log_softmax(q_logits, -1)
    full = [ref.topk(40, -1)[0], ref.topk(40, -1)[1], torch.full((4,), -torch.inf)]
    kl_full, _ = kl_from_topk(cand, *full)
    assert kl_full == pytest.approx(exact, rel=1e-9)
    kl_top, _ = kl_from_topk(cand, *map(torch.from_numpy, topk_arrays(ref, 5)))
    assert 0 < kl_top <= exact + 1e-12
    assert np.isfinite(kl_top)


def _lm_like_logits(positions: int, vocab: int, noise: float, seed: int = 0):
    """Peaked, heavy-tailed float64 logits like an LM's, and a perturbed "quantized" copy."""
    gen = torch.Generator().manual_seed(seed)
    base = 3 * torch.randn(positions, vocab, generator=gen, dtype=torch.float64)
    base[:, : vocab // 2] -= 12  # half the vocabulary far below 1e-6: the float16 tail
    return base, base + noise * torch.randn(positions, vocab, generator=gen, dtype=torch.float64)


def _reference_kl(p_logits, q_logits):
    """Per-position KL(p || q) over the whole vocabulary, all in float64."""
    lp, lq = torch.log_softmax(p_logits, -1), torch.log_softmax(q_logits, -1)
    return (lp.exp() * (lp - lq)).sum(-1)


@pytest.mark.parametrize("noise", [0.05, 0.5])
def test_exact_kl_from_the_float16_subset_equals_float64_kl(noise):
    p_logits, q_logits = _lm_like_logits(64, 4096, noise)
    stored = encode_exact(torch.log_softmax(p_logits.float(), -1))  # as the baseline stores it
    cand = torch.log_softmax(q_logits.float(), -1)  # as the candidate computes it
    mine = exact_kl(cand, torch.from_numpy(stored))
    reference = _reference_kl(p_logits, q_logits)
    # float16 probabilities (they flush the tail to 0) miss by 2.4e-3 at noise 0.05; bf16 by 2e-2
    assert float(mine.sum()) == pytest.approx(float(reference.sum()), rel=5e-4)
    assert float((mine - reference).abs().max()) < 5e-4


def test_stored_arrays_are_float16_values_and_int32_ids():
    logp = torch.log_softmax(torch.randn(7, 300), -1)
    values, ids, rest = topk_arrays(logp, 20)
    assert (values.dtype, ids.dtype, values.shape) == (np.float16, np.int32, (7, 20))
    assert rest.dtype == np.float32 and rest.shape == (7,)
    mass = logp.topk(20, -1)[0].double().exp().sum(-1)
    assert np.allclose(np.exp(rest.astype(np.float64)), 1 - mass.numpy(), rtol=1e-5)
    assert encode_exact(logp).dtype == np.float16
    assert topk_arrays(logp, 1000)[0].shape == (7, 300)  # k beyond the vocabulary: all of it


def test_bound_is_below_exact_and_tightens_to_it_as_k_reaches_the_vocabulary():
    p_logits, q_logits = _lm_like_logits(32, 2048, 0.5, seed=1)
    ref, cand = torch.log_softmax(p_logits.float(), -1), torch.log_softmax(q_logits.float(), -1)
    exact = float(exact_kl(cand, torch.from_numpy(encode_exact(ref))).sum())
    ratios = []
    for k in (1, 10, 100, 1000, 2048):
        bound = topk_kl(cand, *map(torch.from_numpy, topk_arrays(ref, k)))
        ratios.append(float(bound.sum()) / exact)
    assert all(0 < r <= 1 + 1e-3 for r in ratios)
    assert ratios == sorted(ratios)  # nested top-k partitions: a finer one never lowers KL
    assert ratios[0] < 0.9 and ratios[-1] == pytest.approx(1, abs=2e-3)
