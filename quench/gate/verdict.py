"""The gate's verdict: every gated metric's check, combined into PASS / FAIL / INCONCLUSIVE."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from quench.gate.checks import (
    Check,
    GateError,
    accuracy_checks,
    kl_check,
    llamacpp_kl_check,
    perplexity_check,
    throughput_checks,
)
from quench.gate.data import RunData
from quench.gate.lineage import check_lineage
from quench.recipe.gate import GateSpec

EXIT_PASS, EXIT_REGRESSION = 0, 1


@dataclass
class GateResult:
    candidate: RunData
    baseline: RunData
    spec: GateSpec
    checks: list[Check]
    notes: list[str]

    @property
    def verdict(self) -> str:
        verdicts = {c.verdict for c in self.checks}
        return "FAIL" if "FAIL" in verdicts else (
            "INCONCLUSIVE" if "INCONCLUSIVE" in verdicts else "PASS")

    def exit_code(self, strict: bool) -> int:
        failing = {"FAIL", "INCONCLUSIVE"} if strict else {"FAIL"}
        return EXIT_REGRESSION if self.verdict in failing else EXIT_PASS


def evaluate_gate(candidate: RunData, baseline: RunData, spec: GateSpec) -> GateResult:
    """Every metric the spec gates; a gated metric without data is a GateError, never a pass."""
    checks: list[Check] = []
    notes = check_lineage(candidate, baseline, spec.allow_cross_model)
    if spec.max_perplexity_increase_pct is not None:
        checks.append(perplexity_check(candidate, baseline, spec))
    if spec.max_kl_divergence is not None:
        checks.append(kl_check(candidate, spec))
    if spec.max_llamacpp_kld is not None:
        checks.append(llamacpp_kl_check(candidate, spec))
    if spec.max_accuracy_drop is not None and (candidate.samples or baseline.samples):
        checks += accuracy_checks(candidate, baseline, spec)
    elif spec.max_accuracy_drop is not None:
        notes.append("accuracy not gated: neither run has lm-eval per-document samples "
                     "(set evaluation.lm_eval in the recipes)")
    if spec.min_throughput_ratio is not None:
        checks += throughput_checks(candidate, baseline, spec)
    if not checks:
        raise GateError("nothing to gate: every threshold in gate.* is null")
    return GateResult(candidate, baseline, spec, checks, notes)


def spec_of(report: dict[str, Any]) -> GateSpec:
    """The gate thresholds recorded in a run's report (its recipe's `gate:` section)."""
    return GateSpec.model_validate(report.get("recipe", {}).get("gate") or {})

