"""The few words a stage's console line ends with: its skip reason or its headline metric."""

from __future__ import annotations

import re
from collections.abc import Callable

from pipeline.contract.manifest import Manifest

MAX_REASON = 110  # a skip reason longer than this is cut (the report has it whole)
LM_EVAL_METRIC = re.compile(r"lm_eval\.(?P<task>[^.]+)\.(?P<metric>[^.]+)$")  # hf rows only
THROUGHPUT_METRIC = re.compile(r"c(?P<level>\d+)_output_tokens_per_s$")


def headline(stage: str, manifest: Manifest) -> str:
    """A short summary of `manifest` for the console; '' when there is nothing worth a glance."""
    if manifest.skipped:
        reason = manifest.status.partition(":")[2].strip()
        return reason if len(reason) <= MAX_REASON else reason[: MAX_REASON - 1] + "…"
    render = _BY_STAGE.get(stage)
    return render(manifest) if render else ""


def size(n: float) -> str:
    """Bytes in the largest unit that keeps the number below 1000 (950 B, 1.2 MB, 3.4 GB)."""
    units, i = ("B", "kB", "MB", "GB", "TB"), 0
    while n >= 1000 and i < len(units) - 1:
        n, i = n / 1000, i + 1
    return f"{n:.0f} B" if i == 0 else f"{n:.1f} {units[i]}"


def _resolve(m: Manifest) -> str:
    origin = m.outputs.get("origin")
    return f"from {origin}" if origin else ""


def _license(m: Manifest) -> str:
    verdict = m.outputs.get("verdict") or {}
    names = ", ".join(verdict.get("licenses") or []) or "unknown license"
    return f"{names}: {verdict.get('status', '?')}"


def _calibrate(m: Manifest) -> str:
    x = m.metrics
    if "calibration_samples" not in x:
        return ""
    return f"{x['calibration_samples']:.0f} samples, {x.get('calibration_tokens', 0):,.0f} tokens"


def _quantize(m: Manifest) -> str:
    x, parts = m.metrics, []
    if "size_bytes" in x:
        parts.append(f"size {size(x['size_bytes'])}")
    if "quantize_wall_seconds" in x:
        parts.append(f"quantized in {x['quantize_wall_seconds']:.1f}s")
    return ", ".join(parts)


def _export(m: Manifest) -> str:
    x = m.metrics
    fmt = m.outputs.get("format")
    sized = f"{size(x['checkpoint_bytes'])}" if "checkpoint_bytes" in x else ""
    return " ".join(p for p in (fmt, sized) if p)


def _evaluate(m: Manifest) -> str:
    x = m.metrics
    if "perplexity" not in x:
        return ""
    text = f"perplexity {x['perplexity']:.4g}"
    if "kl_divergence" in x:
        text += f", KL {x['kl_divergence']:.3g}"
    if "top1_agreement" in x:
        text += f", top-1 {x['top1_agreement']:.1%}"
    return text


def _lm_eval(m: Manifest) -> str:
    """The first task's accuracy (acc, else its first metric)."""
    found: dict[str, dict[str, float]] = {}
    for key, value in m.metrics.items():
        match = LM_EVAL_METRIC.match(key)
        if match and not match["metric"].endswith(("_stderr", "_minus_hf", "seconds")):
            found.setdefault(match["task"], {})[match["metric"]] = value
    if not found:
        return ""
    task, metrics = next(iter(found.items()))
    metric = "acc" if "acc" in metrics else next(iter(metrics))
    others = len(found) - 1
    more = f" (+{others} more task{'s' if others > 1 else ''})" if others else ""
    return f"{task} {metric} {metrics[metric]:.4g}{more}"


def _throughput(m: Manifest) -> str:
    for key, value in m.metrics.items():
        match = THROUGHPUT_METRIC.match(key)
        if match:
            return f"{value:.1f} output tok/s at concurrency {match['level']}"
    return ""


_BY_STAGE: dict[str, Callable[[Manifest], str]] = {
    "resolve": _resolve, "license": _license, "calibrate": _calibrate, "quantize": _quantize,
    "export": _export, "evaluate": _evaluate, "lm_eval": _lm_eval, "throughput": _throughput,
}
