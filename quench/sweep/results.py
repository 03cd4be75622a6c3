"""A finished trial judged: its gate verdict against the sweep's baseline (read from MLflow,
like `quench gate`) and its cost under the objective (read from its report.json)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from quench.compare.collect import throughput_by_concurrency
from quench.errors import QuenchError
from quench.gate.data import RunData, load_run
from quench.gate.record import record_verdict
from quench.gate.render import render
from quench.gate.verdict import evaluate_gate
from quench.recipe.gate import GateSpec
from quench.sweep.spec import OBJECTIVE_METRICS, ObjectiveSpec
from quench.sweep.trial import TrialRecord


def trial_metrics(report: dict[str, Any] | None) -> dict[str, float]:
    """The objective metrics a report holds (what was not measured stays out)."""
    if not report:
        return {}
    metrics = report.get("metrics") or {}
    found = {**(metrics.get("candidate") or {}), **(metrics.get("change") or {})}
    out = {k: float(found[k]) for k in OBJECTIVE_METRICS if _number(found.get(k))}
    tokens = top_throughput(report)
    if tokens is not None:
        out["output_tokens_per_s"] = tokens
    return out


def top_throughput(report: dict[str, Any]) -> float | None:
    """Served output tokens/s at the highest concurrency the run measured."""
    levels = throughput_by_concurrency(report)
    return levels[max(levels)] if levels else None


def cost_of(metrics: dict[str, float], objective: ObjectiveSpec) -> tuple[float | None, str | None]:
    """The cost (lower wins), or None with the reason when a metric it needs is missing."""
    missing = [m for m in objective.metrics() if m not in metrics]
    if missing:
        return None, f"not measured: {', '.join(missing)}"
    if objective.minimize:
        return metrics[objective.minimize], None
    if objective.maximize:
        return -metrics[objective.maximize], None
    return sum(w * metrics[m] for m, w in (objective.weights or {}).items()), None


class Judge:
    """Gates trials against one baseline run; the baseline's data is downloaded once."""

    def __init__(self, client: Any, baseline_run_id: str, spec: GateSpec, strict: bool) -> None:
        from quench.tracking.lookup import resolve_run

        self.client, self.spec, self.strict = client, spec, strict
        self.baseline: RunData = load_run(client, resolve_run(client, baseline_run_id))

    def judge(self, record: TrialRecord) -> str:
        """Fills the record's verdict and checks; returns the gate's Markdown."""
        from quench.tracking.lookup import resolve_run

        run_id = record.outcome.tracking.get("run_id") if record.outcome else None
        if not run_id:
            raise QuenchError("the trial's run was not logged to MLflow (tracking store "
                              "unavailable?): run `quench sync`, then the sweep again")
        result = evaluate_gate(load_run(self.client, resolve_run(self.client, run_id)),
                               self.baseline, self.spec)
        text = render(result)
        record_verdict(self.client, result, text)
        record.verdict = result.verdict
        record.checks = [asdict(c) for c in result.checks]
        accepted = {"PASS"} if self.strict else {"PASS", "INCONCLUSIVE"}
        record.passed = result.verdict in accepted
        return text


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
