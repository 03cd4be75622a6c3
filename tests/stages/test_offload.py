"""Disk offload (compute.offload_folder): the quantize and evaluation stages read weights back
from disk one module at a time and get the results of a run that held the whole model."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from quench.offload import stage_offload
from quench.recipe import load_recipe
from quench.recipe.schema import ComputeSpec
from quench.runner.run import run_pipeline
from tests.conftest import DEFAULT_RECIPE
from tests.engines.helpers import llama_in


@pytest.fixture(scope="module")
def llama(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight bf16 Llama of 4 layers (hidden 256) with TinyStories' tokenizer."""
    return llama_in(tmp_path_factory.mktemp("llama-offload"), tiny_model, hidden=256, layers=4,
                    heads=8, kv_heads=2, intermediate=768)


def run(model_dir: Path, out: Path, method: str, compute: dict) -> dict:
    recipe = {
        "extends": str(DEFAULT_RECIPE), "name": f"offload-{method}",
        "model": {"id": str(model_dir), "dtype": "auto"},
        "calibration": {"num_samples": 8, "max_seq_length": 64},
        "quantization": {"method": method, "scheme": "W4A16"},
        "evaluation": {"perplexity": {"max_windows": 4}},
        "license": {"declared": {str(model_dir): "apache-2.0"}},
        "tracking": {"backend": "none"}, "compute": compute, "output": {"dir": str(out)},
    }
    path = out.parent / f"{out.name}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    summary = run_pipeline(load_recipe(str(path)), force={"all"}, until="evaluate")
    return {n: summary.manifest(n) for n in ("quantize", "baseline_eval", "evaluate")}


@pytest.mark.parametrize("method", ["gptq", "rtn"])
def test_offloaded_run_matches_the_run_in_ram(method, llama, tmp_path):
    folder = tmp_path / "offload"
    in_ram = run(llama, tmp_path / "ram", method, {})
    offloaded = run(llama, tmp_path / "disk", method,
                    {"offload_folder": str(folder), "max_cpu_memory": "1MB"})
    weights = sum(f.stat().st_size for f in llama.glob("*.safetensors"))
    for stage in ("quantize", "baseline_eval", "evaluate"):
        assert offloaded[stage].status == "ran", stage
        # all but the few modules under 1 MB (norms, one layer's worth at most) went to disk
        assert offloaded[stage].metrics["offloaded_bytes"] > weights / 2, stage
        assert "offloaded_bytes" not in in_ram[stage].metrics
    for stage in ("baseline_eval", "evaluate"):
        assert math.isclose(offloaded[stage].metrics["perplexity"],
                            in_ram[stage].metrics["perplexity"], rel_tol=1e-4), stage
    errors = offloaded["quantize"].outputs["layer_weight_errors"]
    assert errors.keys() == in_ram["quantize"].outputs["layer_weight_errors"].keys()
    assert all(math.isclose(errors[k], in_ram["quantize"].outputs["layer_weight_errors"][k],
                            rel_tol=1e-3) for k in errors)
    assert list(folder.iterdir()) == []  # every stage removed its own sub-folder


def test_each_stage_gets_a_sub_folder_that_is_removed_even_on_error(tmp_path):
    settings = ComputeSpec(offload_folder=str(tmp_path), max_cpu_memory="1GiB")
    with pytest.raises(RuntimeError), stage_offload(settings, "evaluate") as off:
        assert off is not None and off.folder.parent == tmp_path and off.folder.is_dir()
        assert off.max_cpu_bytes == 2**30
        (off.folder / "ct_disk_cache_0_1.safetensors").write_bytes(b"x")
        raise RuntimeError("the stage failed")
    assert list(tmp_path.iterdir()) == []
    with stage_offload(ComputeSpec(), "evaluate") as off:
        assert off is None
