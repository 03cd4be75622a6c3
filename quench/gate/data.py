"""What the gate compares, fetched from MLflow: the report and the per-sample artifacts of a run.

Everything comes from the tracking store (not the local cache), so a CI machine can gate a
run logged elsewhere against a baseline logged by someone else.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from quench.engines import REFERENCE_ENGINE
from quench.errors import QuenchError
from quench.tracking.artifacts import download_artifact
from quench.tracking.lookup import child_runs

EVALUATE_NODE = "evaluate"
LM_EVAL_NODE = "lm_eval"


@dataclass
class RunData:
    """One run's paired data: per-window perplexity arrays and per-document lm-eval rows."""

    run_id: str
    name: str
    report: dict[str, Any]
    windows: dict[str, np.ndarray] | None = None
    samples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # task -> rows

    @property
    def protocol(self) -> dict[str, Any] | None:
        return self.report.get("perplexity_protocol")


def load_run(client: Any, run: Any) -> RunData:
    """Downloads report.json, per_window.npz and the hf engine's lm-eval samples of a run."""
    with tempfile.TemporaryDirectory(prefix="quench-gate-") as tmp:
        report = _json_artifact(client, run.info.run_id, "report.json", Path(tmp))
        data = RunData(run.info.run_id, run.info.run_name, report)
        children = child_runs(client, run)
        if EVALUATE_NODE in children:
            path = download_artifact(client, children[EVALUATE_NODE].info.run_id,
                                     "per_window.npz", Path(tmp))
            if path is not None:
                with np.load(path) as arrays:
                    data.windows = {k: arrays[k] for k in arrays.files}
        if LM_EVAL_NODE in children:
            folder = download_artifact(client, children[LM_EVAL_NODE].info.run_id,
                                       REFERENCE_ENGINE, Path(tmp))
            for path in sorted(folder.glob("samples_*.jsonl")) if folder else []:
                task = path.stem.removeprefix("samples_")
                data.samples[task] = [json.loads(x) for x in path.read_text().splitlines() if x]
    return data


def _json_artifact(client: Any, run_id: str, name: str, tmp: Path) -> dict[str, Any]:
    path = download_artifact(client, run_id, name, tmp)
    if path is None:
        raise QuenchError(f"run {run_id} has no {name} artifact: is it a quench pipeline run?")
    return json.loads(path.read_text())
