"""FP4 (NVFP4, MXFP4), block-wise FP8, W4A8 and the FP8 KV cache option on TinyStories, end to
end through the CLI: quantized on the CPU, reloaded, validated and evaluated."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from safetensors import safe_open

from quench.checkpoints.validate import CheckpointError, validate

from ..conftest import REPO, read_json, run_quench

pytestmark = pytest.mark.e2e
SMALL = ["calibration.num_samples=8", "calibration.max_seq_length=64",
         "evaluation.perplexity.max_windows=8", "tracking.backend=none"]
LAYER0 = "model.layers.0.mlp.down_proj"

# recipe -> (format, weight args, input activation args or None, tensor -> dtype of LAYER0,
#            max perplexity ratio vs fp32)
CASES = {
    "nvfp4": ("nvfp4-pack-quantized",
              {"num_bits": 4, "type": "float", "strategy": "tensor_group", "group_size": 16},
              {"num_bits": 4, "type": "float", "strategy": "tensor_group"},
              {"weight_packed": "U8", "weight_scale": "F8_E4M3", "weight_global_scale": "F32",
               "input_global_scale": "F32"}, 1.3),
    "nvfp4a16": ("nvfp4-pack-quantized",
                 {"num_bits": 4, "type": "float", "strategy": "tensor_group", "group_size": 16},
                 None, {"weight_packed": "U8", "weight_scale": "F8_E4M3",
                        "weight_global_scale": "F32"}, 1.2),
    "mxfp4": ("mxfp4-pack-quantized",
              {"num_bits": 4, "type": "float", "strategy": "group", "group_size": 32},
              {"num_bits": 4, "type": "float", "dynamic": True},
              {"weight_packed": "U8", "weight_scale": "U8"}, 1.4),
    "mxfp4a16": ("mxfp4-pack-quantized",
                 {"num_bits": 4, "type": "float", "strategy": "group", "group_size": 32},
                 None, {"weight_packed": "U8", "weight_scale": "U8"}, 1.2),
    "fp8-block": ("float-quantized",
                  {"num_bits": 8, "type": "float", "strategy": "block",
                   "block_structure": [128, 128]},
                  {"num_bits": 8, "type": "float", "strategy": "group", "group_size": 128,
                   "dynamic": True},
                  {"weight": "F8_E4M3", "weight_scale": "F32"}, 1.1),
    "w4afp8": ("pack-quantized",  # vLLM's W4A8 FP8 kernel reads weight_packed
               {"num_bits": 4, "type": "int", "strategy": "group", "group_size": 128},
               {"num_bits": 8, "type": "float", "strategy": "token", "dynamic": True},
               {"weight_packed": "I32", "weight_scale": "F32", "weight_shape": "I64"}, 1.2),
    "w4a8": ("int-quantized",
             {"num_bits": 4, "type": "int", "strategy": "group", "group_size": 128},
             {"num_bits": 8, "type": "int", "strategy": "token", "dynamic": True},
             {"weight": "I8", "weight_scale": "F32"}, 1.2),
}


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    """One output folder for all schemes: the baseline evaluation is computed once."""
    return tmp_path_factory.mktemp("formats")


def run_recipe(out: Path, recipe: str, *extra: str, name: str | None = None) -> tuple[dict, Path]:
    """The report and the quantized checkpoint folder of one small CLI run."""
    name = name or f"tinystories-{recipe}"
    result = run_quench("run", str(REPO / "recipes" / f"tinystories-{recipe}.yaml"),
                        f"output.dir={out}", f"name={name}", *SMALL, *extra)
    assert result.returncode == 0, result.stderr[-3000:]
    run = read_json(out / name / "run.json")
    return read_json(out / name / "report.json"), Path(run["nodes"]["quantize"]["dir"]) / "model"


def layer0_tensors(model_dir: Path) -> dict[str, str]:
    with safe_open(model_dir / "model.safetensors", "pt") as f:
        return {k.removeprefix(LAYER0 + "."): f.get_slice(k).get_dtype()
                for k in f.keys() if k.startswith(LAYER0 + ".")}  # noqa: SIM118


@pytest.mark.parametrize("recipe", list(CASES))
def test_scheme_quantizes_reloads_and_evaluates_on_cpu(mirror, out, recipe):
    fmt, weights, inputs, tensors, max_ratio = CASES[recipe]
    report, model_dir = run_recipe(out, recipe)
    qc = report["quantization"]["quantization_config"]
    assert qc["format"] == fmt
    group = next(iter(qc["config_groups"].values()))
    assert weights.items() <= group["weights"].items()
    if inputs is None:
        assert group["input_activations"] is None
    else:
        assert inputs.items() <= group["input_activations"].items()
    assert tensors.items() <= layer0_tensors(model_dir).items()
    assert validate(model_dir)["kind"] == "compressed-tensors"
    m = report["metrics"]
    ratio = m["candidate"]["perplexity"] / m["baseline"]["perplexity"]
    assert math.isfinite(ratio) and 0.8 < ratio < max_ratio
    assert 0 < m["candidate"]["kl_divergence"] < 0.5


def test_fp8_kv_cache_on_a_weight_only_method(mirror, out):
    report, model_dir = run_recipe(out, "nvfp4a16", "quantization.options.kv_cache=true",
                                   name="nvfp4a16-kv")
    kv = report["quantization"]["quantization_config"]["kv_cache_scheme"]
    assert kv["num_bits"] == 8 and kv["type"] == "float" and kv["strategy"] == "tensor"
    stages = {s["node"]: s["status"] for s in report["stages"]}
    assert stages["calibrate"] == "ran"  # the K/V scales are calibrated
    assert validate(model_dir)["kind"] == "compressed-tensors"  # k_scale/v_scale present


def test_per_head_kv_scales(mirror, out):
    report, model_dir = run_recipe(out, "w4a8", "quantization.options.weights=rtn",
                                   "quantization.options.kv_cache=true",
                                   "quantization.options.kv_cache_strategy=attn_head",
                                   name="w4a8-rtn-kv-head")
    assert report["quantization"]["quantization_config"]["kv_cache_scheme"]["strategy"] == \
        "attn_head"
    with safe_open(model_dir / "model.safetensors", "pt") as f:
        assert f.get_slice("model.layers.0.self_attn.k_scale").get_shape() == [4, 1, 1]
    validate(model_dir)


def test_a_broken_nvfp4_checkpoint_is_rejected(mirror, out, tmp_path):
    """Without its global scales or with unpacked FP4 weights an engine would misread it."""
    import shutil

    from safetensors.torch import load_file, save_file

    _, model_dir = run_recipe(out, "nvfp4")
    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    state = load_file(broken / "model.safetensors")
    del state[f"{LAYER0}.weight_global_scale"]
    state[f"{LAYER0}.weight_packed"] = state[f"{LAYER0}.weight_packed"].repeat(1, 2)
    save_file(state, broken / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(CheckpointError) as info:
        validate(broken)
    message = str(info.value)
    assert f"missing tensor {LAYER0}.weight_global_scale" in message
    assert f"{LAYER0}.weight_packed is U8 [128, 384], nvfp4-pack-quantized stores U8 " \
           "[128, 192]" in message


def test_fp4_weights_rounded_by_gptq(mirror, out):
    report, model_dir = run_recipe(out, "nvfp4a16", "quantization.options.weights=gptq",
                                   name="nvfp4a16-gptq")
    stages = {s["node"]: s["status"] for s in report["stages"]}
    assert stages["calibrate"] == "ran"  # GPTQ's Hessians need data
    assert report["quantization"]["quantization_config"]["format"] == "nvfp4-pack-quantized"
    validate(model_dir)
    assert 0 < report["metrics"]["candidate"]["kl_divergence"] < 0.5


@pytest.mark.parametrize("recipe", ["gptq-w4a16", "smoothquant-w8a8"])
def test_fp8_kv_cache_option_on_the_existing_methods(mirror, out, recipe):
    report, model_dir = run_recipe(out, recipe, "quantization.options.kv_cache=true",
                                   name=f"{recipe}-kv")
    kv = report["quantization"]["quantization_config"]["kv_cache_scheme"]
    assert kv["num_bits"] == 8 and kv["type"] == "float"
    with safe_open(model_dir / "model.safetensors", "pt") as f:
        assert "model.layers.1.self_attn.v_scale" in f.keys()  # noqa: SIM118
    validate(model_dir)
