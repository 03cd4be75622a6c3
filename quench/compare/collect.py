"""One row per compared run, read from MLflow: tags, parent metrics and the report.json artifact.

The report is read generically: sections that a run does not have (lm-eval, throughput) stay
empty, and nothing is filled in that was not measured.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quench.engines import REFERENCE_ENGINE
from quench.tracking.artifacts import download_artifact

PRIMARY_METRICS = ("acc", "acc_norm", "exact_match", "f1")  # the column a task gets, in order


@dataclass
class Row:
    """A compared run: what MLflow holds about it, and its report.json when it could be read."""

    run_id: str
    name: str
    experiment_id: str
    tags: dict[str, str]
    metrics: dict[str, float]
    report: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def tag(self, key: str) -> str | None:
        return self.tags.get(key)

    def metric(self, key: str) -> float | None:
        return self.metrics.get(key)

    @property
    def method(self) -> str | None:
        return self.tag("quench.method")

    def accuracies(self) -> dict[tuple[str, str, str], tuple[float, float | None]]:
        """{(task, metric, engine): (value, stderr)} from the report's lm-eval rows."""
        section = self.report.get("lm_eval") or {}
        found = {}
        for r in section.get("rows") or []:
            if isinstance(r, dict) and isinstance(r.get("candidate"), int | float):
                found[(r["task"], r["metric"], r.get("engine", REFERENCE_ENGINE))] = (
                    float(r["candidate"]), _number(r.get("candidate_stderr")))
        return found

    def throughput(self) -> dict[int, float]:
        """{concurrency: output tokens/s} from the report's throughput rows."""
        return throughput_by_concurrency(self.report)

    def license(self) -> str:
        """license (commercial use: ...; verdict ...) from the run's tags."""
        name = self.tag("license")
        if name is None:
            return ""
        return (f"{name} (commercial: {self.tag('commercial_ok') or 'unknown'}, "
                f"{self.tag('license.verdict') or 'no verdict'})")


def throughput_by_concurrency(report: dict[str, Any]) -> dict[int, float]:
    """{concurrency: output tokens/s} from a report.json's throughput rows (measured only)."""
    section = report.get("throughput") or {}
    rows = section.get("rows") if isinstance(section, dict) else section
    found = {}
    for r in rows or []:
        value = _number(r.get("output_tokens_per_s")) if isinstance(r, dict) else None
        if value and "concurrency" in r:
            found[int(r["concurrency"])] = value
    return found


def load_rows(client: Any, runs: list[Any]) -> list[Row]:
    """Rows in the order given; one report.json download per run."""
    with tempfile.TemporaryDirectory(prefix="quench-compare-") as tmp:
        return [_row(client, run, Path(tmp)) for run in runs]


def _row(client: Any, run: Any, tmp: Path) -> Row:
    row = Row(run.info.run_id, run.info.run_name or run.info.run_id, run.info.experiment_id,
              dict(run.data.tags), dict(run.data.metrics))
    report = _download_json(client, run.info.run_id, "report.json", tmp)
    if report is None:
        row.notes.append("no report.json artifact: lm-eval, throughput and license details "
                         "are unavailable")
    else:
        row.report = report
    return row


def _download_json(client: Any, run_id: str, name: str, tmp: Path) -> dict[str, Any] | None:
    path = download_artifact(client, run_id, name, tmp)
    try:
        return None if path is None else json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def task_columns(rows: list[Row]) -> list[tuple[str, str, str]]:
    """(task, metric, engine) per task for the main table: the reference engine's primary
    metric (acc, else acc_norm, ...; else the first one reported)."""
    keys = sorted({k for row in rows for k in row.accuracies()})
    columns = []
    for task in sorted({k[0] for k in keys}):
        mine = [k for k in keys if k[0] == task]
        engines = [k for k in mine if k[2] == REFERENCE_ENGINE] or mine
        ranked = sorted(engines, key=lambda k: (
            PRIMARY_METRICS.index(k[1]) if k[1] in PRIMARY_METRICS else len(PRIMARY_METRICS)))
        columns.append(ranked[0])
    return columns


def throughput_reference(rows: list[Row]) -> Row | None:
    """The row throughput ratios are taken against: the first unquantized (method none) run
    that measured throughput; without one, ratios stay empty."""
    for row in rows:
        if row.method == "none" and row.throughput():
            return row
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)
