"""The tracker against a store that is down, without a model: bounded time, no exception, a
pending record that says everything; `quench sync` with nothing to do or a dead server."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import yaml

from quench.cli import main
from quench.recipe import load_recipe
from quench.runner.cli import tracking_line
from quench.tracking.mlflow_tracker import MlflowTracker
from quench.tracking.pending import pending_dir
from quench.tracking.sync import finalized
from quench.tracking.upload import http_budget

from ..conftest import DEFAULT_RECIPE
from .servers import free_port


@pytest.mark.parametrize(("timeout_s", "retries"), [(15, 2), (5, 1), (2, 0), (30, 4), (1, 3)])
def test_http_budget_keeps_a_call_within_timeout(timeout_s, retries):
    env = http_budget(timeout_s, retries)
    tries, factor = retries + 1, int(env["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"])
    sleeps = sum(factor * 2**n for n in range(1, retries))  # urllib3: 0, 2f, 4f, ...
    worst = tries * int(env["MLFLOW_HTTP_REQUEST_TIMEOUT"]) + sleeps
    assert worst <= max(timeout_s, tries)  # a request gets at least 1 s
    assert env["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == str(retries)
    assert env["MLFLOW_HTTP_REQUEST_BACKOFF_JITTER"] == "0"


def down_tracker(out: Path, notices: list[str]) -> tuple[MlflowTracker, object]:
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    recipe = load_recipe(DEFAULT_RECIPE, [f"output.dir={out}", f"tracking.tracking_uri={uri}",
                                          "tracking.timeout_s=3", "tracking.retries=1"])
    return MlflowTracker(recipe.tracking, out, notices.append), recipe


def test_a_down_server_costs_one_bounded_call_and_keeps_the_run(tmp_path):
    notices: list[str] = []
    tracker, recipe = down_tracker(tmp_path, notices)
    began = time.perf_counter()
    tracker.begin(recipe)
    tracker.fail(KeyboardInterrupt())
    assert time.perf_counter() - began < 10  # mlflow's own defaults retry for ~4 minutes
    assert len(notices) == 1 and "unavailable ([Errno 111] Connection refused)" in notices[0]
    assert f"quench sync {tmp_path}" in notices[0]
    [path] = pending_dir(tmp_path).glob("*.json")
    record = json.loads(path.read_text())
    assert record["tracking_uri"] == tracker.uri and record["upload_id"] == tracker.upload_id
    assert record["parent"]["status"] == "KILLED"
    assert record["parent"]["tags"]["quench.recipe"] == recipe.name
    assert record["parent"]["params"]["quantization.method"] == recipe.quantization.method


def test_a_run_whose_process_died_is_uploaded_as_killed(tmp_path):
    tracker, recipe = down_tracker(tmp_path, [])
    tracker.begin(recipe)
    [path] = pending_dir(tmp_path).glob("*.json")
    record = json.loads(path.read_text())
    assert record["parent"]["status"] == "RUNNING"
    record["pid"] = os.getppid()  # a live process on this host: its run is still going
    assert finalized(record)["parent"]["status"] == "RUNNING"
    record["pid"] = 2**22 + 12345  # beyond pid_max: no such process
    assert finalized(record)["parent"]["status"] == "KILLED"


def test_sync_with_nothing_pending_and_against_a_down_server(tmp_path, capsys):
    assert main(["sync", str(tmp_path)]) == 0
    assert "nothing to upload: no pending runs in" in capsys.readouterr().out
    tracker, recipe = down_tracker(tmp_path, [])
    tracker.begin(recipe)
    tracker.fail(RuntimeError("boom"))
    began = time.perf_counter()
    assert main(["sync", str(tmp_path)]) == 2
    assert time.perf_counter() - began < 10
    err = capsys.readouterr().err
    assert "error: 1 run(s) not uploaded, still pending in" in err
    assert "Connection refused" in err
    assert len(list(pending_dir(tmp_path).glob("*.json"))) == 1
    assert main(["sync", str(tmp_path / "nope")]) == 2
    assert "neither a recipe file nor an output folder" in capsys.readouterr().err


def test_sync_of_a_recipe_uses_its_output_folder(tmp_path, capsys):
    recipe = yaml.safe_load(DEFAULT_RECIPE.read_text())
    recipe["extends"] = str(DEFAULT_RECIPE.parent / recipe["extends"])
    recipe["output"] = {**recipe.get("output", {}), "dir": str(tmp_path / "out")}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    (tmp_path / "out").mkdir()
    assert main(["sync", str(path)]) == 0
    assert f"no pending runs in {tmp_path / 'out'}" in capsys.readouterr().out


def test_a_record_that_cannot_be_saved_is_never_announced_as_kept(tmp_path):
    """A full (here: blocked) disk and a down store: the console must not promise an upload."""
    (tmp_path / ".quench").mkdir()
    (tmp_path / ".quench" / "pending").write_text("a file where the folder goes")
    notices: list[str] = []
    tracker, recipe = down_tracker(tmp_path, notices)
    tracker.begin(recipe)
    tracking = tracker._close(tracker.record["parent"], "FAILED", {})
    assert "could not be saved either" in notices[0] and "not logged" in notices[0]
    assert "quench sync" not in notices[0]
    line = tracking_line(tracking)
    assert line is not None and line.endswith("this run is not logged")
