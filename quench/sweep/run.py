"""Runs a prepared sweep: the baseline first, then the strategy's trials through the executor;
each finished trial is gated and costed, and the results are written however the sweep ends."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from quench.errors import QuenchError
from quench.gate.checks import GateError
from quench.owned_files import open_owned
from quench.sweep.jobs import FINISHED, TrialJob, TrialOutcome
from quench.sweep.load import Prepared
from quench.sweep.report import SweepResult, write_results
from quench.sweep.results import Judge, cost_of, trial_metrics
from quench.sweep.space import Point, describe, point_id
from quench.sweep.trial import (
    BASELINE_ID,
    TRIAL_TAG,
    TrialRecord,
    trial_recipe,
    write_trial,
)

Say = Callable[[str], None]


def run_sweep(prep: Prepared, say: Say = print,
              advance: Callable[[], None] = lambda: None) -> SweepResult:
    """The whole sweep; results are written even when it is interrupted (then re-raised).
    `say` prints a line, `advance` moves a progress bar by one trial."""
    prep.out_dir.mkdir(parents=True, exist_ok=True)
    say(f"sweep {prep.spec.name}: strategy {prep.spec.strategy.kind}, space of "
        f"{prep.space.size} point(s), budget {prep.spec.budget.max_trials} trial(s), executor "
        f"{prep.executor.describe()}; output {prep.out_dir}")
    result = SweepResult(prep, None)
    try:
        result.baseline = baseline = _run_baseline(prep, say)
        prep.strategy.context.baseline = baseline
        judge = Judge(_client(baseline), baseline.outcome.tracking["run_id"],  # type: ignore[union-attr]
                      prep.gate, prep.spec.constraints.strict)
        _trials(prep, judge, result, say, advance)
    except KeyboardInterrupt:  # Ctrl-C, SIGTERM or SIGHUP: the files say what was done
        result.interrupted = True
        raise
    finally:
        prep.executor.close()
        if result.baseline is not None or result.interrupted:
            _finish(result, say)
    return result


def _run_baseline(prep: Prepared, say: Say) -> TrialRecord:
    # the baseline shares the trials' cache and tracking store: their runs are gated against it
    shared = {k: prep.base[k] for k in ("output", "tracking") if k in prep.base}
    data = trial_recipe({**prep.baseline, **shared}, {}, prep.spec.name)
    data["name"] = f"{prep.spec.name}-{BASELINE_ID}"
    data["tracking"]["tags"][TRIAL_TAG] = BASELINE_ID
    record = new_record(prep, {}, data, BASELINE_ID)
    say(f"[baseline] {data['name']}: running")
    record.outcome = next(iter(prep.executor.run([_job(prep, record)])))
    if record.outcome.status != FINISHED or not record.outcome.tracking.get("run_id"):
        why = record.outcome.error or "its run was not logged to MLflow (quench sync, then retry)"
        raise QuenchError(f"the sweep's baseline {data['name']} did not finish: {why}; log "
                          f"{prep.out_dir / 'logs' / (BASELINE_ID + '.log')}")
    record.metrics = trial_metrics(record.outcome.report)
    say(f"[baseline] done in {record.outcome.seconds:.0f} s")
    return record


def _trials(prep: Prepared, judge: Judge, result: SweepResult, say: Say,
            advance: Callable[[], None]) -> None:
    budget = prep.spec.budget.max_trials
    while len(result.records) < budget:
        points = prep.strategy.ask(result.records, min(prep.executor.parallelism,
                                                       budget - len(result.records)))
        if not points:
            return
        pending = {point_id(p): new_record(prep, p, trial_recipe(prep.base, p, prep.spec.name))
                   for p in points}
        for outcome in prep.executor.run([_job(prep, r) for r in pending.values()]):
            record = pending.pop(outcome.trial_id)
            _judge(record, outcome, judge, prep)
            prep.strategy.tell(record)
            result.records.append(record)
            _append_state(prep, record)
            say(_line(len(result.records), budget, record))
            advance()


def new_record(prep: Prepared, point: Point, data: dict[str, Any],
            trial_id: str | None = None) -> TrialRecord:
    trial_id = trial_id or point_id(point)
    header = (f"trial {trial_id} of sweep {prep.spec.name} ({prep.path}): {describe(point)}\n"
              f"re-run it alone: quench run <this file>")
    path = write_trial(data, prep.out_dir / "trials", header)
    output = (data.get("output") or {}).get("dir") or prep.base_recipe.output.dir
    return TrialRecord(trial_id, point, data["name"], str(path), output_dir=str(output))


def _job(prep: Prepared, record: TrialRecord) -> TrialJob:
    root = Path(record.output_dir).expanduser().resolve()
    return TrialJob(record.trial_id, record.run_name, record.recipe_path,
                    str(root / record.run_name),
                    str(prep.out_dir / "logs" / f"{record.trial_id}.log"), os.getcwd(),
                    prep.spec.budget.trial_timeout_s)


def _judge(record: TrialRecord, outcome: TrialOutcome, judge: Judge, prep: Prepared) -> None:
    """Verdict and cost of a finished trial; a trial the gate cannot decide gets a note."""
    record.outcome = outcome
    if outcome.status != FINISHED:
        record.note = outcome.error
        return
    record.metrics = trial_metrics(outcome.report)
    record.cost, missing = cost_of(record.metrics, prep.spec.objective)
    try:
        judge.judge(record)
    except (GateError, QuenchError) as exc:
        record.note = f"not gated: {exc}"
    if missing:
        record.note = "; ".join(x for x in (record.note, missing) if x)


def _line(done: int, budget: int, r: TrialRecord) -> str:
    if not r.finished:
        return f"[{done}/{budget}] {r.trial_id} {r.label}: {r.status.upper()} ({r.note})"
    size = r.metrics.get("size_ratio")
    parts = [r.verdict or "not gated", f"size x{size:.3f}" if size else None,
             f"KL {r.metrics['kl_divergence']:.4f}" if "kl_divergence" in r.metrics else None,
             f"cost {r.cost:.6g}" if r.cost is not None else None,
             f"{r.outcome.seconds:.0f} s" if r.outcome else None]
    return f"[{done}/{budget}] {r.trial_id} {r.label}: " + ", ".join(p for p in parts if p)


def _append_state(prep: Prepared, record: TrialRecord) -> None:
    """trials.jsonl: one line per finished trial, written as it finishes (a kill loses none)."""
    with open_owned(prep.out_dir / "trials.jsonl", "a") as out:
        out.write(json.dumps(record.to_json(), default=str) + "\n")


def _client(baseline: TrialRecord) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=baseline.outcome.tracking["tracking_uri"])  # type: ignore[union-attr]


def _finish(result: SweepResult, say: Say) -> None:
    """Recommendation, table, plot and the sweep's MLflow run: written on every way out."""
    try:
        write_results(result, say)
    except Exception as exc:  # noqa: BLE001 - the trials' own runs and logs are kept either way
        print(f"warning: the sweep's summary could not be written ({exc})", file=sys.stderr)
