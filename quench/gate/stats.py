"""Paired statistics for the gate: block bootstrap intervals, McNemar, and sample size.

Neighbouring perplexity windows cut from one text are not independent, so windows are
resampled in blocks of consecutive windows (moving-block bootstrap); lm-eval documents are
independent and are resampled one by one (block length 1).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from quench.gate.errors import GateError

Statistic = Callable[[np.ndarray], np.ndarray]  # (resamples, n) index matrix -> (resamples,)


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float
    n: int  # paired units (windows or documents)


MAX_LOG_CHANGE = 300.0  # nats per token: a perplexity e^300 times the baseline's


def default_block(n: int) -> int:
    """Block length ~ n^(1/3), the usual rate for the moving-block bootstrap."""
    return max(1, round(n ** (1 / 3)))


def block_indices(n: int, block: int, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(resamples, n) indices: runs of `block` consecutive units starting at random positions."""
    block = min(max(1, block), n)
    blocks = math.ceil(n / block)
    starts = rng.integers(0, n - block + 1, size=(resamples, blocks))
    runs = starts[:, :, None] + np.arange(block)[None, None, :]
    return runs.reshape(resamples, -1)[:, :n]


def bootstrap(
    statistic: Statistic, n: int, alpha: float, resamples: int, block: int, seed: int,
) -> Interval:
    """Percentile interval at level 1 - alpha of `statistic` over block-resampled units."""
    if n < 2:
        raise GateError(f"an interval needs at least 2 paired units (windows or documents); "
                        f"the runs share {n}")
    rng = np.random.default_rng(seed)
    estimate = float(statistic(np.arange(n)[None, :])[0])
    values = statistic(block_indices(n, block, resamples, rng))
    low, high = np.quantile(values, [alpha / 2, 1 - alpha / 2])
    widen = small_sample_factor(n, block, alpha)
    return Interval(estimate, float(estimate - widen * (estimate - low)),
                    float(estimate + widen * (high - estimate)), n)


def small_sample_factor(n: int, block: int, alpha: float) -> float:
    """t over z quantile for the number of blocks: a bootstrap built from few independent
    blocks is too narrow (the percentile interval ignores the t correction)."""
    from scipy.stats import norm  # scipy takes a second to load: not for `quench --help`
    from scipy.stats import t as student_t

    blocks = max(2, n // max(1, block))
    return float(student_t.ppf(1 - alpha / 2, blocks - 1) / norm.ppf(1 - alpha / 2))


def perplexity_change_pct(
    nll_candidate: np.ndarray, nll_baseline: np.ndarray, tokens: np.ndarray,
) -> Statistic:
    """Relative perplexity change in %, 100 * (exp(sum dNLL / sum tokens) - 1), per resample."""
    delta = np.asarray(nll_candidate, float) - np.asarray(nll_baseline, float)
    tokens = np.asarray(tokens, float)

    def stat(idx: np.ndarray) -> np.ndarray:
        # capped: beyond e^MAX_LOG_CHANGE the change is past any threshold, and stays finite
        per_token = np.minimum(delta[idx].sum(axis=1) / tokens[idx].sum(axis=1), MAX_LOG_CHANGE)
        return 100 * np.expm1(per_token)

    return stat


def ratio_of_sums(numerator: np.ndarray, denominator: np.ndarray) -> Statistic:
    """sum(numerator) / sum(denominator) per resample (e.g. KL per token)."""
    num, den = np.asarray(numerator, float), np.asarray(denominator, float)

    def stat(idx: np.ndarray) -> np.ndarray:
        return num[idx].sum(axis=1) / den[idx].sum(axis=1)

    return stat


def mean_difference(baseline: np.ndarray, candidate: np.ndarray) -> Statistic:
    """mean(baseline - candidate) per resample: an accuracy drop when positive."""
    diff = np.asarray(baseline, float) - np.asarray(candidate, float)

    def stat(idx: np.ndarray) -> np.ndarray:
        return diff[idx].mean(axis=1)

    return stat


def mcnemar_p(baseline_correct: np.ndarray, candidate_correct: np.ndarray) -> float:
    """Exact McNemar test: are the discordant pairs split unevenly? (two-sided p-value)"""
    b = np.asarray(baseline_correct, bool)
    c = np.asarray(candidate_correct, bool)
    only_base, only_cand = int(np.sum(b & ~c)), int(np.sum(~b & c))
    if only_base + only_cand == 0:
        return 1.0
    from scipy.stats import binomtest  # scipy takes a second to load: not for `quench --help`

    return float(binomtest(only_base, only_base + only_cand, 0.5).pvalue)


def needed_units(interval: Interval, threshold: float) -> int | None:
    """Units needed for the interval to clear the threshold, if the estimate stayed put.

    The half-width shrinks as 1/sqrt(n); None when the estimate sits on the threshold.
    """
    gap = abs(interval.estimate - threshold)
    half = (interval.high - interval.low) / 2
    if gap == 0 or half == 0:
        return None
    needed = interval.n * (half / gap) ** 2 if half / gap < 1e150 else math.inf
    return math.ceil(needed) if math.isfinite(needed) else None
