"""`quench plan`'s per-stage peak against the peak each stage measured (VmHWM) in a real run.

The scaling benchmark (`make bench-scaling`) checks the same on 0.4-2.2 GB models; this runs
on a 94 MB model, where the runtime term dominates, so that a drift in either shows in CI.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from quench import stage_memory as memory
from quench.geometry import Geometry
from quench.recipe import load_recipe
from tests.conftest import DEFAULT_RECIPE, read_json, run_quench
from tests.engines.helpers import llama_in

TOLERANCE = 0.15  # the target, as in bench/scaling_table.py


@pytest.fixture(scope="module")
def llama(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight bf16 Llama of 47 M parameters (4 layers, hidden 1024)."""
    return llama_in(tmp_path_factory.mktemp("llama-94mb"), tiny_model, hidden=1024, layers=4,
                    heads=16, kv_heads=4, intermediate=2816)


@pytest.mark.parametrize("method", ["rtn", "gptq"])
def test_predicted_stage_peaks_are_within_15_percent(method, llama, tmp_path):
    recipe = {
        "extends": str(DEFAULT_RECIPE), "name": f"measured-{method}",
        "model": {"id": str(llama), "dtype": "auto"},
        "calibration": {"num_samples": 16, "max_seq_length": 128},
        "quantization": {"method": method, "scheme": "W4A16"},
        "evaluation": {"perplexity": {"max_windows": 4, "window": 128, "stride": 128,
                                      "batch_size": 8}, "lm_eval": None},
        "license": {"declared": {str(llama): "apache-2.0"}},
        "tracking": {"backend": "none"}, "output": {"dir": str(tmp_path / "out")},
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    result = run_quench("run", str(path), "--force", "all")
    assert result.returncode == 0, result.stderr[-3000:]
    nodes = read_json(tmp_path / "out" / recipe["name"] / "run.json")["nodes"]
    predicted = memory.predict(load_recipe(str(path)), Geometry.read(llama), "cpu")
    assert {s.step for s in predicted} == {"quantize", "baseline_eval", "evaluate"}
    for step in predicted:
        manifest = read_json(Path(nodes[step.step]["dir"]) / "manifest.json")
        measured = manifest["metrics"]["stage_peak_rss_mb"] * 2**20
        error = step.host_bytes / measured - 1
        print(f"{method} {step.step}: predicted {step.host_bytes / 2**20:.0f} MiB, measured "
              f"{measured / 2**20:.0f} MiB ({100 * error:+.1f} %)")
        assert abs(error) <= TOLERANCE, (step.step, step.host_bytes / 2**20,
                                         measured / 2**20, step.note)
