"""Sizing of FP4 (NVFP4, MXFP4), block-wise FP8 and W4A8 from what compressed-tensors stores."""

from __future__ import annotations

import pytest

from quench import plan
from quench.geometry import Geometry
from quench.methods import get_method
from quench.recipe import load_recipe
from tests.conftest import REPO

LLAMA = Geometry.for_sizing(plan.KNOWN_SHAPES["llama-3.1-8b"])


def scheme(method: str, name: str, **options: object) -> plan.Scheme:
    m = get_method(method)
    return plan.Scheme.of(name, m.storage(name, m.parse_options(options)))


@pytest.mark.parametrize(("method", "name", "bits"), [
    ("fp4", "NVFP4", 4 + 8 / 16),  # E2M1 + one FP8 E4M3 scale per 16
    ("fp4", "NVFP4A16", 4 + 8 / 16),
    ("fp4", "MXFP4", 4 + 8 / 32),  # E2M1 + one E8M0 exponent byte per 32
    ("fp4", "MXFP4A16", 4 + 8 / 32),
    ("fp8", "FP8_BLOCK", 8 + 32 / (128 * 128)),  # E4M3 + a float32 scale per 128x128 block
    ("w4a8", "W4AFP8", 4 + 16 / 128),  # int4 + a 16-bit scale per 128
    ("w4a8", "W4A8", 4 + 16 / 128),
])
def test_bits_per_weight(method, name, bits):
    assert scheme(method, name).bits_per_weight(2) == pytest.approx(bits)


def test_nvfp4_adds_its_per_tensor_global_scales():
    """float32 weight_global_scale (+ input_global_scale for W4A4) per quantized Linear."""
    base = LLAMA.linear_params * 4.5 / 8 + LLAMA.other_params * 2
    w4a4 = plan.estimate(LLAMA, scheme("fp4", "NVFP4"), 2, 1, 128, 0).weights_bytes
    w4a16 = plan.estimate(LLAMA, scheme("fp4", "NVFP4A16"), 2, 1, 128, 0).weights_bytes
    mx = plan.estimate(LLAMA, scheme("fp4", "MXFP4"), 2, 1, 128, 0).weights_bytes
    assert w4a4 == pytest.approx(base + 32 * 7 * 8)
    assert w4a16 == pytest.approx(base + 32 * 7 * 4)
    assert mx == pytest.approx(LLAMA.linear_params * 4.25 / 8 + LLAMA.other_params * 2)


def test_compute_needs_of_the_activation_formats():
    assert scheme("fp4", "NVFP4").min_compute == 10.0
    assert scheme("fp4", "NVFP4A16").min_compute == 0.0
    assert scheme("fp8", "FP8_BLOCK").min_compute == 8.9
    assert scheme("w4a8", "W4AFP8").min_compute == 8.9
    assert scheme("w4a8", "W4A8").min_compute == 0.0


def test_kv_cache_option_sizes_an_fp8_kv_cache_on_every_method():
    for method, name in [("rtn", "W4A16"), ("gptq", "W4A16"), ("awq", "W4A16_ASYM"),
                         ("smoothquant", "W8A8"), ("fp8", "FP8_BLOCK"), ("fp4", "NVFP4A16"),
                         ("w4a8", "W4A8")]:
        m = get_method(method)
        on = m.parse_options({"kv_cache": True})
        assert m.storage(name, on).kv_cache_dtype == "fp8", method
        assert m.needs_calibration(name, on), method  # K/V scales are calibrated
        assert m.storage(name, m.parse_options({})).kv_cache_dtype is None


def test_plan_sizes_an_nvfp4_recipe_and_marks_gpus_without_fp4_compute():
    recipe = load_recipe(REPO / "recipes" / "examples" / "llama31-8b-nvfp4-b200.yaml")
    p = plan.plan(recipe, batch=1, seq_len=128)
    assert p["scheme"] == "NVFP4 + FP8 KV" and p["scheme_min_compute"] == 10.0
    assert not any(r["compute_ok"] for r in p["gpus"])  # no Blackwell among the sized GPUs
    assert "no FP4 compute" in plan.render(p)
