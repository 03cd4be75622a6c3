"""Fails once compressed-tensors decompresses FP4 weights to the model's dtype: then drop
quench.models.fp4_decompress_dtype_workaround."""

from __future__ import annotations

import torch


def test_fp4_checkpoints_still_decompress_to_bfloat16():
    from compressed_tensors.compressors.mxfp4 import MXFP4PackedCompressor
    from compressed_tensors.compressors.nvfp4 import NVFP4PackedCompressor
    from compressed_tensors.quantization import preset_name_to_scheme

    rows, cols = 4, 32
    packed = torch.randint(0, 255, (rows, cols // 2), dtype=torch.uint8)
    nv = {"weight_packed": packed, "weight_global_scale": torch.tensor([448.0 * 6.0]),
          "weight_scale": torch.ones(rows, cols // 16).to(torch.float8_e4m3fn)}
    mx = {"weight_packed": packed, "weight_scale": torch.full((rows, cols // 32), 127,
                                                             dtype=torch.uint8)}
    for compressor, state, preset in ((NVFP4PackedCompressor, nv, "NVFP4A16"),
                                      (MXFP4PackedCompressor, mx, "MXFP4A16")):
        scheme = preset_name_to_scheme(preset, ["Linear"])
        weight = compressor.decompress(state, scheme)["weight"]
        assert weight.dtype == torch.bfloat16, (
            f"{preset} now decompresses to {weight.dtype}: the FP4 reload-dtype workaround in "
            "quench/models.py may be dropped")


def test_the_workaround_gives_a_float32_model_float32_weights(mirror, tmp_path):
    from llmcompressor import oneshot
    from llmcompressor.modifiers.quantization import QuantizationModifier
    from transformers import AutoModelForCausalLM

    from quench.models import load_model

    model = AutoModelForCausalLM.from_pretrained(mirror / "models" / "tinystories-656k",
                                                 dtype=torch.float32)
    oneshot(model=model, recipe=[QuantizationModifier(targets=["Linear"], scheme="NVFP4A16",
                                                      ignore=["lm_head"])])
    model.save_pretrained(tmp_path, save_compressed=True)
    reloaded = load_model(tmp_path, "float32")
    assert {p.dtype for p in reloaded.parameters()} == {torch.float32}
    with torch.no_grad():
        assert torch.isfinite(reloaded(torch.tensor([[1, 5, 9]])).logits).all()
