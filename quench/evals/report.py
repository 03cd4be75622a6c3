"""The lm-eval part of report.json/report.md: baseline vs candidate per engine, task, metric."""

from __future__ import annotations

from typing import Any

from quench.contract.manifest import Manifest


def lm_eval_summary(baseline: Manifest | None, candidate: Manifest | None) -> dict[str, Any]:
    """Rows of value ± stderr for both models; {} when lm-eval did not run for this recipe."""
    if baseline is None or candidate is None or candidate.skipped:
        return {}
    base, cand = baseline.outputs.get("results", {}), candidate.outputs.get("results", {})
    rows = []
    for engine, per_task in cand.items():
        for task, per_metric in per_task.items():
            for metric, v in per_metric.items():
                b = base.get(engine, {}).get(task, {}).get(metric, {})
                diff = candidate.outputs.get("differences", {}).get(engine, {}).get(task, {})
                rows.append({
                    "engine": engine, "task": task, "metric": metric,
                    "baseline": b.get("value"), "baseline_stderr": b.get("stderr"),
                    "candidate": v["value"], "candidate_stderr": v["stderr"],
                    "change": v["value"] - b["value"] if b.get("value") is not None else None,
                    "candidate_minus_hf": diff.get(metric),
                })
    status = {f"{node}:{engine}": info["status"]
              for node, m in (("baseline", baseline), ("candidate", candidate))
              for engine, info in m.outputs.get("engines", {}).items()}
    notes = [f"{node} on {engine}, {task}: {n} requests had a token spanning the context/"
             "continuation join and were tokenized apart (quench/evals/models.py)"
             for node, m in (("baseline", baseline), ("candidate", candidate))
             for engine, info in m.outputs.get("engines", {}).items()
             for task, n in info.get("join_fallbacks", {}).items() if n]
    return {"protocol": candidate.outputs.get("protocol"), "rows": rows,
            "tasks": candidate.outputs.get("tasks"), "engine_status": status, "notes": notes}


def lm_eval_markdown(summary: dict[str, Any]) -> list[str]:
    """The report.md section: one row per engine, task and metric."""
    if not summary:
        return []
    p = summary["protocol"]
    served = any(r["engine"] != "hf" for r in summary["rows"])
    shots = "task default" if p["num_fewshot"] is None else p["num_fewshot"]
    lines = ["", "## lm-eval", "",
             f"Tasks {', '.join(p['tasks'])}; few-shot: {shots}; limit: {p['limit'] or 'none'} "
             "documents per task. Per-document results: `samples_<task>.jsonl` in each lm_eval "
             "stage folder.", "",
             "| engine | task | metric | baseline | candidate | change |"
             + (" candidate - hf |" if served else ""),
             "| --- | --- | --- | --- | --- | --- |" + (" --- |" if served else "")]
    for r in summary["rows"]:
        lines.append(
            f"| {r['engine']} | {r['task']} | {r['metric']} "
            f"| {_pm(r['baseline'], r['baseline_stderr'])} "
            f"| {_pm(r['candidate'], r['candidate_stderr'])} | {_num(r['change'])} |"
            + (f" {_num(r['candidate_minus_hf'])} |" if served else ""))
    skipped = [f"- {k}: {v}" for k, v in summary["engine_status"].items() if v != "ran"]
    lines += ["", "Engines not evaluated:", "", *skipped] if skipped else []
    lines += _data_lines(summary.get("tasks") or {})
    return lines + [f"\nNote: {n}" for n in summary.get("notes", [])]


def _data_lines(tasks: dict[str, Any]) -> list[str]:
    """Where each task's documents came from: the mirror, a bundled excerpt, or lm-eval's own."""
    out = []
    for name, origin in tasks.items():
        where = origin.get("source", "")
        if where == "bundled":
            where = (f"quench's bundled excerpt `{origin['bundled']}` ({origin['records']} "
                     f"documents, {origin['license']})")
        elif where == "mirror":
            where = f"the mirror ({origin.get('records')} documents)"
        out.append(f"- {name}: {where}")
    return ["", "Task data:", "", *out] if out else []


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


def _pm(value: float | None, stderr: float | None) -> str:
    return _num(value) + (f" ± {stderr:.2g}" if stderr is not None else "")
