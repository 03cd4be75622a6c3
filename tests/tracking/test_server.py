"""A real `mlflow server` on 127.0.0.1: the pipeline logs to it over HTTP (artifacts proxied to
the server's store), `quench compare` / `quench promote` work against it, and its UI, opened
in headless Chromium by the link `quench run` prints, shows quench's runs table."""

from __future__ import annotations

import importlib.util
import json
import time

import pytest
from mlflow.tracking import MlflowClient

from quench.tracking.lookup import resolve_run
from quench.tracking.ui import DROP, HEADLINE, VIEW_TAG, runs_page

from ..conftest import REPO, read_json, run_quench
from .runs import EXPERIMENT, RUN_NAME, check_logged, run_against
from .servers import start_mlflow_server

pytestmark = pytest.mark.e2e
# lm-eval on one task, so the parent run has an accuracy drop for the UI's columns
LM_EVAL = "evaluation.lm_eval={tasks: [piqa], limit: 20}"


@pytest.fixture(scope="module")
def served(mirror, tmp_path_factory):
    """One pipeline run logged to a loopback server: (server, output folder, run, stdout)."""
    folder = tmp_path_factory.mktemp("server")
    server = start_mlflow_server(f"sqlite:///{folder / 'server.db'}", folder)
    try:
        out = folder / "out"
        run_id, stdout = run_against(server.uri, out, LM_EVAL)
        yield server, out, run_id, stdout
    finally:
        assert not server.stop(), "processes left behind by mlflow server"


def test_pipeline_compare_and_promote_against_a_loopback_server(served, tmp_path):
    server, out, run_id, _ = served
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


def _ui_check():
    spec = importlib.util.spec_from_file_location("ui_check", REPO / "scripts" / "ui_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_printed_link_opens_the_runs_table_with_quench_columns(served, tmp_path):
    ui = _ui_check()
    if not ui.CHROMIUM.is_file():
        pytest.skip(f"{ui.CHROMIUM} not found: install Debian's chromium package (.ci/run does)")
    pytest.importorskip("playwright", reason="playwright missing: pip install -e '.[dev]'")
    server, _, run_id, stdout = served
    client = MlflowClient(server.uri)
    run = client.get_run(run_id)
    exp_id = run.info.experiment_id
    [link] = [x for x in stdout.splitlines() if x.startswith("mlflow ui: ")]
    assert link == f"mlflow ui: {runs_page(server.uri, exp_id)}"
    drops = sorted(k for k in run.data.metrics if DROP.match(k))
    assert drops == ["lm_eval.piqa.acc_drop"]
    assert f"metrics.`{drops[0]}`" in client.get_experiment(exp_id).tags[VIEW_TAG]
    # a real verdict for the gate column: the run against itself passes
    gated = run_quench("gate", run_id, "--baseline", run_id, "--tracking-uri", server.uri)
    assert gated.returncode == 0, gated.stdout + gated.stderr[-3000:]

    expect = ui.expected_columns(client, exp_id)
    assert expect == [*HEADLINE, *drops, "quench.gate"]
    png = tmp_path / "ui.png"
    began = time.perf_counter()
    text = ui.open_page(link.removeprefix("mlflow ui: "), png, expect)
    print(f"\nruns table in Chromium: {time.perf_counter() - began:.1f} s; {png}")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert ui.missing(text, expect) == [], text[:3000]
    assert RUN_NAME in text and "PASS" in text  # the pipeline run, with its verdict
    # its stage runs and the compare run are in the experiment, not in the table
    assert len(client.search_runs([exp_id])) > 10 and "1 matching run" in text
    assert "Detect Issues" not in text  # not the GenAI overview
