"""The sweep's answer: the recommended trial (cheapest that passes), the table of every trial
(sweep.md, sweep.json), the Pareto plot (through `quench compare`) and the sweep's MLflow run."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quench.owned_files import write_atomic
from quench.sweep.load import Prepared
from quench.sweep.trial import SWEEP_TAG, TrialRecord

QUALITY = ("kl_divergence", "perplexity")  # how ties in cost are broken, lower is better


@dataclass
class SweepResult:
    """What run_sweep returns and this report is written from."""

    prepared: Prepared
    baseline: TrialRecord | None  # None: stopped before the baseline finished
    records: list[TrialRecord] = field(default_factory=list)
    recommended: TrialRecord | None = None
    interrupted: bool = False
    files: dict[str, Path] = field(default_factory=dict)
    mlflow_run_id: str | None = None


def recommend(result: SweepResult) -> TrialRecord | None:
    """The cheapest trial that passes the gate; costs within the objective's tie_pct of the
    cheapest tie, and the better quality wins (then the earliest): a file 100 bytes smaller
    must not beat half the KL divergence."""
    fits = [r for r in result.records if r.passed and r.cost is not None
            and result.prepared.strategy.candidate(r)]
    return best_of(fits, result.prepared.spec.objective.tie_pct)


def best_of(records: list[TrialRecord], tie_pct: float) -> TrialRecord | None:
    """Among costed records: the best quality of those tied with the cheapest."""
    if not records:
        return None
    cheapest = min(r.cost for r in records if r.cost is not None)
    band = abs(cheapest) * tie_pct / 100
    tied = [r for r in records if r.cost is not None and r.cost <= cheapest + band]
    return min(tied, key=lambda r: tuple(r.metrics.get(m, float("inf")) for m in QUALITY)
               + (r.cost,))


def write_results(result: SweepResult, say: Callable[[str], None]) -> None:
    out = result.prepared.out_dir
    result.recommended = recommend(result)
    if result.recommended is not None:
        result.files["recommended"] = out / "recommended.yaml"
        shutil.copyfile(result.recommended.recipe_path, out / "recommended.yaml")
    result.files.update(_pareto(result, say))
    data = summary(result)
    result.files["json"], result.files["markdown"] = out / "sweep.json", out / "sweep.md"
    write_atomic(out / "sweep.md", render_markdown(data))
    write_atomic(out / "sweep.json", json.dumps(data, indent=2, default=str))
    result.mlflow_run_id = _log_sweep_run(result, data, say)
    say(answer(result))


def answer(result: SweepResult) -> str:
    """The lines the console ends with: the recommended recipe, or why there is none."""
    done = [r for r in result.records if r.finished]
    head = (f"sweep {result.prepared.spec.name}: {len(result.records)} trial(s), {len(done)} "
            f"finished, {sum(r.passed for r in result.records)} passed the gate"
            + (" (interrupted)" if result.interrupted else ""))
    rec = result.recommended
    if rec is None:
        return head + "\nno trial passes the gate: nothing to recommend (see sweep.md)"
    intervals = "; ".join(_check_text(c) for c in rec.checks)
    return (f"{head}\nrecommended: {rec.run_name} ({rec.label}), cost {rec.cost:.6g}\n"
            f"  gate {rec.verdict}: {intervals}\n"
            f"  recipe: {result.files['recommended']} (quench run {rec.recipe_path})")


def summary(result: SweepResult) -> dict[str, Any]:
    prep = result.prepared
    return {
        "sweep": prep.spec.name, "file": str(prep.path), "strategy": prep.spec.strategy.kind,
        "executor": prep.executor.describe(),
        "objective": prep.spec.objective.model_dump(exclude_none=True),
        "gate": prep.gate.model_dump(), "strict": prep.spec.constraints.strict,
        "space_size": prep.space.size, "interrupted": result.interrupted,
        "baseline": result.baseline.to_json() if result.baseline else None,
        "trials": [r.to_json() for r in result.records],
        "recommended": result.recommended.trial_id if result.recommended else None,
        "recommended_recipe": str(result.files.get("recommended") or "") or None,
        "notes": list(prep.strategy.context.notes),
        "pareto": {k: str(v) for k, v in result.files.items() if k.startswith("pareto")},
    }


def render_markdown(data: dict[str, Any]) -> str:
    lines = [f"# quench sweep `{data['sweep']}`", "",
             f"Strategy {data['strategy']}, executor {data['executor']}, objective "
             f"{_objective(data['objective'])}; a trial passes on gate "
             f"{'PASS only' if data['strict'] else 'PASS or INCONCLUSIVE'}.", "",
             "| # | trial | point | status | gate | size ratio | perplexity | KL | tokens/s "
             "| cost | seconds | note |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for i, t in enumerate(data["trials"], 1):
        m = t["metrics"]
        mark = " **(recommended)**" if t["trial_id"] == data["recommended"] else ""
        seconds = (t.get("outcome") or {}).get("seconds")
        lines.append(
            f"| {i} | `{t['run_name']}`{mark} | {t['label']} | {t['status']} | "
            f"{t['verdict'] or ''} | {_num(m.get('size_ratio'))} | {_num(m.get('perplexity'))} "
            f"| {_num(m.get('kl_divergence'))} | {_num(m.get('output_tokens_per_s'))} | "
            f"{_num(t['cost'])} | {_num(seconds)} | {(t['note'] or '').replace('|', '/')} |")
    rec = next((t for t in data["trials"] if t["trial_id"] == data["recommended"]), None)
    lines += ["", "## Recommendation", ""]
    lines += ([f"`{rec['run_name']}` ({rec['label']}): recipe `{data['recommended_recipe']}`.",
               "", "| metric | estimate | interval | threshold | verdict |",
               "| --- | --- | --- | --- | --- |"]
              + [f"| {c['metric']} | {_num(c['estimate'])} | [{_num(c['low'])}, "
                 f"{_num(c['high'])}] | {'<=' if c['bound'] == 'max' else '>='} "
                 f"{_num(c['threshold'])} | {c['verdict']} |" for c in rec["checks"]]
              if rec else ["No trial passes the gate."])
    if data["pareto"].get("pareto_plot"):
        lines += ["", "## Pareto front", "", "![pareto](compare/pareto.png) (the baseline and "
                  "the finished trials; `compare/compare.md` has their full table)"]
    if data["notes"]:
        lines += ["", "## Notes", "", *(f"- {note}" for note in data["notes"])]
    return "\n".join(lines) + "\n"


def _pareto(result: SweepResult, say: Callable[[str], None]) -> dict[str, Path]:
    """`quench compare` over the baseline and the finished trials: its table and Pareto plot."""
    from quench.compare.comparison import CompareRequest, compare

    if result.baseline is None:
        return {}
    ids = [r.outcome.tracking["run_id"] for r in [result.baseline, *result.records]
           if r.finished and r.outcome and r.outcome.tracking.get("run_id")]
    if len(ids) < 2:
        return {}
    uri = result.baseline.outcome.tracking["tracking_uri"]  # type: ignore[union-attr]
    out = result.prepared.out_dir / "compare"
    try:
        done = compare(CompareRequest(tracking_uri=uri, out=out, refs=ids, quality="kl",
                                      record=False))
    except Exception as exc:  # noqa: BLE001 - the table is written without the plot
        say(f"warning: no Pareto plot ({exc})")
        return {}
    return {"pareto_plot": out / "pareto.png", "pareto_compare": out / "compare.md",
            **{f"pareto_{p.name}": p for p in done["files"] if p.suffix == ".json"}}


def _log_sweep_run(result: SweepResult, data: dict[str, Any], say: Callable[[str], None]
                   ) -> str | None:
    """The sweep's own MLflow run (tag quench.kind=sweep); trials carry quench.sweep=<name>.
    A tracking store that is down costs the run, never the sweep's files."""
    if result.baseline is None or result.baseline.outcome is None:
        return None  # stopped before the baseline's run: nothing says where to log
    try:
        from mlflow.tracking import MlflowClient

        tracking = result.baseline.outcome.tracking  # type: ignore[union-attr]
        client = MlflowClient(tracking_uri=tracking["tracking_uri"])
        name = result.prepared.base_recipe.tracking.experiment
        experiment = client.get_experiment_by_name(name)
        experiment_id = experiment.experiment_id if experiment else client.create_experiment(name)
        run = client.create_run(experiment_id, run_name=f"sweep {data['sweep']}",
                                tags={"quench.kind": "sweep", SWEEP_TAG: data["sweep"]})
        run_id = run.info.run_id
        client.log_param(run_id, "strategy", data["strategy"])
        client.log_param(run_id, "objective", json.dumps(data["objective"]))
        client.log_param(run_id, "axes", json.dumps(result.prepared.spec.axes)[:6000])
        client.log_metric(run_id, "trials", len(data["trials"]))
        client.log_metric(run_id, "passed", sum(t["passed"] for t in data["trials"]))
        if result.recommended is not None:
            client.set_tag(run_id, "quench.sweep.recommended", result.recommended.run_name)
            client.log_metric(run_id, "recommended_cost", result.recommended.cost or 0.0)
        for key, path in result.files.items():
            if Path(path).is_file() and key != "pareto_compare":
                client.log_artifact(run_id, str(path))
        client.set_terminated(run_id, "KILLED" if result.interrupted else "FINISHED")
        return run_id
    except Exception as exc:  # noqa: BLE001
        say(f"warning: the sweep's MLflow run was not logged ({exc}); its files are in "
            f"{result.prepared.out_dir}")
        return None


def _check_text(c: dict[str, Any]) -> str:
    return (f"{c['metric']} {_num(c['estimate'])} [{_num(c['low'])}, {_num(c['high'])}] "
            f"{'<=' if c['bound'] == 'max' else '>='} {_num(c['threshold'])}")


def _objective(o: dict[str, Any]) -> str:
    if "weights" in o:
        return "minimize " + " + ".join(f"{w:g} x {m}" for m, w in o["weights"].items())
    return next(f"{k} {v}" for k, v in o.items())


def _num(x: Any) -> str:
    if x is None:
        return ""
    return f"{x:.4g}" if isinstance(x, float) else str(x)
