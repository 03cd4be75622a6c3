"""One decision per gated metric: PASS when its interval lies within the threshold, FAIL when it
lies beyond, INCONCLUSIVE when it straddles it (with the sample size that would decide).

Significance alone is never a regression: two calibration seeds differ "significantly" on
thousands of windows while both are well inside any sensible threshold.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from quench.gate import stats
from quench.gate.data import RunData
from quench.gate.errors import GateError
from quench.recipe.gate import GateSpec

Verdict = Literal["PASS", "FAIL", "INCONCLUSIVE"]


@dataclass
class Check:
    metric: str
    estimate: float
    low: float | None
    high: float | None
    threshold: float
    bound: Literal["max", "min"]
    verdict: Verdict
    units: str  # what n counts: windows, documents, concurrency levels
    n: int
    needed: int | None = None
    note: str = ""


def decide(interval: stats.Interval, threshold: float, bound: Literal["max", "min"]) -> Verdict:
    """The interval against the threshold (a maximum or a minimum)."""
    if bound == "max":
        return "FAIL" if interval.low > threshold else (
            "PASS" if interval.high <= threshold else "INCONCLUSIVE")
    return "FAIL" if interval.high < threshold else (
        "PASS" if interval.low >= threshold else "INCONCLUSIVE")


def _check(metric: str, interval: stats.Interval, threshold: float, bound: Literal["max", "min"],
           units: str, note: str = "") -> Check:
    verdict = decide(interval, threshold, bound)
    needed = stats.needed_units(interval, threshold) if verdict == "INCONCLUSIVE" else None
    return Check(metric, interval.estimate, interval.low, interval.high, threshold, bound,
                 verdict, units, interval.n, needed, note)


def _paired_windows(cand: RunData, base: RunData) -> tuple[dict, dict]:
    for run in (cand, base):
        if run.windows is None:
            raise GateError(f"run {run.run_id} ({run.name}) has no per-window perplexity "
                            "artifact (per_window.npz on its `evaluate` stage run)")
    mine, theirs = cand.protocol or {}, base.protocol or {}
    if mine.get("windows_sha256") != theirs.get("windows_sha256"):
        differ = sorted(k for k in mine if mine.get(k) != theirs.get(k))
        raise GateError(f"runs {cand.run_id} and {base.run_id} scored different perplexity "
                        f"windows (protocol differs in {differ}): they cannot be paired")
    return cand.windows, base.windows  # type: ignore[return-value]


def perplexity_check(cand: RunData, base: RunData, spec: GateSpec) -> Check:
    c, b = _paired_windows(cand, base)
    n = len(c["tokens"])
    block = spec.block_windows or stats.default_block(n)
    statistic = stats.perplexity_change_pct(c["nll_sum"], b["nll_sum"], c["tokens"])
    interval = stats.bootstrap(statistic, n, spec.alpha, spec.resamples, block, spec.seed)
    assert spec.max_perplexity_increase_pct is not None
    return _check("perplexity increase %", interval, spec.max_perplexity_increase_pct, "max",
                  "windows", f"block bootstrap, {block} windows per block")


def kl_check(cand: RunData, spec: GateSpec) -> Check:
    if cand.windows is None or "kl_sum" not in cand.windows:
        raise GateError(f"run {cand.run_id} ({cand.name}) has no per-window KL divergence "
                        "(its evaluate stage had no matching baseline top-k)")
    w = cand.windows
    n = len(w["tokens"])
    block = spec.block_windows or stats.default_block(n)
    interval = stats.bootstrap(stats.ratio_of_sums(w["kl_sum"], w["tokens"]), n, spec.alpha,
                               spec.resamples, block, spec.seed)
    assert spec.max_kl_divergence is not None
    return _check("KL divergence (nats/token)", interval, spec.max_kl_divergence, "max",
                  "windows", _kl_note(cand.report.get("metrics", {}).get("candidate", {})))


def llamacpp_kl_check(cand: RunData, spec: GateSpec) -> Check:
    """llama-perplexity's mean KLD of a GGUF, with the normal interval of its standard error."""
    from scipy.stats import norm

    m = cand.report.get("metrics", {}).get("candidate", {})
    if "llamacpp_kld_mean" not in m or "llamacpp_kld_mean_se" not in m:
        raise GateError(f"run {cand.run_id} ({cand.name}) has no llama.cpp KL divergence "
                        "(the llamacpp_kl stage of method gguf)")
    half = norm.ppf(1 - spec.alpha / 2) * m["llamacpp_kld_mean_se"]
    mean = m["llamacpp_kld_mean"]
    interval = stats.Interval(mean, mean - half, mean + half, int(m.get("llamacpp_chunks", 0)))
    assert spec.max_llamacpp_kld is not None
    return _check("llama.cpp KL divergence (nats/token)", interval, spec.max_llamacpp_kld,
                  "max", "chunks", "llama-perplexity vs the F32 source; normal interval")


