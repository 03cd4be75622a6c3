"""The fits, targets and Markdown of bench/scaling.py (the scaling table)."""

from __future__ import annotations

import os
import statistics
from pathlib import Path
from typing import Any

from quench.errors import QuenchError

REPO = Path(__file__).resolve().parents[1]

GIB = 2**30
RSS_SLOPE, RSS_FIXED = 1.3, 1.5 * GIB  # target: whole-run peak RSS <= 1.3 x bytes + 1.5 GiB
OFFLOAD_TARGET = 1.5 * GIB  # target with disk offload: whole-run peak at every size
PREDICTION_TOLERANCE = 0.15  # `quench plan`'s per-stage peak within 15 % of the measured one
LINEAR_TOLERANCE = 0.15  # quantize time "roughly linear": every size within 15 % of the line
SPEED_TOLERANCE = 0.95  # perplexity tokens/s at least 95 % of the bare loop's


def runs(data: dict[str, Any]) -> list[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    """(size, method, size entry, run) for every run that finished."""
    return [(size, method, entry, run) for size, entry in data["sizes"].items()
            for method, run in entry["runs"].items()]


def fit(xs: list[float], ys: list[float]) -> dict[str, Any] | None:
    """Least-squares line y = slope x + intercept, with residuals relative to y (2+ points)."""
    if len(set(xs)) < 2:
        return None
    slope, intercept = statistics.linear_regression(xs, ys)
    rel = [(y - (slope * x + intercept)) / y for x, y in zip(xs, ys, strict=True)]
    return {"slope": slope, "intercept": intercept, "relative_residuals": rel, "points": len(xs)}


def speed(stage: dict[str, Any] | None, bare: dict[str, Any] | None) -> dict[str, Any] | None:
    """A perplexity stage's tokens/s vs the bare loop's, like for like."""
    if not stage or not bare or "tokens" not in stage:
        return None
    if "tokens_per_second" in stage:  # the stage's own scoring rate: vs the bare forward loop
        tps, basis, ref = stage["tokens_per_second"], "metric tokens_per_second", "forward_tps"
    else:  # the whole stage (tokenize, load, score): vs the bare loop's tokenize+load+forward
        tps, basis, ref = stage["tokens"] / stage["elapsed_s"], "tokens / elapsed_s", \
            "end_to_end_tps"
    ratio = tps / bare[ref]
    return {"tokens": stage["tokens"], "tps": tps, "basis": basis, "bare_tps": bare[ref],
            "bare_basis": ref, "ratio": ratio, "pass": ratio >= SPEED_TOLERANCE,
            "same_windows": stage.get("windows_sha256") == bare.get("windows_sha256")}


def analyse(data: dict[str, Any]) -> dict[str, Any]:
    """Per-run targets, the RSS fit, quantize time per parameter and perplexity speed."""
    rows, by_method = [], {}
    for size, method, entry, run in runs(data):
        model_bytes, params = entry["model"]["bf16_bytes"], entry["model"]["params"]
        offloaded = method.endswith("-offload")
        target = OFFLOAD_TARGET if offloaded else RSS_SLOPE * model_bytes + RSS_FIXED
        quantize = run["stages"].get("quantize", {})
        rows.append({"size": size, "method": method, "params": params, "model_bytes": model_bytes,
                     "peak_rss_bytes": run["peak_rss_bytes"], "rss_target_bytes": target,
                     "rss_pass": run["peak_rss_bytes"] <= target,
                     "quantize_s": quantize.get("elapsed_s"),
                     "oneshot_s": quantize.get("quantize_wall_seconds"),
                     "baseline_eval": speed(run["stages"].get("baseline_eval"), entry.get("bare")),
                     "evaluate": speed(run["stages"].get("evaluate"), run.get("bare")),
                     "offloaded": offloaded,
                     "stages_s": sum(st.get("elapsed_s") or 0 for st in run["stages"].values()
                                     if st["status"] == "ran"),
                     "predicted": predicted(run)})
        by_method.setdefault(method, []).append(rows[-1])
    return {"rows": rows,
            "rss_fit": fit([r["model_bytes"] for r in rows], [r["peak_rss_bytes"] for r in rows]),
            "rss_fit_by_method": {m: fit([r["model_bytes"] for r in rs],
                                         [r["peak_rss_bytes"] for r in rs])
                                  for m, rs in by_method.items()},
            "quantize": {m: quantize_time(rs) for m, rs in by_method.items()},
            "offload_cost": offload_cost(rows)}


def predicted(run: dict[str, Any]) -> dict[str, Any]:
    """`quench plan`'s predicted host peak of each stage of the run's recipe, next to the
    measured one (MiB), and whether it is within PREDICTION_TOLERANCE."""
    from quench.plan import model_shape
    from quench.recipe import load_recipe
    from quench.stage_memory import predict

    if "recipe" not in run:  # measured before predictions were recorded
        return {}
    path = Path(run["recipe"])
    if not path.is_file():  # measured under another BENCH_OUT: this one's copy, if made
        path = Path(os.environ.get("BENCH_OUT") or REPO / "artifacts" / "bench") / "scaling" \
            / "recipes" / path.name
    try:
        recipe = load_recipe(str(path))
        shape, _ = model_shape(recipe)
    except (OSError, QuenchError):  # its recipe or model is gone: no prediction to show
        return {}
    out = {}
    for step in predict(recipe, shape, "cpu"):
        measured = run["stages"].get(step.step, {}).get("stage_peak_rss_mb")
        if measured is None:
            continue
        want = step.host_bytes / 2**20
        error = want / measured - 1
        out[step.step] = {"predicted_mb": want, "measured_mb": measured, "error": error,
                          "pass": abs(error) <= PREDICTION_TOLERANCE}
    return out


def offload_cost(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Time in stages of each offloaded run over the same method's run in RAM, per size (the
    stages' own elapsed_s: a child's wall time also counts its wait for BENCH_LOCK)."""
    walls = {(r["size"], r["method"]): r["stages_s"] for r in rows}
    return {f"{size} GB {method}": wall / walls[(size, method.removesuffix("-offload"))]
            for (size, method), wall in walls.items()
            if method.endswith("-offload") and (size, method.removesuffix("-offload")) in walls}


def quantize_time(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Quantize-stage seconds per billion parameters, and how linear they are (3+ sizes)."""
    timed = [r for r in rows if r["quantize_s"]]
    per_b = {r["size"]: r["quantize_s"] / r["params"] * 1e9 for r in timed}
    line = fit([r["params"] / 1e9 for r in timed], [r["quantize_s"] for r in timed])
    linear = None
    if line and line["points"] >= 3:
        linear = max(abs(x) for x in line["relative_residuals"]) <= LINEAR_TOLERANCE
    spread = max(per_b.values()) / min(per_b.values()) if per_b else None
    return {"s_per_bparam": per_b, "fit": line, "per_param_spread": spread, "linear": linear}


# -- Markdown -----------------------------------------------------------------------------------

def _gib(n: float | None) -> str:
    return "" if n is None else f"{n / GIB:.2f}"


def _secs(n: float | None) -> str:
    return "" if n is None else f"{n:.0f}"


def _mark(ok: bool | None) -> str:
    return "n/a" if ok is None else "pass" if ok else "**miss**"


def whole_run(data: dict[str, Any]) -> list[str]:
    lines = ["| size | params | bf16 GB | method | run s | CPU s | load 1m | peak RSS GiB "
             "| ru_maxrss / sampled / stage max GiB | target GiB | RSS target | quantize stage s "
             "| oneshot s | quantize s / B params |", "|" + "---|" * 14]
    rows = {(r["size"], r["method"]): r for r in data["analysis"]["rows"]}
    for size, method, _, run in runs(data):
        r = rows[(size, method)]
        per_b = r["quantize_s"] / r["params"] * 1e9 if r["quantize_s"] else None
        sources = " / ".join(_gib(v) for v in run.get("peak_rss_sources", {}).values())
        lines.append(
            f"| {size} GB | {r['params'] / 1e6:.0f}M | {r['model_bytes'] / 1e9:.2f} | {method} "
            f"| {run['wall_s']:.0f} | {_secs(run.get('cpu_s'))} | {run.get('loadavg_1m', '')} "
            f"| {_gib(r['peak_rss_bytes'])} | {sources} "
            f"| {_gib(r['rss_target_bytes'])} "
            f"| {_mark(r['rss_pass'])} | {r['quantize_s'] or 0:.1f} | {r['oneshot_s'] or 0:.1f} "
            f"| {per_b or 0:.1f} |")
    return lines


def per_stage(data: dict[str, Any]) -> list[str]:
    """A cell per stage that ran: its peak RSS (GiB) and wall time (manifest elapsed_s)."""
    order: list[str] = []
    for _, _, _, run in runs(data):
        order += [n for n in run["stages"] if n not in order]
    ran = [n for n in order if any(run["stages"].get(n, {}).get("status") == "ran"
                                   for *_, run in runs(data))]
    lines = ["| size | method | " + " | ".join(ran) + " |", "|" + "---|" * (2 + len(ran))]
    for size, method, _, run in runs(data):
        cells = []
        for node in ran:
            s = run["stages"].get(node)
            if s is None or s["status"] != "ran":
                cells.append("-" if s is None else s["status"].split(":")[0])
                continue
            rss = s.get("stage_peak_rss_mb")
            cells.append(f"{rss / 1024:.2f} GiB, {s['elapsed_s']:.1f} s" if rss is not None
                         else f"{s['elapsed_s']:.1f} s")
        lines.append(f"| {size} GB | {method} | " + " | ".join(cells) + " |")
    return lines


def phase_rows(data: dict[str, Any]) -> list[str]:
    """Each phase's peak RSS (MiB) in the stages that measured them (quench.compute.PhasePeaks)."""
    lines = ["| size | method | stage | phase peaks MiB |", "|---|---|---|---|"]
    for size, method, _, run in runs(data):
        for node, s in run["stages"].items():
            if s.get("phases_mb"):
                cells = ", ".join(f"{k} {v:.0f}" for k, v in s["phases_mb"].items())
                lines.append(f"| {size} GB | {method} | {node} | {cells} |")
    return lines if len(lines) > 2 else []


def speeds(data: dict[str, Any]) -> list[str]:
    lines = ["| size | method | stage | tokens | stage tok/s | basis | bare tok/s | bare basis "
             "| ratio | target | same windows |", "|" + "---|" * 11]
    for r in data["analysis"]["rows"]:
        for stage in ("baseline_eval", "evaluate"):
            s = r[stage]
            if s is None:
                continue
            lines.append(
                f"| {r['size']} GB | {r['method']} | {stage} | {s['tokens']} | {s['tps']:.1f} "
                f"| {s['basis']} | {s['bare_tps']:.1f} | {s['bare_basis']} | {s['ratio']:.3f} "
                f"| {_mark(s['pass'])} | {s['same_windows']} |")
    return lines


def predictions(data: dict[str, Any]) -> list[str]:
    lines = ["| size | method | stage | measured MiB | predicted MiB | error | within 15 % |",
             "|" + "---|" * 7]
    for r in data["analysis"]["rows"]:
        for stage, c in r.get("predicted", {}).items():
            lines.append(f"| {r['size']} GB | {r['method']} | {stage} | {c['measured_mb']:.0f} "
                         f"| {c['predicted_mb']:.0f} | {100 * c['error']:+.1f} % "
                         f"| {_mark(c['pass'])} |")
    return lines


def bare_rows(data: dict[str, Any]) -> list[str]:
    """The bare loop on each source model (with its build) and on each quantized checkpoint."""
    lines = ["| size | model | tokenize s | load s | forward s | forward tok/s | end-to-end tok/s "
             "| peak RSS GiB | build s | build peak RSS GiB |", "|" + "---|" * 10]
    for size, entry in data["sizes"].items():
        build = entry["model"].get("build", {})
        models = [("source bf16", entry.get("bare"), build)]
        models += [(f"{m} checkpoint", run.get("bare"), {}) for m, run in entry["runs"].items()]
        for label, b, built in models:
            if not b:
                continue
            lines.append(
                f"| {size} GB | {label} | {b['tokenize_s']:.1f} | {b['load_s']:.1f} "
                f"| {b['forward_s']:.1f} | {b['forward_tps']:.1f} | {b['end_to_end_tps']:.1f} "
                f"| {_gib(b['peak_rss_bytes'])} | {_secs(built.get('wall_s'))} "
                f"| {_gib(built.get('peak_rss_bytes'))} |")
    return lines


def targets(data: dict[str, Any]) -> list[str]:
    a = data["analysis"]
    rows = a["rows"]
    lines = []
    for offloaded, what in ((False, "Whole-run peak RSS <= 1.3 x model bytes + 1.5 GiB"),
                            (True, "With disk offload, whole-run peak RSS <= 1.5 GiB")):
        group = [r for r in rows if r["offloaded"] == offloaded]
        if not group:
            continue
        ok = all(r["rss_pass"] for r in group)
        fits = "; ".join(
            f"{m}: {f['slope']:.2f} bytes per model byte {f['intercept'] / GIB:+.2f} GiB"
            for m, f in a["rss_fit_by_method"].items()
            if f and m.endswith("-offload") == offloaded)
        lines.append(f"- {what}: {_mark(ok)} ({sum(r['rss_pass'] for r in group)}/{len(group)} "
                     f"runs within); fitted per method: {fits or 'needs 2+ sizes'}.")
    if a.get("offload_cost"):
        cost = ", ".join(f"{k}: {v:.2f}x" for k, v in a["offload_cost"].items())
        lines.append(f"- Time in stages with disk offload, over the same run in RAM: {cost}.")
    checks = [c for r in rows for c in r.get("predicted", {}).values()]
    if checks:
        worst = max(checks, key=lambda c: abs(c["error"]))
        lines.append(f"- `quench plan`'s per-stage host peak within 15 % of the measured: "
                     f"{_mark(all(c['pass'] for c in checks))} "
                     f"({sum(c['pass'] for c in checks)}/{len(checks)} stage peaks within; "
                     f"largest error {100 * worst['error']:+.1f} %).")
    for method, q in a["quantize"].items():
        per_b = ", ".join(f"{s} GB: {v:.1f}" for s, v in q["s_per_bparam"].items())
        f = q["fit"]
        how = (f"line {f['slope']:.1f} s per B params {f['intercept']:+.1f} s, residuals "
               + ", ".join(f"{100 * x:+.1f} %" for x in f["relative_residuals"])
               if f else "no fit (needs 2+ sizes)")
        spread = f"{q['per_param_spread']:.2f}" if q["per_param_spread"] else "n/a"
        lines.append(f"- Quantize time roughly linear in params ({method}): "
                     f"{_mark(q['linear'])} (criterion: every size within 15 % of the fitted line, "
                     f"3+ sizes); "
                     f"s per B params {per_b}; max/min {spread}; {how}.")
    checks = [r["evaluate"] for r in rows if r["evaluate"]]
    ok = all(c["pass"] for c in checks) if checks else None
    worst = min((c["ratio"] for c in checks), default=None)
    lines.append(f"- Perplexity (evaluate stage) tokens/s >= 95 % of the bare loop: {_mark(ok)}"
                 + (f"; lowest ratio {worst:.3f}" if worst is not None else "") + ".")
    return lines


def reason(text: str) -> str:
    """The line of a failed child's output that says what went wrong."""
    lines = [x.strip() for x in text.splitlines() if x.strip()]
    return next((x for x in lines if x.startswith("error")), lines[-1] if lines else text)


def markdown(data: dict[str, Any]) -> str:
    s = data["settings"]
    out = [
        "# Scaling: random-weight Llama-shaped models, RTN, GPTQ, AWQ and SmoothQuant", "",
        f"hidden {s['arch']['hidden_size']}, intermediate {s['arch']['intermediate_size']}, "
        f"{s['arch']['num_attention_heads']} heads ({s['arch']['num_key_value_heads']} KV), "
        f"vocab {s['arch']['vocab_size']}, tied embeddings, bf16, {s['max_shard_size']} "
        "shards; calibration "
        f"{s['calibration']['num_samples']} x {s['calibration']['max_seq_length']} tokens; "
        f"perplexity {s['perplexity']['windows']} windows of {s['perplexity']['window']} "
        f"tokens, batch {s['perplexity']['batch_size']}; {s['cpus']} CPUs; started "
        f"{s['started']}. Peak RSS per stage: the manifest's stage_peak_rss_mb (VmHWM, reset "
        "when the stage starts). Whole run: the largest of the `quench run` child's ru_maxrss "
        "(os.wait4), its process tree's RSS sampled every 50 ms and the stage peaks; the "
        "runner's per-stage VmHWM reset makes ru_maxrss (and `/usr/bin/time -v`) cover only "
        "the last stage.", "",
        "## Targets", "", *targets(data), "",
        "## Whole run", "", *whole_run(data), "",
        "## Per stage (peak RSS, wall time)", "", *per_stage(data), "",
        "## `quench plan`'s prediction of each stage's peak", "", *predictions(data), "",
        *(["## Phases of a stage (peak RSS of each)", "", *phase_rows(data), ""]
          if phase_rows(data) else []),
        "## Perplexity speed vs a bare transformers loop", "", *speeds(data), "",
        "baseline_eval is compared with the bare loop on the source model, evaluate with the "
        "bare loop on that run's quantized checkpoint (loaded dense, as the stage loads it). "
        "Without a `tokens_per_second` metric the stage's rate is tokens / elapsed_s (tokenize, "
        "load and score), against the bare loop's tokenize + load + forward (after a warm-up "
        "forward: quench's process is warm by then).", "",
        "Bare loop (same windows and batches, CPU, its own process) and model builds:",
        "", *bare_rows(data), "",
    ]
    if data["failed"]:
        out += ["## Failed", ""] + [f"- {k}: {reason(v)}" for k, v in data["failed"].items()]
        out.append("")
    return "\n".join(out)
