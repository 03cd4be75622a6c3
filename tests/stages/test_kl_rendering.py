"""Where KL is shown, it says it is a bound and, when measured, how close to exact it is."""

from __future__ import annotations

import numpy as np

from quench.gate.checks import kl_check
from quench.gate.data import RunData
from quench.recipe.gate import GateSpec
from quench.stages.report import kl_lines

MEASURED = {"kl_divergence": 0.0123, "topk_mass": 0.912, "kl_exact_subset": 0.0130,
            "kl_bound_subset": 0.0126, "kl_bound_ratio": 0.9692, "kl_exact_tokens": 256}


def test_report_names_the_bound_its_mass_and_its_ratio():
    text = " ".join(kl_lines(MEASURED))
    assert "lower bound" in text and "91.2% of its probability mass" in text
    assert "first 256 tokens it is 0.969 of the exact" in text and "(0.0126 vs 0.013)" in text
    unmeasured = " ".join(kl_lines({"kl_divergence": 0.01, "topk_mass": 0.5}))
    assert "lower bound" in unmeasured and "exact" not in unmeasured
    assert kl_lines({"perplexity": 9.0}) == []


def test_gate_line_says_bound_and_ratio():
    rng = np.random.default_rng(0)
    windows = {"kl_sum": rng.uniform(0, 2, 40), "tokens": np.full(40, 256)}
    report = {"metrics": {"candidate": MEASURED}}
    check = kl_check(RunData("r1", "cand", report, windows), GateSpec())
    assert check.note.startswith("bound; ~0.97 of exact on 256 tokens")
    bare = kl_check(RunData("r1", "cand", {"metrics": {"candidate": {}}}, windows), GateSpec())
    assert bare.note.startswith("bound (top-k)")
