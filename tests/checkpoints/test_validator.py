"""The offline validator accepts real ModelOpt exports and rejects planted faults, with reasons."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from quench.checkpoints.validate import CheckpointError, detect_kind, validate
from tests.checkpoints.modelopt_helpers import export, quantize


@pytest.fixture(scope="module")
def exports(tmp_path_factory, mirror, tiny_model) -> dict[str, Path]:
    """Real exports: FP8 (+ FP8 KV cache) as a TensorRT-LLM checkpoint and INT8 SmoothQuant as
    both formats."""
    root = tmp_path_factory.mktemp("exports")
    fp8, _ = quantize("FP8", mirror, tiny_model, root / "fp8")
    sq, _ = quantize("INT8_SQ", mirror, tiny_model, root / "sq")
    return {"fp8-trt": export(fp8, root / "fp8-trt", "trtllm-checkpoint", "FP8"),
            "sq-trt": export(sq, root / "sq-trt", "trtllm-checkpoint", "INT8_SQ"),
            "sq-hf": export(sq, root / "sq-hf", "modelopt-hf", "INT8_SQ")}


@pytest.fixture
def source(tiny_model) -> dict:
    return json.loads((tiny_model / "config.json").read_text())


def planted(exports: dict[str, Path], name: str, tmp_path: Path) -> Path:
    """A private copy of an export to damage."""
    return Path(shutil.copytree(exports[name], tmp_path / name))


def edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def rejects(path: Path, kind: str, source: dict | None, *reasons: str) -> str:
    with pytest.raises(CheckpointError) as info:
        validate(path, kind, source)
    for reason in reasons:
        assert reason in str(info.value), str(info.value)
    return str(info.value)


def test_real_exports_are_accepted_and_recognised(exports, source):
    assert validate(exports["fp8-trt"], None, source)["kv_cache_quant_algo"] == "FP8"
    assert detect_kind(exports["sq-trt"]) == "trtllm-checkpoint"
    assert detect_kind(exports["sq-hf"]) == "modelopt-hf"
    assert validate(exports["sq-hf"], None, source)["quant_algo"] == "W8A8_SQ_PER_CHANNEL"


def test_unknown_quant_algo(exports, source, tmp_path):
    path = planted(exports, "sq-trt", tmp_path)
    edit_json(path / "config.json", lambda c: c["quantization"].update(quant_algo="INT4_SQ"))
    rejects(path, "trtllm-checkpoint", source,
            "quantization.quant_algo 'INT4_SQ' is not a TensorRT-LLM quantization algorithm")


def test_quant_algo_that_does_not_match_the_tensors(exports, source, tmp_path):
    """An allowed value, but not what the weights are: INT8 tensors declared as FP8."""
    path = planted(exports, "sq-trt", tmp_path)
    edit_json(path / "config.json", lambda c: c["quantization"].update(quant_algo="FP8"))
    rejects(path, "trtllm-checkpoint", source,
            "transformer.layers.0.attention.qkv.weight is I8, the quant_algo stores F8_E4M3")


def test_unknown_kv_cache_algo_in_the_unified_checkpoint(exports, source, tmp_path):
    path = planted(exports, "sq-hf", tmp_path)
    edit_json(path / "hf_quant_config.json",
              lambda c: c["quantization"].update(kv_cache_quant_algo="FP4"))
    rejects(path, "modelopt-hf", source, "kv_cache_quant_algo 'FP4' not one of")


def test_missing_rank_file(exports, source, tmp_path):
    path = planted(exports, "fp8-trt", tmp_path)
    edit_json(path / "config.json",
              lambda c: c["mapping"].update(world_size=2, tp_size=2))
    rejects(path, "trtllm-checkpoint", source,
            "rank1.safetensors: missing (mapping.world_size is 2)")
    (path / "rank0.safetensors").unlink()
    rejects(path, "trtllm-checkpoint", source, "rank0.safetensors: missing")


def test_wrong_qkv_shape(exports, source, tmp_path):
    from safetensors.torch import load_file, save_file

    path = planted(exports, "fp8-trt", tmp_path)
    tensors = load_file(path / "rank0.safetensors")
    name = "transformer.layers.1.attention.qkv.weight"
    tensors[name] = tensors[name][:192].contiguous()  # drops the V heads' rows
    save_file(tensors, path / "rank0.safetensors")
    rejects(path, "trtllm-checkpoint", source,
            f"{name} has shape [192, 128], expected [256, 128] from the model geometry")


def test_wrong_q_proj_shape_in_the_unified_checkpoint(exports, source, tmp_path):
    from safetensors.torch import load_file, save_file

    path = planted(exports, "sq-hf", tmp_path)
    tensors = load_file(path / "model.safetensors")
    name = "model.layers.0.self_attn.q_proj.weight"
    tensors[name] = tensors[name][:, :64].contiguous()
    save_file(tensors, path / "model.safetensors")
    rejects(path, "modelopt-hf", source, f"{name} has shape [128, 64], expected [128, 128]")


def test_truncated_file(exports, source, tmp_path):
    path = planted(exports, "fp8-trt", tmp_path)
    rank0 = path / "rank0.safetensors"
    with rank0.open("r+b") as fh:
        fh.truncate(rank0.stat().st_size // 2)
    rejects(path, "trtllm-checkpoint", source, "rank0.safetensors: truncated safetensors file")


def test_missing_required_config_key(exports, source, tmp_path):
    path = planted(exports, "sq-trt", tmp_path)
    edit_json(path / "config.json", lambda c: c.pop("hidden_act"))
    rejects(path, "trtllm-checkpoint", source, "missing required keys ['hidden_act']")


def test_every_problem_is_reported_at_once(exports, source, tmp_path):
    path = planted(exports, "fp8-trt", tmp_path)
    edit_json(path / "config.json", lambda c: (c["quantization"].update(quant_algo="NOPE"),
                                               c["mapping"].update(world_size=2, tp_size=2)))
    message = rejects(path, "trtllm-checkpoint", source, "'NOPE'", "rank1.safetensors")
    assert message.count("\n  ") >= 2


def test_dense_and_compressed_tensors_checkpoints(tiny_model, tmp_path):
    assert validate(tiny_model)["kind"] == "hf"
    broken = Path(shutil.copytree(tiny_model, tmp_path / "m"))
    edit_json(broken / "config.json", lambda c: c.update(num_hidden_layers=3))
    rejects(broken, "hf", None, "config says num_hidden_layers 3")
