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
from quench.gate.errors import GateError
from quench.sources import file_sha256
from quench.tracking.artifacts import download_artifact
from quench.tracking.lookup import child_runs

EVALUATE_NODE = "evaluate"
LM_EVAL_NODE = "lm_eval"
REPORT_NODE = "report"
WINDOW_ARRAYS = ("nll_sum", "tokens")  # what every per_window.npz holds


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
    """Downloads report.json, per_window.npz and the hf engine's lm-eval samples of a run, each
    verified against the sha256 its stage recorded when it wrote it."""
    with tempfile.TemporaryDirectory(prefix="quench-gate-") as tmp:
        children = child_runs(client, run)
        report_path = download_artifact(client, run.info.run_id, "report.json", Path(tmp))
        if report_path is None:
            raise QuenchError(f"run {run.info.run_id} has no report.json artifact: is it a "
                              "quench pipeline run?")
        _verify(client, run, children.get(REPORT_NODE), {"report.json": report_path}, tmp)
        data = RunData(run.info.run_id, run.info.run_name, _json(report_path, run))
        if EVALUATE_NODE in children:
            path = download_artifact(client, children[EVALUATE_NODE].info.run_id,
                                     "per_window.npz", Path(tmp))
            if path is not None:
                _verify(client, run, children[EVALUATE_NODE], {"per_window.npz": path}, tmp)
                data.windows = read_windows(path, run)
        if LM_EVAL_NODE in children:
            folder = download_artifact(client, children[LM_EVAL_NODE].info.run_id,
                                       REFERENCE_ENGINE, Path(tmp))
            files = sorted(folder.glob("samples_*.jsonl")) if folder else []
            _verify(client, run, children[LM_EVAL_NODE],
                    {f"{REFERENCE_ENGINE}/{p.name}": p for p in files}, tmp)
            for path in files:
                task = path.stem.removeprefix("samples_")
                data.samples[task] = _jsonl(path, run)
    return data


def _verify(client: Any, run: Any, stage_run: Any | None, files: dict[str, Path],
            tmp: str) -> None:
    """Each downloaded file against the sha256 in its stage run's manifest.json."""
    if not files:
        return
    where = f"run {run.info.run_id} ({run.info.run_name})"
    manifest = download_artifact(client, stage_run.info.run_id, "manifest.json",
                                 Path(tmp)) if stage_run is not None else None
    if manifest is None:
        raise GateError(f"{where}: no stage manifest records the digest of "
                        f"{', '.join(files)}; it cannot be verified")
    recorded = json.loads(manifest.read_text()).get("files", {})
    for rel, path in files.items():
        want = (recorded.get(rel) or {}).get("sha256")
        if want is None:
            raise GateError(f"{where}: {rel} is not among the files its "
                            f"{stage_run.info.run_name} stage recorded; it cannot be verified")
        got = file_sha256(path)
        if got != want:
            raise GateError(f"{where}: {rel} is not the file its {stage_run.info.run_name} "
                            f"stage wrote (sha256 {got[:12]}..., recorded {want[:12]}...): "
                            "the artifact was changed after the run; re-run it")


def read_windows(path: Path, run: Any) -> dict[str, np.ndarray]:
    """per_window.npz's arrays, checked: finite, aligned, positive token counts."""
    where = f"run {run.info.run_id} ({run.info.run_name}): per_window.npz"
    try:
        with np.load(path, allow_pickle=False) as arrays:
            windows = {k: np.asarray(arrays[k]) for k in arrays.files}
    except Exception as exc:  # noqa: BLE001 - zip, pickle and format errors of a bad file
        raise GateError(f"{where} cannot be read ({type(exc).__name__}: {exc})") from None
    check_windows(windows, where)
    return windows


def check_windows(windows: dict[str, np.ndarray], where: str) -> None:
    """A GateError naming what is wrong with per-window arrays (never a traceback later)."""
    missing = [k for k in WINDOW_ARRAYS if k not in windows]
    if missing:
        raise GateError(f"{where} lacks {missing}")
    n = len(windows["tokens"]) if windows["tokens"].ndim == 1 else -1
    for name, values in windows.items():
        if values.ndim != 1 or len(values) != n or n == 0:
            raise GateError(f"{where}: {name} has shape {values.shape}, the windows are "
                            f"{windows['tokens'].shape}: misaligned or empty")
        if not np.issubdtype(values.dtype, np.number) or not np.isfinite(values).all():
            raise GateError(f"{where}: {name} holds non-finite or non-numeric values")
    if (windows["tokens"] <= 0).any():
        raise GateError(f"{where}: a window scored no tokens")


def _json(path: Path, run: Any) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:
        raise GateError(f"run {run.info.run_id}: report.json is not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise GateError(f"run {run.info.run_id}: report.json is not a JSON object")
    return data


def _jsonl(path: Path, run: Any) -> list[dict[str, Any]]:
    try:
        rows = [json.loads(x) for x in path.read_text().splitlines() if x]
    except ValueError as exc:
        raise GateError(f"run {run.info.run_id}: {path.name} is not JSON lines ({exc})") \
            from None
    if not all(isinstance(r, dict) for r in rows):
        raise GateError(f"run {run.info.run_id}: {path.name} holds a row that is not an object")
    return rows
