"""A real `mlflow server` on 127.0.0.1: the pipeline logs to it over HTTP (artifacts proxied to
the server's store), and `quench compare` / `quench promote` work against it."""

from __future__ import annotations

import json
import time

import pytest
from mlflow.tracking import MlflowClient

from quench.tracking.lookup import resolve_run

from ..conftest import read_json, run_quench
from .runs import EXPERIMENT, RUN_NAME, check_logged, run_against

pytestmark = pytest.mark.e2e


def test_pipeline_compare_and_promote_against_a_loopback_server(mirror, mlflow_server,
                                                                 tmp_path):
    server = mlflow_server(f"sqlite:///{tmp_path / 'server.db'}")
    out = tmp_path / "out"
    run_id = run_against(server.uri, out)
    client = MlflowClient(server.uri)
    check_logged(client, run_id, out)
    stored = list(server.artifacts.rglob("report.json"))
    assert stored and json.loads(stored[0].read_text()) == read_json(out / RUN_NAME / "report.json")

    began = time.perf_counter()
    result = run_quench("compare", "--tracking-uri", server.uri, "--experiment", EXPERIMENT,
                        "--out", str(tmp_path / "compare"))
    assert result.returncode == 0, result.stderr[-3000:]
    print(f"compare against the server: {time.perf_counter() - began:.1f} s")
    data = json.loads((tmp_path / "compare" / "compare.json").read_text())
    assert [r["run_id"] for r in data["runs"]] == [run_id]
    assert data["runs"][0]["metrics"]["candidate.perplexity"] == pytest.approx(
        client.get_run(run_id).data.metrics["candidate.perplexity"])
    assert (tmp_path / "compare" / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"{server.uri}/#/compare-runs?runs=" in data["ui_link"]
    compare_id = result.stdout.strip().rsplit(" ", 1)[-1]
    assert client.get_run(compare_id).data.tags["quench.kind"] == "compare"
    assert {a.path for a in client.list_artifacts(compare_id)} == {
        "compare.md", "compare.json", "pareto.png"}

    result = run_quench("promote", run_id, "--model", "tinystories", "--alias", "candidate",
                        "--tracking-uri", server.uri)
    assert result.returncode == 0, result.stderr[-3000:]
    version = client.get_model_version_by_alias("tinystories", "candidate")
    assert version.run_id == run_id and version.source == client.get_run(run_id).info.artifact_uri
    assert resolve_run(client, "tinystories@candidate").info.run_id == run_id
