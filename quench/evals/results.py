"""lm-eval's output -> quench's: per-task metrics with stderr, and per-document sample rows.

Per-sample file format (`<engine>/samples_<task>.jsonl`), one JSON object per document and
filter, in document order:

    {"doc_id": 0, "filter": "none", "doc_hash": "<sha256>", "target_hash": "<sha256>",
     "acc": 1.0, "acc_norm": 0.0}

Each metric holds what lm-eval's process_results gave that document: 0/1 for acc/acc_norm,
the document's log-likelihood for lambada's `perplexity`, and a [log-likelihood, words or
bytes] pair for wikitext's word_perplexity/byte_perplexity/bits_per_byte. Two runs of the
same task, limit and data are paired by doc_id; equal doc_hash confirms the same document.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

SKIPPED_KEYS = {"alias", "name", "sample_len", " "}


def metric_name(key: str) -> tuple[str, bool] | None:
    """'acc,none' -> ('acc', False); 'acc_stderr,none' -> ('acc', True); others -> None."""
    if "," not in key:
        return None
    metric, _, filt = key.partition(",")
    stderr = metric.endswith("_stderr")
    metric = metric.removesuffix("_stderr")
    return (metric if filt == "none" else f"{metric}_{filt}"), stderr


def task_metrics(results: dict[str, Any]) -> dict[str, dict[str, dict[str, float | None]]]:
    """{task: {metric: {"value": v, "stderr": s or None}}} from simple_evaluate()['results']."""
    out: dict[str, dict[str, dict[str, float | None]]] = {}
    for task, values in results.items():
        metrics: dict[str, dict[str, float | None]] = {}
        for key, value in values.items():
            parsed = metric_name(key) if key not in SKIPPED_KEYS else None
            if parsed is None:
                continue
            name, is_stderr = parsed
            entry = metrics.setdefault(name, {"value": None, "stderr": None})
            entry["stderr" if is_stderr else "value"] = _number(value)
        out[task] = {k: v for k, v in metrics.items() if v["value"] is not None}
    return out


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return None if math.isnan(value) or math.isinf(value) else float(value)


def sample_rows(samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The paired-statistics view of lm-eval's logged samples (see the module docstring)."""
    rows = []
    for s in sorted(samples, key=lambda s: (s["doc_id"], s["filter"])):
        row = {"doc_id": s["doc_id"], "filter": s["filter"], "doc_hash": s.get("doc_hash"),
               "target_hash": s.get("target_hash")}
        for metric in s["metrics"]:
            value = s[metric]
            row[metric] = list(value) if isinstance(value, tuple) else value
        rows.append(row)
    return rows


def write_samples(path: Path, samples: list[dict[str, Any]]) -> int:
    rows = sample_rows(samples)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, default=str) + "\n" for r in rows))
    return len(rows)


def read_samples(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def summary(result: dict[str, Any]) -> dict[str, Any]:
    """The JSON-safe part of simple_evaluate's result worth keeping (no samples, no env dump)."""
    keys = ("results", "groups", "group_subtasks", "configs", "versions", "n-shot",
            "higher_is_better", "n-samples", "config", "lm_eval_version")
    return json.loads(json.dumps({k: result[k] for k in keys if k in result}, default=str))
