"""A real pipeline run logged to a tracking server, and the checks that it all arrived."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from quench.runner.graph import node_names
from quench.tracking.tracker import flatten
from quench.tracking.ui import accuracy_drops

from ..conftest import DEFAULT_RECIPE, read_json, run_id_of, run_quench, small_run_args

EXPERIMENT = "quench-tinystories"
RUN_NAME = "tinystories-rtn-w4a16"


def run_against(uri: str, out: Path, *overrides: str) -> tuple[str, str]:
    """The default recipe, small, logged to `uri`; returns the parent run id and stdout."""
    began = time.perf_counter()
    result = run_quench("run", str(DEFAULT_RECIPE),
                        *small_run_args(out, max_windows=8, tracking_uri=uri), *overrides)
    assert result.returncode == 0, result.stderr[-3000:]
    print(f"\npipeline run logged to {uri.split('@')[-1]}: {time.perf_counter() - began:.1f} s")
    return run_id_of(result), result.stdout


def check_logged(client: MlflowClient, run_id: str, out: Path) -> None:
    """Parent and stage runs, metrics equal to report.json, report artifacts on the server."""
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags["quench.recipe"] == RUN_NAME
    report = read_json(out / RUN_NAME / "report.json")
    expected = {k: float(v) for k, v in flatten(report["metrics"]).items()}
    expected.update(accuracy_drops(report))  # lm-eval's, for the UI's columns
    assert run.data.metrics == pytest.approx(expected, rel=1e-12)
    children = client.search_runs([run.info.experiment_id],
                                  f"tags.mlflow.parentRunId = '{run_id}'")
    assert sorted(c.info.run_name for c in children) == sorted(
        n for n in node_names() if n != "track")
    assert all(c.info.status == "FINISHED" for c in children)
    assert run.info.artifact_uri.startswith("mlflow-artifacts:/")  # the server's store
    assert {"report.md", "report.json"} <= {a.path for a in client.list_artifacts(run_id)}
    fetched = client.download_artifacts(run_id, "report.json", str(out / "fetched"))
    assert json.loads(Path(fetched).read_text()) == report