def _kl_note(metrics: dict[str, Any]) -> str:
    """The gated KL is the top-k bound; how close it is to the exact KL, when measured."""
    if "kl_bound_ratio" not in metrics:
        return "bound (top-k); vs the unquantized base model"
    return (f"bound; ~{metrics['kl_bound_ratio']:.2f} of exact on "
            f"{int(metrics['kl_exact_tokens'])} tokens; vs the unquantized base model")


def accuracy_checks(cand: RunData, base: RunData, spec: GateSpec) -> list[Check]:
    """A paired check per task both runs evaluated: drop = baseline - candidate accuracy."""
    if not cand.samples or not base.samples:
        missing = cand if not cand.samples else base
        raise GateError(f"run {missing.run_id} ({missing.name}) has no lm-eval per-document "
                        "samples, and gate.max_accuracy_drop is set (null disables it)")
    if set(cand.samples) != set(base.samples):
        raise GateError(f"the runs evaluated different lm-eval tasks: {sorted(cand.samples)} "
                        f"vs {sorted(base.samples)}")
    checks = []
    for task in sorted(cand.samples):
        pairs = _paired_docs(task, cand.samples[task], base.samples[task], spec.accuracy_metric)
        if pairs is None:
            continue
        b, c = pairs
        interval = stats.bootstrap(stats.mean_difference(b, c), len(b), spec.alpha,
                                   spec.resamples, 1, spec.seed)
        p = stats.mcnemar_p(b, c)
        assert spec.max_accuracy_drop is not None
        checks.append(_check(f"{task} {spec.accuracy_metric} drop", interval,
                             spec.max_accuracy_drop, "max", "documents",
                             f"McNemar p = {p:.3g}"))
    if not checks:
        raise GateError(f"no task has the per-document metric {spec.accuracy_metric!r} "
                        "(gate.accuracy_metric)")
    return checks


def _paired_docs(task: str, cand_rows: list[dict[str, Any]], base_rows: list[dict[str, Any]],
                 metric: str) -> tuple[np.ndarray, np.ndarray] | None:
    def index(rows: list[dict[str, Any]]) -> dict[tuple[Any, Any], dict[str, Any]]:
        return {(r["doc_id"], r.get("filter")): r for r in rows if metric in r}

    c, b = index(cand_rows), index(base_rows)
    if not c and not b:
        return None
    if c.keys() != b.keys():
        raise GateError(f"{task}: the runs scored different documents ({len(c)} vs {len(b)}): "
                        "use the same lm-eval limit and data")
    keys = sorted(c, key=str)
    if any(c[k].get("doc_hash") != b[k].get("doc_hash") for k in keys):
        raise GateError(f"{task}: documents with the same id differ (doc_hash): not pairable")
    return (np.array([b[k][metric] for k in keys], float),
            np.array([c[k][metric] for k in keys], float))


def throughput_checks(cand: RunData, base: RunData, spec: GateSpec) -> list[Check]:
    """Output tokens/s ratio per concurrency both runs measured (one measurement: no interval)."""
    mine, theirs = _throughput(cand), _throughput(base)
    common = sorted(set(mine) & set(theirs))
    if not common:
        raise GateError("gate.min_throughput_ratio is set but the runs share no measured "
                        f"concurrency ({sorted(mine)} vs {sorted(theirs)})")
    assert spec.min_throughput_ratio is not None
    checks = []
    for conc in common:
        ratio = mine[conc] / theirs[conc]
        point = stats.Interval(ratio, ratio, ratio, 1)
        checks.append(_check(f"throughput ratio @ concurrency {conc}", point,
                             spec.min_throughput_ratio, "min", "measurements",
                             "one measurement per run: no interval"))
    return checks


def _throughput(run: RunData) -> dict[int, float]:
    """{concurrency: output tokens/s} from the report's throughput rows, when it has them."""
    section = run.report.get("throughput") or {}
    rows = section.get("rows") if isinstance(section, dict) else section
    found = {}
    for row in rows or []:
        if isinstance(row, dict) and "concurrency" in row and row.get("output_tokens_per_s"):
            found[int(row["concurrency"])] = float(row["output_tokens_per_s"])
    return found
