"""kill -9 at a stage boundary, then resume: the same results as an uninterrupted run.

(tests/test_e2e.py kills a run in the middle of quantize and resumes it; this one kills it the
moment quantize's entry is complete, before the next stage has written anything.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from quench.contract.manifest import Manifest
from quench.runner.verify import entry_damage

from ..conftest import DEFAULT_RECIPE, REPO, read_json, run_quench, small_run_args
from .test_cache_integrity import NAME, results, warm_output

pytestmark = pytest.mark.e2e


def _kill_when(out: Path, ready: Callable[[], bool], what: str) -> None:
    """Starts a run and kills it (SIGKILL) as soon as `ready()` holds."""
    cmd = [sys.executable, "-m", "quench", "run", str(DEFAULT_RECIPE), *small_run_args(out)]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not ready():
        assert proc.poll() is None, f"the run ended before {what}"
        assert time.monotonic() < deadline, f"no {what} in 300 s"
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def _finished(folder: Path) -> list[Path]:
    """Finished entries (a temporary folder holds its manifest a moment before its rename)."""
    return sorted(p.parent for p in folder.glob("*/manifest.json")
                  if not p.parent.name.startswith("."))


def test_kill_at_a_stage_boundary_then_resume_gives_identical_results(
        mirror, tmp_path_factory, tmp_path):
    reference = results(warm_output(tmp_path_factory))
    quantize, evaluate = tmp_path / "cache" / "quantize", tmp_path / "cache" / "evaluate"

    _kill_when(tmp_path, lambda: bool(_finished(quantize)), "finished quantize entry")
    [entry] = _finished(quantize)  # complete and intact: the next run reuses it
    manifest = Manifest.read(entry)
    assert manifest is not None and entry_damage(manifest, full=True) is None
    assert _finished(evaluate) == []

    resumed = run_quench("run", str(DEFAULT_RECIPE), *small_run_args(tmp_path))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    nodes = read_json(tmp_path / NAME / "run.json")["nodes"]
    assert (nodes["quantize"]["status"], nodes["baseline_eval"]["status"]) == ("cached", "ran")
    assert not list((tmp_path / "cache").glob("*/.tmp-*"))
    assert results(tmp_path) == reference  # byte-identical metrics (time and memory aside)
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("quench-tinystories").experiment_id],
                              f"tags.`quench.recipe` = '{NAME}'")
    assert sorted(r.info.status for r in runs) == ["FINISHED", "KILLED"]
