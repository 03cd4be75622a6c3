"""Every method end to end on the tiny model through the CLI, with a small calibration set."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from quench.models import load_model

from ..conftest import REPO, read_json, run_id_of, run_quench

pytestmark = pytest.mark.e2e
SMALL = ["calibration.num_samples=16", "calibration.max_seq_length=128",
         "evaluation.perplexity.max_windows=16", "tracking.backend=none"]

# recipe -> (extra overrides, expected weight args, expected input activation args, max ppl ratio)
CASES = {
    "gptq-w4a16": ([], {"num_bits": 4, "group_size": 128, "strategy": "group",
                        "actorder": "static"}, None, 1.5),
    "gptq-w3a16": ([], {"num_bits": 3, "group_size": 32, "strategy": "group"}, None, 3.0),
    "awq-w4a16": ([], {"num_bits": 4, "group_size": 128, "symmetric": False}, None, 1.5),
    "smoothquant-w8a8": ([], {"num_bits": 8, "type": "int", "strategy": "channel"},
                         {"num_bits": 8, "type": "int", "strategy": "token", "dynamic": True},
                         1.2),
    "fp8-dynamic": ([], {"num_bits": 8, "type": "float"},
                    {"type": "float", "dynamic": True}, 1.2),
    "fp8-static": (["quantization.options.kv_cache=true"], {"num_bits": 8, "type": "float"},
                   {"type": "float", "dynamic": False, "strategy": "tensor"}, 1.2),
}


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    """One output folder for all methods: the baseline evaluation is computed once."""
    return tmp_path_factory.mktemp("methods")


def run_recipe(out: Path, name: str, extra: list[str]) -> dict:
    recipe = REPO / "recipes" / f"tinystories-{name}.yaml"
    result = run_quench("run", str(recipe), f"output.dir={out}", *SMALL, *extra)
    assert result.returncode == 0, result.stderr[-3000:]
    return read_json(out / f"tinystories-{name}" / "report.json")


@pytest.mark.parametrize("name", list(CASES))
def test_method_produces_the_checkpoint_the_recipe_asked_for(mirror, out, name):
    extra, weights, inputs, max_ratio = CASES[name]
    report = run_recipe(out, name, extra)
    qc = report["quantization"]["quantization_config"]
    assert qc["quant_method"] == "compressed-tensors"
    group = qc["config_groups"]["group_0"]
    assert weights.items() <= group["weights"].items()
    if inputs is None:
        assert group["input_activations"] is None
    else:
        assert inputs.items() <= group["input_activations"].items()
    assert "lm_head" in qc["ignore"]
    m = report["metrics"]
    ratio = m["candidate"]["perplexity"] / m["baseline"]["perplexity"]
    assert math.isfinite(ratio) and 0.8 < ratio < max_ratio
    assert 0 <= m["candidate"]["kl_divergence"] < 1.0
    assert 0 < m["candidate"]["weight_error_mean"] < 0.5
    stages = {s["node"]: s["status"] for s in report["stages"]}
    if name == "fp8-dynamic":  # data-free: no calibration draw, so no held-out batches either
        assert stages["calibrate"] == ("skipped: the quantization method and scheme need no "
                                       "calibration data")
        assert "output_cosine" not in m["candidate"]
    else:
        assert stages["calibrate"] == "ran"
        assert 0.9 < m["candidate"]["output_cosine"] <= 1.0 + 1e-9


def test_fp8_kv_cache_scheme_is_recorded(mirror, out):
    report = run_recipe(out, "fp8-static", ["quantization.options.kv_cache=true"])
    kv = report["quantization"]["quantization_config"]["kv_cache_scheme"]
    assert kv["num_bits"] == 8 and kv["type"] == "float"


@pytest.mark.parametrize("name", ["gptq-w4a16", "awq-w4a16"])
def test_4bit_weights_hold_at_most_16_values_per_group(mirror, out, name):
    run_recipe(out, name, [])
    run = read_json(out / f"tinystories-{name}" / "run.json")
    model = load_model(Path(run["nodes"]["quantize"]["dir"]) / "model", "float32")
    checked = 0
    for module_name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and module_name != "lm_head":
            groups = module.weight.detach().reshape(module.weight.shape[0], -1, 128)
            distinct = max(len(torch.unique(g)) for g in groups.reshape(-1, 128))
            assert distinct <= 16, f"{module_name}: {distinct} distinct values in a group"
            checked += 1
    assert checked == 14  # 7 Linear layers per block, 2 blocks


def test_awq_reports_the_mappings_it_skips_under_gqa(mirror, out, tiny_model):
    report = run_recipe(out, "awq-w4a16", [])
    skipped = [w for w in report["quantization"]["library_warnings"] if w.startswith("Skipping")]
    # 4 KV heads vs 8 query heads: v_proj (64 out) cannot be balanced against o_proj (128 in).
    assert [w.split()[1] for w in skipped] == [
        "model.layers.0.self_attn.v_proj", "model.layers.1.self_attn.v_proj"]
    # AWQ replaces weight tensors: the stage first moved the mapped checkpoint into owned memory
    run = read_json(out / "tinystories-awq-w4a16" / "run.json")
    manifest = read_json(Path(run["nodes"]["quantize"]["dir"]) / "manifest.json")
    model = load_model(tiny_model, "auto")
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    assert manifest["metrics"]["owned_weight_bytes"] >= weights


def test_raw_llmcompressor_recipe_escape_hatch(mirror, out, tmp_path):
    raw = tmp_path / "raw.yaml"
    raw.write_text(
        "quant_stage:\n  quant_modifiers:\n    GPTQModifier:\n      ignore: [lm_head]\n"
        "      targets: [Linear]\n      scheme: W8A16\n"
    )
    recipe = REPO / "recipes" / "tinystories-rtn-w4a16.yaml"
    result = run_quench("run", str(recipe), f"output.dir={out}", *SMALL, "name=raw",
                        "quantization.method=llmcompressor", "quantization.scheme=custom",
                        f"quantization.options={{recipe: {raw}}}")
    assert result.returncode == 0, result.stderr[-3000:]
    qc = read_json(out / "raw" / "report.json")["quantization"]["quantization_config"]
    assert qc["config_groups"]["group_0"]["weights"]["num_bits"] == 8


def test_unsafe_raw_recipe_is_rejected(tmp_path):
    unsafe = tmp_path / "unsafe.yaml"
    unsafe.write_text("stage: !!python/tuple [1, 2]\n")
    recipe = REPO / "recipes" / "tinystories-rtn-w4a16.yaml"
    result = run_quench("validate", str(recipe), "quantization.method=llmcompressor",
                        "quantization.scheme=custom", f"quantization.options={{recipe: {unsafe}}}")
    assert result.returncode == 2
    assert "quantization.options.recipe:" in result.stderr and "not safe YAML" in result.stderr


def test_calibration_lineage_is_an_mlflow_dataset_input(mirror, tmp_path):
    from mlflow.tracking import MlflowClient

    recipe = REPO / "recipes" / "tinystories-gptq-w4a16.yaml"
    result = run_quench("run", str(recipe), f"output.dir={tmp_path}", *SMALL[:3],
                        f"tracking.tracking_uri=sqlite:///{tmp_path}/mlflow.db")
    assert result.returncode == 0, result.stderr[-3000:]
    run_id = run_id_of(result)
    inputs = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db").get_run(run_id).inputs
    (dataset,) = inputs.dataset_inputs
    assert dataset.dataset.name == "calibration:valid.txt"
    assert "wikitext2_valid_calibration/valid.txt" in dataset.dataset.source
    assert {t.key: t.value for t in dataset.tags}["quench.seed"] == "0"
