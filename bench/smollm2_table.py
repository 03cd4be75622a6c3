"""The Markdown of bench/smollm2.py: quality with intervals, the gate, cost, served throughput."""

from __future__ import annotations

from typing import Any


def _ci(check: dict[str, Any] | None, scale: float = 1.0, digits: int = 3) -> str:
    """`estimate [low, high]` of a gate check, or '' when the gate did not measure it."""
    if not check:
        return ""
    est, low, high = (check[k] * scale for k in ("estimate", "low", "high"))
    return f"{est:.{digits}g} [{low:.{digits}g}, {high:.{digits}g}]"


def _checks(row: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["metric"]: c for c in row.get("gate", {}).get("checks", [])}


def _accuracy(row: dict[str, Any], task: str) -> str:
    """Candidate accuracy ± stderr, and its drop's interval; '≈' when 0 is inside it."""
    acc = row["accuracy"].get(task)
    if not acc:
        return ""
    text = f"{acc['candidate']:.3f} ± {acc['candidate_stderr']:.3f}"
    drop = next((c for m, c in _checks(row).items() if m.startswith(f"{task} ")), None)
    if drop is None:
        return text
    mark = " ≈" if drop["low"] <= 0 <= drop["high"] else ""
    return f"{text} (drop {_ci(drop, digits=2)}{mark})"


def _recovery(row: dict[str, Any]) -> str:
    """Mean over tasks of candidate / baseline accuracy (Red Hat's 'recovery')."""
    ratios = [a["candidate"] / a["baseline"] for a in row["accuracy"].values() if a["baseline"]]
    return f"{100 * sum(ratios) / len(ratios):.1f} %" if ratios else ""


def quality(rows: list[dict[str, Any]], tasks: list[str]) -> list[str]:
    base = rows[0]
    lines = [
        "| variant | WikiText-2 ppl | ppl change % [95% CI] | KL [95% CI] | top-1 agree | "
        + " | ".join(tasks) + " | recovery | gate | size MB | quantize s | peak RSS GB |",
        "|" + "---|" * (10 + len(tasks)),
    ]
    for r in rows:
        checks = _checks(r)
        ppl_check = next((c for m, c in checks.items() if m.startswith("perplexity")), None)
        kl_check = next((c for m, c in checks.items() if m.lower().startswith("kl")), None)
        is_base = r is base
        lines.append(
            f"| {r['variant']} | {r['perplexity']:.2f} "
            f"| {'-' if is_base else _ci(ppl_check, digits=3)} "
            f"| {'-' if is_base else _ci(kl_check, digits=3)} "
            f"| {r['top1_agreement']:.3f} | "
            + " | ".join(_base_acc(r, t) if is_base else _accuracy(r, t) for t in tasks)
            + f" | {'-' if is_base else _recovery(r)} "
            f"| {'-' if is_base else r['gate']['verdict']} "
            f"| {r['size_bytes'] / 1e6:.0f} | {r['quantize_wall_seconds']:.1f} "
            f"| {r['peak_rss_mb'] / 1024:.2f} |")
    return lines


def _base_acc(row: dict[str, Any], task: str) -> str:
    acc = row["accuracy"].get(task)
    return f"{acc['baseline']:.3f} ± {acc['baseline_stderr']:.3f}" if acc else ""


def served(rows: list[dict[str, Any]]) -> list[str]:
    """Output tok/s (ratio to the baseline), TTFT and TPOT p50/p99 per concurrency."""
    runs = [r for r in rows if r["throughput"].get("rows")]
    if not runs:
        return ["Served throughput: not measured (BENCH_SERVE=0, or no variant served)."]
    base = {t["concurrency"]: t["output_tokens_per_s"] for t in runs[0]["throughput"]["rows"]}
    lines = ["| variant | concurrency | out tok/s | ratio to baseline | TTFT p50 / p99 ms | "
             "TPOT p50 / p99 ms | server peak PSS MB |", "|---|---|---|---|---|---|---|"]
    for r in runs:
        for t in r["throughput"]["rows"]:
            ratio = t["output_tokens_per_s"] / base[t["concurrency"]] if base.get(
                t["concurrency"]) else float("nan")
            lines.append(
                f"| {r['variant']} | {t['concurrency']} | {t['output_tokens_per_s']:.1f} "
                f"| {ratio:.2f} | {t['ttft_ms_p50']:.0f} / {t['ttft_ms_p99']:.0f} "
                f"| {t['tpot_ms_p50']:.1f} / {t.get('tpot_ms_p99', float('nan')):.1f} "
                f"| {t['peak_pss_mb']:.0f} |")
    lines += ["", "| variant | predicted server memory MB | measured peak MB | start-up s |",
              "|---|---|---|---|"]
    for r in runs:
        mem = r["throughput"]["memory"]
        lines.append(f"| {r['variant']} | {mem['predicted_mb']:.0f} | "
                     f"{mem['measured_peak_mb']:.0f} | {r['throughput']['startup_s']:.0f} |")
    return lines


def markdown(rows: list[dict[str, Any]], settings: dict[str, Any],
             failed: dict[str, str]) -> str:
    s = settings
    lines = [
        "# SmolLM2-135M-Instruct: every method against the baseline", "",
        f"WikiText-2 test, first {s['windows']} windows of {s['window_tokens']} tokens; lm-eval "
        f"{', '.join(s['tasks'])}, first {s['lm_eval_limit']} documents each, "
        f"{s['num_fewshot']}-shot, on `hf`; calibration {s['calibration']}. Intervals are the "
        f"gate's 95 % intervals (block bootstrap over windows, paired bootstrap over documents, "
        f"seed {s['gate_seed']}); accuracy is ± its stderr, then the drop from the baseline "
        "with its interval. `≈`: the drop's interval contains 0, so this variant is not "
        "distinguishable from the baseline on that task at this sample size; likewise two "
        "variants whose intervals overlap are not distinguishable from each other.", "",
        f"Caveat: {s['caveat']}", "",
        *quality(rows, s["tasks"]), "",
        "## Served on vLLM (CPU build)", "",
        *served(rows), "",
    ]
    if failed:
        lines += ["## Failed", "", *[f"- {k}: {v}" for k, v in failed.items()], ""]
    notes = sorted({n for r in rows for n in r["notes"]
                    if not n.startswith(("llmcompressor: error", "llmcompressor: time"))})
    if notes:
        lines += ["## Notes", "", *[f"- {n}" for n in notes], ""]
    return "\n".join(lines)
