"""Device and dtype resolution, placement arguments, and per-stage peak memory."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from quench.compute import (
    peak_memory,
    reset_peak_memory,
    resolve_device,
    resolve_dtype,
)
from quench.errors import QuenchError, RecipeError
from quench.gpu import cuda_device_count
from quench.models import load_kwargs, load_model
from quench.offload import Offload
from quench.preflight import check_recipe
from quench.recipe import load_recipe
from tests.conftest import DEFAULT_RECIPE


def test_auto_device_is_the_cpu_without_cuda():
    assert resolve_device("auto") == "cpu"
    assert resolve_device("cpu") == "cpu"


@pytest.mark.parametrize("setting", ["cuda", "cuda:1"])
def test_a_cuda_device_this_machine_lacks_is_an_error(setting):
    with pytest.raises(QuenchError, match=rf"compute.device: '{setting}' but this machine has "
                                          r"0 CUDA device\(s\); allowed: auto, cpu"):
        resolve_device(setting)


def test_run_refuses_cuda_before_any_work_validate_warns(mirror):
    recipe = load_recipe(DEFAULT_RECIPE, ["compute.device=cuda"])
    with pytest.raises(RecipeError, match="compute.device: 'cuda'"):
        check_recipe(recipe, for_run=True)
    warnings = check_recipe(recipe, for_run=False)  # a recipe meant for a GPU host
    assert any(w.startswith("compute.device: 'cuda' but this machine has 0") for w in warnings)


def test_bad_device_name_is_a_schema_error():
    with pytest.raises(QuenchError, match="compute.device"):
        load_recipe(DEFAULT_RECIPE, ["compute.device=gpu0"])


def test_auto_dtype_is_the_checkpoints(tiny_model, tmp_path):
    assert resolve_dtype("auto", tiny_model) == "float32"  # TinyStories' config says float32
    assert resolve_dtype("bfloat16", tiny_model) == "bfloat16"
    assert resolve_dtype("auto", config={"torch_dtype": "bfloat16"}) == "bfloat16"
    assert resolve_dtype("auto", config={"dtype": "float16"}) == "float16"


def test_auto_dtype_loads_a_bf16_checkpoint_in_bf16(tiny_model, tmp_path):
    import torch

    bf16 = tmp_path / "bf16"
    load_model(tiny_model, "bfloat16").save_pretrained(bf16)
    config = json.loads((bf16 / "config.json").read_text())
    assert resolve_dtype("auto", bf16) == "bfloat16", config
    assert next(load_model(bf16, "auto").parameters()).dtype == torch.bfloat16
    shutil.rmtree(bf16)


def test_placement_arguments_for_each_device():
    assert load_kwargs("cpu") == {}  # llm-compressor's recommendation: load on the CPU
    assert load_kwargs("cuda:1") == {"device_map": "cuda:1"}
    offload = Offload(Path("/tmp/off"), max_cpu_bytes=2**30)
    assert offload.load_kwargs("cpu") == {  # CPU up to the budget, then disk
        "device_map": "auto_offload", "offload_folder": "/tmp/off", "max_memory": {"cpu": 2**30}}
    assert offload.load_kwargs("cuda:1", accelerator_bytes=8 * 2**30) == {  # GPU, CPU, disk
        "device_map": "auto", "offload_folder": "/tmp/off",
        "max_memory": {1: 8 * 2**30, "cpu": 2**30}}
    assert Offload(Path("/tmp/off"), None).load_kwargs("cpu") == {
        "device_map": "auto_offload", "offload_folder": "/tmp/off"}  # compressed-tensors' budget


def test_peak_memory_restarts_at_each_reset():
    import numpy as np

    reset_peak_memory()
    block = np.ones(300 * 2**20 // 8)  # 300 MiB, touched
    high = peak_memory()["peak_rss_bytes"]
    del block
    reset_peak_memory()
    low = peak_memory()["peak_rss_bytes"]
    assert high - low > 250 * 2**20, (high, low)
    assert peak_memory()["accelerator_peak_bytes"] is None  # no CUDA here


@pytest.mark.skipif(not cuda_device_count(), reason="no CUDA device: the GPU path (llm-compressor "
                    "onloading, evaluation on cuda:0) runs only on a GPU host")
def test_a_run_on_the_gpu_uses_it(mirror, tmp_path):
    from tests.conftest import read_json, run_quench

    result = run_quench("run", str(DEFAULT_RECIPE), "quantization.method=gptq",
                        "compute.device=cuda", f"output.dir={tmp_path}", "tracking.backend=none",
                        "evaluation.perplexity.max_windows=4")
    assert result.returncode == 0, result.stderr[-2000:]
    nodes = read_json(tmp_path / "tinystories-rtn-w4a16" / "run.json")["nodes"]
    for node in ("quantize", "evaluate"):
        manifest = read_json(tmp_path / nodes[node]["dir"] / "manifest.json")
        assert manifest["config"]["device"] == "cuda:0"
        assert manifest["metrics"]["stage_accelerator_peak_mb"] > 0
