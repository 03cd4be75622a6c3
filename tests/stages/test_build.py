"""The build stage: build_plan.sh and plan.json (golden, with the shared serving benchmark
command), `skipped: no CUDA device` here with nothing served, the real build on a CUDA host."""

from __future__ import annotations

import json
import os
import shlex
import stat
import subprocess
from pathlib import Path

import pytest

from quench import home
from quench.contract.manifest import Manifest
from quench.contract.stage import StageContext
from quench.engines import get_engine
from quench.gpu import cuda_device_count
from quench.recipe import load_recipe
from quench.serving import bench_client
from quench.stages import get_stage
from quench.stages.build import HERE, PLAN_CLIENT, make_plan, render_script

from ..conftest import REPO, read_json, run_quench

CUDA = cuda_device_count() > 0
INT8_SQ = REPO / "recipes" / "tinystories-modelopt-int8-sq.yaml"  # tensorrt backend
FP8 = REPO / "recipes" / "tinystories-modelopt-fp8.yaml"  # pytorch backend
SWEEP = "evaluation.throughput={concurrency: [1, 4], input_len: 16, output_len: 8, num_prompts: 8}"


def _export(tmp_path: Path) -> Manifest:
    """An export manifest: a checkpoint folder and the source model with its config.json."""
    source, ckpt = tmp_path / "source", tmp_path / "export" / "checkpoint"
    source.mkdir()
    ckpt.mkdir(parents=True)
    (source / "config.json").write_text(json.dumps({"vocab_size": 2048}))
    return Manifest(tmp_path / "export", {"status": "ran", "outputs": {
        "model_dir": "checkpoint", "source_model_dir": str(source),
        "validation": {"quant_algo": "W8A8_SQ_PER_CHANNEL", "kv_cache_quant_algo": None}}})


def test_tensorrt_plan_builds_then_serves_the_engine_folder(tmp_path):
    recipe = load_recipe(INT8_SQ, [SWEEP])
    plan = make_plan(recipe, _export(tmp_path))
    ckpt, source = tmp_path / "export" / "checkpoint", tmp_path / "source"
    tool = str(home.env_dir("tensorrt-llm") / "bin" / "trtllm-build")
    assert plan.build[:5] == [tool, "--checkpoint_dir", str(ckpt), "--output_dir",
                              f"{HERE}/engine"]
    assert plan.serve[1:2] == [f"{HERE}/engine"]
    assert plan.serve[-2:] == ["--tokenizer", str(source)]
    assert plan.served(Path("/st")) == {"model_dir": "/st/engine", "tokenizer_dir": str(source),
                                        "serve_options": {"backend": "tensorrt",
                                                          "tokenizer": str(source)}}
    assert plan.as_dict()["serving_benchmark"] == [bench_client.bench_command(
        ["vllm", "bench", "serve"], "http://127.0.0.1:8000", f"{HERE}/engine", source, c,
        recipe.evaluation.throughput.model_dump(), HERE, f"bench_c{c}.json") for c in (1, 4)]


def test_pytorch_plan_passes_the_export_on(tmp_path):
    plan = make_plan(load_recipe(FP8, []), _export(tmp_path))
    ckpt = tmp_path / "export" / "checkpoint"
    assert plan.build is None and plan.serve[1] == str(ckpt)
    assert plan.served(Path("/st")) == {"model_dir": str(ckpt), "tokenizer_dir": str(ckpt),
                                        "serve_options": {"backend": "pytorch"}}


def test_script_runs_the_shared_client_and_no_lm_eval(tmp_path):
    recipe = load_recipe(INT8_SQ, [SWEEP])
    plan = make_plan(recipe, _export(tmp_path))
    text = render_script(plan, recipe)
    expected = [shlex.join(cmd).replace(HERE, '"$PWD"').replace(f"'{PLAN_CLIENT}'",
                                                                 f'"{PLAN_CLIENT}"')
                for cmd in plan.serving_benchmarks(PLAN_CLIENT)]
    lines = text.splitlines()
    assert [x for x in lines if x.startswith('"${VLLM:-vllm}" bench serve ')] == expected
    titles = [x for x in lines if x[:4] in ("# 1.", "# 2.", "# 3.", "# 4.")]
    assert [t.split(":")[0] for t in titles] == [
        "# 1. Build the TensorRT engine (legacy backend)",
        "# 2. Serve (OpenAI-compatible) and wait until healthy",
        "# 3. Serving benchmark", "# 4. Optional, not run by quench"]
    assert "-m lm_eval" not in text and "trtllm-bench --model" in text
    script = tmp_path / "build_plan.sh"
    script.write_text(text)
    subprocess.run(["bash", "-n", str(script)], check=True)


