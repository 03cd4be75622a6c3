"""The modelopt method on the tiny model: FP8 (+ FP8 KV cache), INT8 SmoothQuant, INT4 and
W4A8 AWQ.

Real ModelOpt 0.47 calibration in fp32 on CPU, the fake-quantized checkpoint reloaded with its
quantizers, and both exports checked by the offline validator.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from quench.checkpoints.validate import CheckpointError, validate
from quench.methods import get_method
from quench.models import load_model, load_tokenizer
from tests.checkpoints.modelopt_helpers import export, quantize

PROMPT = "Once upon a time, there was a little girl named Lily. She liked to play outside."
EXPECTED = {"FP8": ("FP8", "FP8"), "INT8_SQ": ("W8A8_SQ_PER_CHANNEL", None),
            "INT4_AWQ": ("W4A16_AWQ", None), "W4A8_AWQ": ("W4A8_AWQ", None)}


@pytest.fixture(scope="module")
def quantized(tmp_path_factory, mirror, tiny_model) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("modelopt")
    return {scheme: quantize(scheme, mirror, tiny_model, root / scheme)[0]
            for scheme in EXPECTED}


def _loss(model, tokenizer) -> float:
    ids = tokenizer(PROMPT, return_tensors="pt").input_ids
    with torch.no_grad():
        return float(model(ids, labels=ids).loss)


@pytest.mark.parametrize("scheme", list(EXPECTED))
def test_reload_keeps_the_quantizers(quantized, tiny_model, scheme):
    """Reloaded with ModelOpt's state the model is quantized, close to but not the original."""
    tokenizer = load_tokenizer(tiny_model)
    base = _loss(load_model(tiny_model, "float32"), tokenizer)
    model = load_model(quantized[scheme], "float32")
    loss = _loss(model, tokenizer)
    assert loss != base  # a dense reload would give exactly the original loss
    assert abs(loss - base) / base < 0.2
    algo, kv = EXPECTED[scheme]
    details = get_method("modelopt").format_details(model)
    assert (details["quant_algo"], details["kv_cache_scheme"]) == (algo, kv)
    assert "lm_head" in details["ignore"]


@pytest.mark.parametrize("scheme", list(EXPECTED))
def test_unified_hf_export_is_accepted(quantized, tiny_model, tmp_path, scheme):
    out = export(quantized[scheme], tmp_path / "hf", "modelopt-hf", scheme)
    source = json.loads((tiny_model / "config.json").read_text())
    facts = validate(out, "modelopt-hf", source)
    assert facts["quant_algo"] == EXPECTED[scheme][0]
    assert facts["kv_cache_quant_algo"] == EXPECTED[scheme][1]
    assert (out / "tokenizer.json").is_file()
    if scheme in ("INT4_AWQ", "W4A8_AWQ"):
        assert facts["group_size"] == 128


@pytest.mark.parametrize("scheme", ["FP8", "INT8_SQ"])
def test_trtllm_checkpoint_export_is_accepted(quantized, tiny_model, tmp_path, scheme):
    out = export(quantized[scheme], tmp_path / "trt", "trtllm-checkpoint", scheme)
    facts = validate(out, "trtllm-checkpoint", json.loads((tiny_model / "config.json")
                                                          .read_text()))
    assert facts["quant_algo"] == EXPECTED[scheme][0]
    assert facts["files"] == ["rank0.safetensors"]


@pytest.mark.parametrize("scheme", ["INT4_AWQ", "W4A8_AWQ"])
def test_awq_trtllm_checkpoint_export_is_accepted(quantized, tiny_model, tmp_path, scheme):
    out = export(quantized[scheme], tmp_path / "trt", "trtllm-checkpoint", scheme)
    source = json.loads((tiny_model / "config.json").read_text())
    assert validate(out, "trtllm-checkpoint", source)["quant_algo"] == EXPECTED[scheme][0]


def test_a_second_export_from_the_same_model_is_caught(quantized, tiny_model, tmp_path):
    """export_hf_checkpoint packs the int4 weights in place, so a TensorRT-LLM export of the
    same in-memory model takes head_size from the packed q weight (8, not 16). The validator
    rejects it; the export stage writes each format from a freshly restored model."""
    from modelopt.torch.export import export_hf_checkpoint, export_tensorrt_llm_checkpoint

    model = load_model(quantized["INT4_AWQ"], "float32")
    with torch.inference_mode():
        export_hf_checkpoint(model, dtype=torch.float16, export_dir=tmp_path / "hf")
        export_tensorrt_llm_checkpoint(model, "llama", torch.float16,
                                       export_dir=tmp_path / "trt", inference_tensor_parallel=1)
    source = json.loads((tiny_model / "config.json").read_text())
    with pytest.raises(CheckpointError, match="head_size 8 disagrees with the source model's 16"):
        validate(tmp_path / "trt", "trtllm-checkpoint", source)


def test_awq_group_size_option_reaches_modelopt(mirror, tiny_model):
    from quench.methods.modelopt import ModelOptOptions, _import, quant_config

    mtq = _import("modelopt.torch.quantization")
    options = ModelOptOptions(kv_cache=True, group_size=64, awq="awq_lite",
                              ignore=["*down_proj*"])
    config = quant_config(mtq, "INT4_AWQ", options)
    weights = [e for e in config["quant_cfg"] if e.get("quantizer_name") == "*weight_quantizer"]
    assert weights[0]["cfg"]["block_sizes"][-1] == 64
    assert config["quant_cfg"][-1] == {"quantizer_name": "*down_proj*", "enable": False}
    assert any(e.get("quantizer_name") == "*[kv]_bmm_quantizer" for e in config["quant_cfg"])
    assert mtq.INT4_AWQ_CFG["quant_cfg"] is not config["quant_cfg"]  # ModelOpt's stays intact


def test_w4a8_awq_keeps_the_group_size_in_its_int4_stage(mirror, tiny_model):
    """W4A8_AWQ's weight quantizer is two stages (int4 in blocks, then FP8): group_size sets
    the int4 one, and the AWQ search is the recipe's."""
    from quench.methods.modelopt import ModelOptOptions, _import, quant_config

    mtq = _import("modelopt.torch.quantization")
    config = quant_config(mtq, "W4A8_AWQ", ModelOptOptions(group_size=64, awq="awq_clip"))
    weights = next(e for e in config["quant_cfg"] if e.get("quantizer_name") ==
                   "*weight_quantizer")
    assert weights["cfg"][0]["block_sizes"][-1] == 64
    assert tuple(weights["cfg"][1]["num_bits"]) == (4, 3)
    assert config["algorithm"]["method"] == "awq_clip"
    assert mtq.W4A8_AWQ_BETA_CFG["quant_cfg"][1]["cfg"][0]["block_sizes"][-1] == 128
