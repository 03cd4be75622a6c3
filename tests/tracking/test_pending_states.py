"""A pending upload never wedges tracking: each state a record can be in, replayed into a real
(SQLite) MLflow store. Artifacts gone: uploaded with what remains and marked. A record that
fails while the store answers: kept, its half-uploaded parent marked FAILED, the other records
and the next run's tracking unaffected. An unreadable record: named, blocks nothing.
`quench sync --drop` gives any of them up."""

from __future__ import annotations

import json
from pathlib import Path

from mlflow.tracking import MlflowClient

from quench.cli import main
from quench.recipe import load_recipe
from quench.tracking.mlflow_tracker import MlflowTracker
from quench.tracking.pending import new_record, pending_dir, run_record, write_record
from quench.tracking.upload import MISSING_TAG, UPLOAD_TAG

from ..conftest import DEFAULT_RECIPE

DEAD_PID = 2**22 + 12345  # beyond pid_max: the writer is gone


def _uri(out: Path) -> str:
    return f"sqlite:///{out}/mlflow.db"


def _record(out: Path, upload_id: str, artifact: Path, **child_changes) -> dict:
    """A finished run's record (parent + one stage run) whose writer has died."""
    record = new_record(upload_id, _uri(out), "quench-pending",
                        (out / "mlartifacts").as_uri(), {"timeout_s": 5, "retries": 0})
    record["pid"] = DEAD_PID
    parent = run_record(f"run-{upload_id[:4]}", {UPLOAD_TAG: upload_id}, {"a": 1}, {"m": 1.0})
    parent.update(status="FINISHED", end_ms=parent["start_ms"] + 10)
    child = run_record("quantize", {UPLOAD_TAG: f"{upload_id}/quantize"}, {}, {"size": 2.0})
    child.update(status="FINISHED", end_ms=child["start_ms"] + 5,
                 artifacts=[{"kind": "file", "path": str(artifact)}], **child_changes)
    record["parent"], record["children"] = parent, [child]
    write_record(out, record)
    return record


def _runs(out: Path) -> dict[str, object]:
    client = MlflowClient(_uri(out))
    exp = client.get_experiment_by_name("quench-pending")
    runs = client.search_runs([exp.experiment_id]) if exp else []
    return {r.data.tags[UPLOAD_TAG]: r for r in runs}


def _pending(out: Path) -> list[str]:
    return sorted(p.stem for p in pending_dir(out).glob("*.json"))


def test_a_record_whose_artifacts_are_gone_is_uploaded_with_what_remains(tmp_path, capsys):
    kept, gone = tmp_path / "kept.json", tmp_path / "deleted" / "manifest.json"
    kept.write_text("{}")
    _record(tmp_path, "a" * 32, gone)
    _record(tmp_path, "b" * 32, kept)
    assert main(["sync", str(tmp_path)]) == 0, capsys.readouterr().err
    runs = _runs(tmp_path)
    child = runs["a" * 32 + "/quantize"]
    assert child.data.tags[MISSING_TAG] == "manifest.json"
    assert child.info.status == "FINISHED" and child.data.metrics["size"] == 2.0
    assert runs["a" * 32].info.status == "FINISHED"
    assert MISSING_TAG not in runs["b" * 32 + "/quantize"].data.tags
    assert _pending(tmp_path) == []


def test_a_failing_record_blocks_neither_other_records_nor_the_next_runs_tracking(
        tmp_path, capsys):
    artifact = tmp_path / "manifest.json"
    artifact.write_text("{}")
    bad = _record(tmp_path, "c" * 32, artifact, metrics=[["size", "not a number", 1]])
    _record(tmp_path, "d" * 32, artifact)

    notices: list[str] = []
    recipe = load_recipe(DEFAULT_RECIPE, [f"output.dir={tmp_path}",
                                          f"tracking.tracking_uri={_uri(tmp_path)}"])
    tracker = MlflowTracker(recipe.tracking, tmp_path, notices.append)
    tracker.retry_pending()
    assert tracker.down is None, notices  # the store answers: the record is at fault
    assert any("pending run run-cccc" in n and "--drop cccccccc" in n for n in notices)
    assert any("uploaded 1 pending run(s)" in n for n in notices)
    assert _pending(tmp_path) == ["c" * 32]
    runs = _runs(tmp_path)
    assert runs["d" * 32].info.status == "FINISHED"

    assert main(["sync", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "run-cccc (cccccccc)" in err and "marked FAILED" in err
    assert _runs(tmp_path)["c" * 32].info.status == "FAILED"  # not left RUNNING

    assert main(["sync", str(tmp_path), "--drop", "cccc"]) == 0
    assert "dropped run-cccc (cccccccc): moved to" in capsys.readouterr().out
    assert _pending(tmp_path) == []
    dropped = pending_dir(tmp_path) / "dropped" / f"{'c' * 32}.json"
    assert json.loads(dropped.read_text())["upload_id"] == bad["upload_id"]
    assert main(["sync", str(tmp_path)]) == 0


def test_an_unreadable_record_is_named_and_blocks_nothing(tmp_path, capsys):
    artifact = tmp_path / "manifest.json"
    artifact.write_text("{}")
    _record(tmp_path, "e" * 32, artifact)
    (pending_dir(tmp_path) / ("f" * 32 + ".json")).write_text('{"version": 1, "upload')
    assert main(["sync", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"{'f' * 32}.json cannot be uploaded" in err and "--drop ffffffff" in err
    assert _runs(tmp_path)["e" * 32].info.status == "FINISHED"
    assert main(["sync", str(tmp_path), "--drop", "nothing-like-it"]) == 2
    assert "matches no pending run" in capsys.readouterr().err
    assert main(["sync", str(tmp_path), "--drop", "ffff"]) == 0
    assert main(["sync", str(tmp_path)]) == 0

