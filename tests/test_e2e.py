"""The default recipe end to end through the real CLI: results, MLflow, caching, kill + resume."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml
from mlflow.tracking import MlflowClient

from quench.runner.graph import node_names
from quench.tracking.tracker import flatten

from .conftest import DEFAULT_RECIPE, REPO, read_json, run_id_of, run_quench, small_run_args

pytestmark = pytest.mark.e2e
STAGE_NODES = [n for n in node_names() if n != "track"]
CACHED_NODES = [*STAGE_NODES, "track"]


@pytest.fixture(scope="module")
def cold_run(mirror, tmp_path_factory):
    out = tmp_path_factory.mktemp("cold")
    result = run_quench("run", str(DEFAULT_RECIPE), *small_run_args(out))
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result


def test_report_has_baseline_and_candidate(cold_run):
    out, _ = cold_run
    report = read_json(out / "tinystories-rtn-w4a16" / "report.json")
    base, cand = report["metrics"]["baseline"], report["metrics"]["candidate"]
    assert math.isfinite(base["perplexity"]) and math.isfinite(cand["perplexity"])
    # A trained model, 4-bit RTN: close to the baseline but not identical.
    assert 1.0 < cand["perplexity"] / base["perplexity"] < 1.5
    assert 0 < cand["kl_divergence"] < 1.0 and 0.3 < cand["top1_agreement"] < 1.0
    assert cand["size_bytes"] < 0.7 * base["size_bytes"]
    qc = report["quantization"]["quantization_config"]
    assert qc["quant_method"] == "compressed-tensors"
    weights = qc["config_groups"]["group_0"]["weights"]
    assert (weights["num_bits"], weights["group_size"]) == (4, 128)
    statuses = {s["node"]: s["status"] for s in report["stages"]}
    assert statuses["calibrate"] == ("skipped: the quantization method and scheme need no "
                                     "calibration data")
    assert statuses["quantize"] == "ran"
    assert (out / "tinystories-rtn-w4a16" / "report.md").read_text().startswith("# quench run")


def test_mlflow_parent_metrics_equal_report(cold_run):
    out, result = cold_run
    client = MlflowClient(f"sqlite:///{out}/mlflow.db")
    run = client.get_run(run_id_of(result))
    report = read_json(out / "tinystories-rtn-w4a16" / "report.json")
    expected = {k: float(v) for k, v in flatten(report["metrics"]).items()}
    assert run.data.metrics == pytest.approx(expected, rel=1e-12)
    assert run.info.status == "FINISHED"
    # Marked as a model-training experiment, so MLflow's UI opens on the runs table.
    tags = client.get_experiment(run.info.experiment_id).tags
    assert tags["mlflow.experimentKind"] == "custom_model_development"
    assert run.data.tags["quench.method"] == "rtn"
    children = client.search_runs(
        [run.info.experiment_id], f"tags.mlflow.parentRunId = '{run.info.run_id}'"
    )
    assert sorted(c.info.run_name for c in children) == sorted(STAGE_NODES)
    by_name = {c.info.run_name: c for c in children}
    assert by_name["evaluate"].data.metrics["perplexity"] == expected["candidate.perplexity"]


def test_artifact_carries_license_notice_and_model_card(cold_run):
    out, result = cold_run
    model = out / "tinystories-rtn-w4a16" / "model"
    assert (model / "model.safetensors").is_file() and (model / "config.json").is_file()
    assert "Apache License" in (model / "LICENSE").read_text()
    notice = (model / "NOTICE").read_text()
    assert "raincandy-u/TinyStories-656K" in notice and "quantized (rtn, W4A16)" in notice
    card = (model / "README.md").read_text()
    front = yaml.safe_load(card.split("---")[1])
    assert front["license"] == "apache-2.0"
    assert front["base_model"] == "raincandy-u/TinyStories-656K"
    assert front["base_model_relation"] == "quantized"
    report = read_json(out / "tinystories-rtn-w4a16" / "report.json")
    ppl = report["metrics"]["candidate"]["perplexity"]
    assert "| perplexity | " in card and f"{ppl:.4g}" in card
    tags = MlflowClient(f"sqlite:///{out}/mlflow.db").get_run(run_id_of(result)).data.tags
    assert (tags["license"], tags["commercial_ok"], tags["license.verdict"]) == (
        "apache-2.0", "true", "pass")
    assert "Apache-2.0 s.4(a)" in tags["obligations"]


def test_rerun_is_all_cached_and_logs_nothing_twice(cold_run):
    out, first = cold_run
    again = run_quench("run", str(DEFAULT_RECIPE), *small_run_args(out))
    assert again.returncode == 0, again.stderr[-3000:]
    nodes = read_json(out / "tinystories-rtn-w4a16" / "run.json")["nodes"]
    assert {n: nodes[n]["status"] for n in CACHED_NODES} == dict.fromkeys(CACHED_NODES, "cached")
    assert run_id_of(again) == run_id_of(first)  # the unchanged run points at its record
    client = MlflowClient(f"sqlite:///{out}/mlflow.db")
    parents = client.search_runs(
        [client.get_run(run_id_of(first)).info.experiment_id],
        "tags.`quench.recipe` = 'tinystories-rtn-w4a16'",
    )
    assert len(parents) == 1


def test_force_reruns_one_stage_and_logs_a_new_run(cold_run):
    out, first = cold_run
    forced = run_quench("run", str(DEFAULT_RECIPE), *small_run_args(out), "--force", "evaluate")
    assert forced.returncode == 0, forced.stderr[-3000:]
    nodes = read_json(out / "tinystories-rtn-w4a16" / "run.json")["nodes"]
    assert nodes["evaluate"]["status"] == "ran" and nodes["quantize"]["status"] == "cached"
    assert run_id_of(forced) != run_id_of(first)
    client = MlflowClient(f"sqlite:///{out}/mlflow.db")
    run = client.get_run(run_id_of(forced))
    children = client.search_runs(
        [run.info.experiment_id], f"tags.mlflow.parentRunId = '{run.info.run_id}'"
    )
    statuses = {c.info.run_name: c.data.tags["quench.status"] for c in children}
    assert statuses["quantize"] == "cached" and statuses["evaluate"] == "ran"


def test_sigkill_mid_quantize_then_resume(cold_run, tmp_path):
    cold_out, _ = cold_run
    cmd = [sys.executable, "-m", "quench", "run", str(DEFAULT_RECIPE), *small_run_args(tmp_path)]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    quantize_dir = tmp_path / "cache" / "quantize"
    deadline = time.monotonic() + 300
    while not list(quantize_dir.glob(".tmp-*")):
        assert proc.poll() is None, "the run ended before quantize started"
        assert time.monotonic() < deadline, "quantize never started"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert [p.name for p in quantize_dir.iterdir() if not p.name.startswith(".tmp-")] == []
    assert not (tmp_path / "cache" / "evaluate").exists()

    resumed = run_quench("run", str(DEFAULT_RECIPE), *small_run_args(tmp_path))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    nodes = read_json(tmp_path / "tinystories-rtn-w4a16" / "run.json")["nodes"]
    assert nodes["resolve"]["status"] == "cached" and nodes["quantize"]["status"] == "ran"
    assert not list(quantize_dir.glob(".tmp-*"))
    metrics = read_json(tmp_path / "tinystories-rtn-w4a16" / "report.json")["metrics"]
    reference = read_json(cold_out / "tinystories-rtn-w4a16" / "report.json")["metrics"]
    assert metrics["candidate"]["perplexity"] == reference["candidate"]["perplexity"]
    assert metrics["candidate"]["kl_divergence"] == reference["candidate"]["kl_divergence"]
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    statuses = sorted(r.info.status for r in client.search_runs(
        [client.get_experiment_by_name("quench-tinystories").experiment_id],
        "tags.`quench.recipe` = 'tinystories-rtn-w4a16'"))
    assert statuses == ["FINISHED", "KILLED"]  # the killed run is not left RUNNING


def test_none_baseline_matches_the_reference_evaluation(mirror, tmp_path):
    result = run_quench("run", str(REPO / "recipes" / "tinystories-none.yaml"),
                        *small_run_args(tmp_path), "tracking.backend=none")
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = read_json(tmp_path / "tinystories-none" / "report.json")["metrics"]
    assert metrics["candidate"]["perplexity"] == pytest.approx(
        metrics["baseline"]["perplexity"], rel=1e-6)
    assert metrics["candidate"]["kl_divergence"] == pytest.approx(0, abs=1e-6)
    assert metrics["candidate"]["top1_agreement"] == 1.0
    assert not (tmp_path / "mlflow.db").exists()


