"""The recommendation's tie rule: costs within objective.tie_pct tie, and quality breaks ties."""

from __future__ import annotations

import pytest

from quench.sweep.report import best_of
from quench.sweep.spec import ObjectiveSpec
from quench.sweep.trial import TrialRecord


def record(name: str, cost: float, kl: float | None = None,
           perplexity: float | None = None) -> TrialRecord:
    metrics = {k: v for k, v in (("kl_divergence", kl), ("perplexity", perplexity)) if v}
    return TrialRecord(name, {}, name, f"{name}.yaml", passed=True, cost=cost, metrics=metrics)


def test_costs_within_the_tolerance_tie_and_the_lower_kl_wins() -> None:
    # the sizes of `make sweep`'s RTN and GPTQ g128 trials: 100 bytes apart, KL halved
    rtn, gptq = record("rtn", 1.41155e6, kl=0.0736), record("gptq", 1.41165e6, kl=0.0366)
    assert best_of([rtn, gptq], ObjectiveSpec(minimize="size_bytes").tie_pct) is gptq
    assert best_of([rtn, gptq], 0.0) is rtn  # no tolerance: the cheapest


def test_a_cost_outside_the_tolerance_never_wins_on_quality() -> None:
    cheap, better = record("cheap", 100.0, kl=0.09), record("better", 101.0, kl=0.01)
    assert best_of([better, cheap], 0.5) is cheap
    assert best_of([better, cheap], 1.0) is better  # 1 % apart: a tie at 1 %


def test_ties_fall_to_perplexity_then_cost_then_order() -> None:
    a, b = record("a", 10.0, kl=0.05, perplexity=12.0), record("b", 10.01, kl=0.05,
                                                              perplexity=11.0)
    assert best_of([a, b], 0.5) is b
    c, d = record("c", 10.0), record("d", 10.0)  # nothing measured: the first cheapest
    assert best_of([c, d], 0.5) is c
    assert best_of([], 0.5) is None


def test_negative_costs_take_the_band_from_their_magnitude() -> None:
    # maximize throughput: cost = -tokens/s; 1000 vs 998 tokens/s tie at 0.5 %
    fast, close = record("fast", -1000.0, kl=0.2), record("close", -998.0, kl=0.1)
    assert best_of([fast, close], 0.5) is close


def test_tie_pct_is_bounded() -> None:
    with pytest.raises(ValueError, match="tie_pct"):
        ObjectiveSpec(minimize="size_bytes", tie_pct=-1)
