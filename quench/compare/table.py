"""The comparison as records (compare.json) and as Markdown (compare.md and the console)."""

from __future__ import annotations

from typing import Any

from quench.compare.collect import Row, task_columns, throughput_reference

# (header, parent-run metric, scale) of the main table's metric columns
METRIC_COLUMNS = (
    ("size (MB)", "candidate.size_bytes", 1e-6),
    ("size ratio", "change.size_ratio", 1.0),
    ("perplexity", "candidate.perplexity", 1.0),
    ("ppl change %", "change.perplexity_pct", 1.0),
    ("KL", "candidate.kl_divergence", 1.0),
    ("top-1 agree", "candidate.top1_agreement", 1.0),
)


def records(rows: list[Row]) -> dict[str, Any]:
    """Everything the tables show, as data: one record per run plus the column choices."""
    reference = throughput_reference(rows)
    base = reference.throughput() if reference else {}
    out = []
    for row in rows:
        mine = row.throughput()
        out.append({
            "run_id": row.run_id, "name": row.name, "experiment_id": row.experiment_id,
            "model": row.tag("quench.model"), "method": row.method,
            "scheme": row.tag("quench.scheme"),
            "metrics": {key: row.metric(key) for _, key, _ in METRIC_COLUMNS},
            "lm_eval": [{"task": t, "metric": m, "engine": e, "value": v, "stderr": s}
                        for (t, m, e), (v, s) in sorted(row.accuracies().items())],
            "throughput": {str(c): v for c, v in sorted(mine.items())},
            "throughput_ratio": {str(c): mine[c] / base[c] for c in sorted(mine) if c in base},
            "license": row.license(), "gate": row.tag("quench.gate"), "notes": row.notes,
        })
    levels = sorted({c for row in rows for c in row.throughput()})
    return {"runs": out, "task_columns": [list(k) for k in task_columns(rows)],
            "throughput_levels": levels,
            "throughput_reference": reference.run_id if reference else None}


def render_markdown(data: dict[str, Any], context: dict[str, Any]) -> str:
    """compare.md: the runs table, lm-eval and throughput details, the Pareto plot, notes."""
    runs = data["runs"]
    lines = ["# quench compare", "",
             f"{len(runs)} run(s) from `{context['tracking_uri']}`"
             f" ({context['selection']}), {context['created']}.", ""]
    lines += _main_table(data)
    lines += _lm_eval_table(runs)
    lines += _throughput_table(data)
    if context.get("plot"):
        lines += ["", "## Pareto", "", f"![Pareto plot]({context['plot']})", ""]
        lines += [f"- {line}" for line in context.get("plot_notes", [])]
    notes = [f"- {r['name']} ({r['run_id']}): {n}" for r in runs for n in r["notes"]]
    if notes:
        lines += ["", "## Notes", "", *notes]
    if context.get("ui_link"):
        lines += ["", f"MLflow compare page: {context['ui_link']}"]
    return "\n".join(lines) + "\n"


def _main_table(data: dict[str, Any]) -> list[str]:
    runs, tasks = data["runs"], data["task_columns"]
    top = max(data["throughput_levels"], default=None)
    headers = ["run", "run id", "method", "scheme", *(h for h, _, _ in METRIC_COLUMNS)]
    headers += [f"{t} {m}" + ("" if e == "hf" else f" ({e})") for t, m, e in tasks]
    if top is not None:
        headers += [f"out tok/s @{top}", f"tok/s ratio @{top}"]
    headers += ["license", "gate"]
    lines = [_line(headers), _line(["---"] * len(headers))]
    for r in runs:
        cells = [r["name"], f"`{r['run_id']}`", r["method"] or "", r["scheme"] or ""]
        cells += [_num(_scaled(r["metrics"][key], scale)) for _, key, scale in METRIC_COLUMNS]
        acc = {(a["task"], a["metric"], a["engine"]): a for a in r["lm_eval"]}
        cells += [_pm(acc.get(tuple(k))) for k in tasks]
        if top is not None:
            cells += [_num(r["throughput"].get(str(top))),
                      _num(r["throughput_ratio"].get(str(top)))]
        cells += [r["license"], r["gate"] or ""]
        lines.append(_line(cells))
    return lines


def _lm_eval_table(runs: list[dict[str, Any]]) -> list[str]:
    """Every lm-eval task, metric and engine: value ± stderr per run (empty: not evaluated)."""
    keys = sorted({(a["task"], a["metric"], a["engine"]) for r in runs for a in r["lm_eval"]})
    if not keys:
        return []
    lines = ["", "## lm-eval (value ± stderr)", "",
             _line(["task", "metric", "engine", *(r["name"] for r in runs)]),
             _line(["---"] * (3 + len(runs)))]
    for key in keys:
        cells = []
        for r in runs:
            found = [a for a in r["lm_eval"] if (a["task"], a["metric"], a["engine"]) == key]
            cells.append(_pm(found[0] if found else None))
        lines.append(_line([*key, *cells]))
    return lines


def _throughput_table(data: dict[str, Any]) -> list[str]:
    levels, runs = data["throughput_levels"], data["runs"]
    if not levels:
        return []
    ref = next((r["name"] for r in runs if r["run_id"] == data["throughput_reference"]), None)
    lines = ["", "## Throughput (output tokens/s)", "",
             f"Ratios (x...) are to `{ref}`." if ref else "No ratios: no unquantized (method "
             "none) run among these measured throughput.", "",
             _line(["concurrency", *(r["name"] for r in runs)]),
             _line(["---"] * (1 + len(runs)))]
    for level in levels:
        cells = []
        for r in runs:
            value, ratio = r["throughput"].get(str(level)), r["throughput_ratio"].get(str(level))
            cells.append(_num(value) + (f" (x{ratio:.3g})" if ratio is not None else ""))
        lines.append(_line([str(level), *cells]))
    return lines


def _scaled(value: float | None, scale: float) -> float | None:
    return None if value is None else value * scale


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


def _pm(acc: dict[str, Any] | None) -> str:
    if acc is None:
        return ""
    stderr = acc["stderr"]
    return f"{acc['value']:.4g}" + (f" ± {stderr:.2g}" if stderr is not None else "")


def _line(cells: list[str]) -> str:
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"