@pytest.mark.skipif(CUDA, reason="this host has a CUDA device")
def test_stage_writes_the_plan_and_is_skipped_without_cuda(tmp_path):
    recipe = load_recipe(INT8_SQ, [SWEEP])
    stage, out = get_stage("build"), tmp_path / "build"
    out.mkdir()
    ctx = StageContext(recipe, {"checkpoint": _export(tmp_path)}, out, stage.config(recipe))
    result = stage.run(ctx)
    assert result.status == "skipped: no CUDA device" and result.metrics == {}
    assert "model_dir" not in result.outputs and result.outputs["not_run"] == "no CUDA device"
    assert sorted(p.name for p in out.iterdir()) == ["bench_dataset.jsonl", "build_plan.sh",
                                                      "plan.json"]
    assert json.loads((out / "plan.json").read_text()) == result.outputs["commands"]


@pytest.mark.skipif(CUDA, reason="this host has a CUDA device")
def test_no_cuda_device_here():
    assert get_engine("tensorrt-llm").unavailable_reason() == "no CUDA device"


@pytest.mark.e2e
def test_int8_sq_runs_to_a_build_plan_and_is_skipped_without_cuda(tmp_path, mirror):
    """Calibrate, quantize, export (validated), then build_plan.sh and the skip status in the
    manifest, report.md and MLflow; the throughput sweep of TensorRT-LLM skipped the same way."""
    if CUDA:
        pytest.skip("this host has a CUDA device: the build runs for real")
    result = run_quench("run", str(INT8_SQ), f"output.dir={tmp_path}",
                        f"tracking.tracking_uri=sqlite:///{tmp_path}/mlflow.db",
                        "evaluation.perplexity.max_windows=8", "calibration.num_samples=8",
                        "calibration.max_seq_length=64", SWEEP)
    assert result.returncode == 0, result.stderr[-3000:]
    nodes = read_json(tmp_path / "tinystories-modelopt-int8-sq" / "run.json")["nodes"]
    assert nodes["export"]["status"] == "ran"
    assert nodes["build"]["status"] == "skipped: no CUDA device"
    assert nodes["throughput"]["status"] == "skipped: no CUDA device"
    build = read_json(Path(nodes["build"]["dir"]) / "manifest.json")
    assert build["status"] == "skipped: no CUDA device" and build["metrics"] == {}
    plan = Path(nodes["build"]["dir"]) / "build_plan.sh"
    assert plan.stat().st_mode & stat.S_IXUSR
    subprocess.run(["bash", "-n", str(plan)], check=True)  # it parses
    text = plan.read_text()
    export_dir = Path(nodes["export"]["dir"]) / "checkpoint"
    assert f"--checkpoint_dir {export_dir}" in text and "--backend tensorrt" in text
    assert (export_dir / "rank0.safetensors").is_file()
    report = (tmp_path / "tinystories-modelopt-int8-sq" / "report.md").read_text()
    assert "| build | skipped: no CUDA device |" in report
    assert "W8A8_SQ_PER_CHANNEL" in report
    assert _mlflow_status(tmp_path, "build") == "skipped: no CUDA device"


def _mlflow_status(out: Path, stage: str) -> str:
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{out}/mlflow.db")
    runs = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        filter_string=f"tags.mlflow.runName = '{stage}'")
    return runs[0].data.tags["quench.status"]


@pytest.mark.cuda
@pytest.mark.skipif(not CUDA or get_engine("tensorrt-llm").unavailable_reason() is not None,
                    reason=f"needs a CUDA device and TensorRT-LLM: "
                           f"{get_engine('tensorrt-llm').unavailable_reason()}")
def test_int8_sq_builds_then_throughput_and_lm_eval_serve_it_on_a_gpu(tmp_path, mirror):
    """The legacy engine built by the build stage, served and measured by throughput and
    lm_eval with the metric names vLLM's runs have."""
    result = subprocess.run(
        [str(REPO / ".venv" / "bin" / "python"), "-m", "quench", "run", str(INT8_SQ),
         f"output.dir={tmp_path}", "tracking.backend=none", SWEEP,
         "evaluation.lm_eval={tasks: [piqa], limit: 8}"],
        capture_output=True, text=True, cwd=REPO, env={**os.environ}, timeout=3600)
    assert result.returncode == 0, result.stderr[-3000:]
    nodes = read_json(tmp_path / "tinystories-modelopt-int8-sq" / "run.json")["nodes"]
    build = read_json(Path(nodes["build"]["dir"]) / "manifest.json")
    assert build["status"] == "ran" and (Path(build["outputs"]["model_dir"])).is_dir()
    throughput = read_json(Path(nodes["throughput"]["dir"]) / "manifest.json")
    assert throughput["status"] == "ran" and throughput["metrics"]["c4_output_tokens_per_s"] > 0
    lm_eval = read_json(Path(nodes["lm_eval"]["dir"]) / "manifest.json")
    assert lm_eval["outputs"]["engines"]["tensorrt-llm"]["status"] == "ran"
    assert "lm_eval.tensorrt-llm.piqa.acc_minus_hf" in lm_eval["metrics"]
