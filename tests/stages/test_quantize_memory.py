"""The quantize stage on sharded checkpoints: reads an index, writes shards, one dense copy."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from quench.compute import PHASE_PEAK_PREFIX
from quench.metrics.fidelity import layer_weight_errors
from quench.models import load_model, load_tokenizer
from tests.conftest import DEFAULT_RECIPE, read_json, run_quench


@pytest.fixture(scope="module")
def sharded_run(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """TinyStories saved as bf16 shards, quantized (RTN W4A16) into shards, dtype auto."""
    root = tmp_path_factory.mktemp("sharded")
    source = root / "tinystories-bf16-sharded"
    load_model(tiny_model, "bfloat16").save_pretrained(source, max_shard_size="500KB")
    load_tokenizer(tiny_model).save_pretrained(source)
    shutil.copy(tiny_model / "SOURCE.md", source / "SOURCE.md")  # its license evidence
    out = root / "out"
    result = run_quench("run", str(DEFAULT_RECIPE), f"model.id={source}", "model.dtype=auto",
                        "output.max_shard_size=200KB", f"output.dir={out}",
                        "tracking.backend=none", "evaluation.perplexity.max_windows=4")
    assert result.returncode == 0, result.stderr[-3000:]
    nodes = read_json(out / "tinystories-rtn-w4a16" / "run.json")["nodes"]
    return {"source": source, "nodes": {n: read_json(Path(v["dir"]) / "manifest.json")
                                        for n, v in nodes.items()},
            "dirs": {n: Path(v["dir"]) for n, v in nodes.items()}}


def test_sharded_input_is_read_through_its_index(sharded_run):
    assert (sharded_run["source"] / "model.safetensors.index.json").is_file()
    resolve = sharded_run["nodes"]["resolve"]["outputs"]
    assert len(resolve["weights"]) >= 2, resolve


def test_output_is_sharded_with_an_index_and_keeps_the_checkpoint_dtype(sharded_run):
    q = sharded_run["nodes"]["quantize"]
    model_dir = sharded_run["dirs"]["quantize"] / q["outputs"]["model_dir"]
    assert len(q["outputs"]["shards"]) >= 2, q["outputs"]["shards"]
    index = json.loads((model_dir / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"].values()) == set(q["outputs"]["shards"])
    config = json.loads((model_dir / "config.json").read_text())
    assert (config.get("torch_dtype") or config.get("dtype")) == "bfloat16"
    assert q["config"]["dtype"] == "auto" and q["config"]["device"] == "cpu"


def test_weight_errors_from_the_shards_equal_those_of_the_reloaded_model(sharded_run):
    """Read tensor by tensor from both checkpoints, they match the dense reloaded model's."""
    q = sharded_run["nodes"]["quantize"]
    model_dir = sharded_run["dirs"]["quantize"] / q["outputs"]["model_dir"]
    from_model = layer_weight_errors(sharded_run["source"], load_model(model_dir, "float32"))
    from_shards = q["outputs"]["layer_weight_errors"]
    assert from_shards.keys() == from_model.keys() and len(from_shards) == 14
    # (bf16 scales: the two dequantization paths round the last digit differently)
    assert all(math.isclose(from_shards[k], from_model[k], rel_tol=1e-3) for k in from_shards)
    assert all(0 < e < 0.5 for e in from_shards.values())


def test_every_stage_that_ran_records_its_own_peak_memory(sharded_run):
    for node in ("resolve", "quantize", "baseline_eval", "evaluate"):  # RTN: no calibrate
        m = sharded_run["nodes"][node]
        assert m["metrics"]["stage_peak_rss_mb"] > 50, (node, m["metrics"])
    assert math.isfinite(sharded_run["nodes"]["evaluate"]["metrics"]["perplexity"])


@pytest.mark.parametrize(("node", "phases"), [("quantize", ["load", "quantize", "save", "reload"]),
                                              ("evaluate", ["load", "score"])])
def test_a_stage_that_measures_its_phases_reports_the_largest_as_its_peak(sharded_run, node,
                                                                          phases):
    """Each phase resets the high-water mark: the stage's peak must still cover all of them."""
    metrics = sharded_run["nodes"][node]["metrics"]
    found = {k.removeprefix(PHASE_PEAK_PREFIX): v for k, v in metrics.items()
             if k.startswith(PHASE_PEAK_PREFIX)}
    assert sorted(found) == sorted(phases) and all(v > 50 for v in found.values()), metrics
    assert metrics["stage_peak_rss_mb"] >= max(found.values())
