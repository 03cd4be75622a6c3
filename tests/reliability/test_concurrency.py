"""Processes sharing one output folder: they take turns per cache entry and never corrupt it."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from quench.runner.cache_cli import entries

from ..conftest import DEFAULT_RECIPE, REPO, read_json, run_id_of, small_run_args

NAME = "tinystories-rtn-w4a16"
EXPERIMENT = "quench-tinystories"
STAGE_LINE = re.compile(r"^\s+(ran|cached|skipped)\s+(\S+)\s", re.MULTILINE)

# Each process imports MLflow, then all call begin() at the same instant (when the file `go`
# appears) on one new database.
BEGIN_AT = """
import sys, time
from pathlib import Path
from mlflow.tracking import MlflowClient  # imported before the start line
from quench.recipe import load_recipe
from quench.tracking.mlflow_tracker import MlflowTracker
out = Path(sys.argv[2])
recipe = load_recipe(sys.argv[1], [f"output.dir={out}",
                                   f"tracking.tracking_uri=sqlite:///{out}/mlflow.db"])
tracker = MlflowTracker(recipe.tracking, out)
print("ready", flush=True)
go = Path(sys.argv[3])
while not go.exists():
    time.sleep(0.001)
tracker.begin(recipe)
print(tracker.parent_id)
"""


def test_two_processes_creating_one_mlflow_store_at_once_both_succeed(tmp_path):
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", BEGIN_AT, str(DEFAULT_RECIPE), str(tmp_path),
                               str(go)], cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for proc in procs:
        assert proc.stdout.readline().strip() == "ready", proc.communicate()[1][-3000:]
    go.touch()
    results = [p.communicate(timeout=120) for p in procs]
    for proc, (_, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err[-3000:]  # not "table _alembic_tmp_... already exists"
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.get_experiment_by_name(EXPERIMENT)
    assert _experiments(client) == [EXPERIMENT]
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.info.run_id for r in runs) == sorted(out.strip() for out, _ in results)


def test_two_runs_of_one_recipe_on_one_folder_both_finish(mirror, tmp_path):
    cmd = [sys.executable, "-m", "quench", "run", str(DEFAULT_RECIPE), *small_run_args(tmp_path)]
    procs = [subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    results = [p.communicate(timeout=600) for p in procs]
    for proc, (_, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err[-3000:]
    # One process ran the pipeline; the other waited for it, then found every stage cached.
    # (The one that ran may have waited a moment too: both probe the run's lock at start.)
    ran = [[node for status, node in STAGE_LINE.findall(err) if status == "ran"]
           for _, err in results]
    waited = [i for i, (_, err) in enumerate(results) if "; waiting for it" in err]
    idle = [i for i, nodes in enumerate(ran) if nodes == []]
    assert len(idle) == 1 and idle[0] in waited, (ran, waited, results[idle[0] if idle else 0])
    assert set(ran[1 - idle[0]]) >= {"resolve", "quantize", "baseline_eval", "evaluate"}
    # One set of cache entries, exactly the ones run.json names, no temporaries left.
    nodes = read_json(tmp_path / NAME / "run.json")["nodes"]
    cache = tmp_path / "cache"
    assert {(e.stage, e.key) for e in entries(cache)} == {(n["stage"], n["key"])
                                                          for n in nodes.values()}
    assert not list(cache.glob("*/.tmp-*")) and not list((tmp_path / NAME).glob(".model.*"))
    # One MLflow experiment and one parent run, which both processes report.
    run_ids = {run_id_of(subprocess.CompletedProcess(cmd, 0, out, "")) for out, _ in results}
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    assert _experiments(client) == [EXPERIMENT]
    parents = client.search_runs([client.get_experiment_by_name(EXPERIMENT).experiment_id],
                                 "tags.`quench.recipe` = 'tinystories-rtn-w4a16'")
    assert [p.info.run_id for p in parents] == list(run_ids)
    assert parents[0].info.status == "FINISHED"
    quantized = Path(nodes["quantize"]["dir"]) / "model" / "model.safetensors"
    published = tmp_path / NAME / "model" / "model.safetensors"
    assert _sha256(published) == _sha256(quantized)


def _experiments(client: MlflowClient) -> list[str]:
    """The experiments quench made (MLflow's own "Default" one aside)."""
    return [e.name for e in client.search_experiments() if e.name != "Default"]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


pytestmark = pytest.mark.e2e
