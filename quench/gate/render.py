"""The gate's verdict as a Markdown table: for CI logs, files and $GITHUB_STEP_SUMMARY."""

from __future__ import annotations

from quench.gate.checks import Check
from quench.gate.verdict import GateResult


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


def _interval(check: Check, level: float) -> str:
    if check.low is None or check.high is None or check.low == check.high:
        return "n/a"
    return f"[{_num(check.low)}, {_num(check.high)}] ({level:.0%})"


def render(result: GateResult) -> str:
    """Markdown: the overall verdict, the runs, one row per metric, what would decide the rest."""
    level = 1 - result.spec.alpha
    cand, base = result.candidate, result.baseline
    lines = [
        f"## quench gate: {result.verdict}", "",
        f"Candidate `{cand.name}` ({cand.run_id}) vs baseline `{base.name}` ({base.run_id}).", "",
        "| metric | estimate | interval | threshold | verdict | n | note |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for c in result.checks:
        bound = "<=" if c.bound == "max" else ">="
        lines.append(f"| {c.metric} | {_num(c.estimate)} | {_interval(c, level)} | "
                     f"{bound} {_num(c.threshold)} | **{c.verdict}** | {c.n} {c.units} | "
                     f"{c.note} |")
    undecided = [c for c in result.checks if c.verdict == "INCONCLUSIVE"]
    if undecided or result.notes:
        lines.append("")
    for c in undecided:
        need = (f"about {c.needed} {c.units} (now {c.n}) would decide it, if the estimate "
                "held" if c.needed else "the estimate sits on the threshold: more data will "
                "not decide it")
        lines.append(f"- {c.metric} is inconclusive: {need}.")
    lines += [f"- {note}." for note in result.notes]
    lines += ["", "A metric fails only when its whole interval lies beyond the threshold, passes "
              "when it lies within, and is inconclusive otherwise."]
    return "\n".join(lines) + "\n"
