"""quench plan: memory predictions checked against hand-computed numbers for known configs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from quench import plan
from quench.geometry import Geometry
from quench.recipe import load_recipe
from tests.conftest import REPO, run_quench

EXAMPLES = REPO / "recipes" / "examples"
GIB = 1024**3
# Llama-3.1-8B (config.json): hidden 4096, 32 layers, 32 heads, 8 KV heads (head_dim 128),
# MLP 14336, vocab 128256, untied lm_head.
#   attention per layer: 4096 * 128 * (2*32 + 2*8) = 41,943,040
#   MLP per layer:       3 * 4096 * 14336          = 176,160,768
#   linear: 32 * 218,103,808 = 6,979,321,856; embeddings + lm_head 2 * 128256 * 4096
#   = 1,050,673,152; norms (2*32 + 1) * 4096 = 266,240 -> 8,030,261,248 parameters.
LLAMA_LINEAR, LLAMA_OTHER = 6_979_321_856, 1_050_939_392


def test_llama_8b_parameters_from_the_shape():
    shape = Geometry.for_sizing(plan.KNOWN_SHAPES["llama-3.1-8b"])
    assert (shape.linear_params, shape.other_params) == (LLAMA_LINEAR, LLAMA_OTHER)


def test_bf16_weights_and_kv_cache_by_hand():
    shape = Geometry.for_sizing(plan.KNOWN_SHAPES["llama-3.1-8b"])
    est = plan.estimate(shape, plan.Scheme("bf16", None), 2, batch=16, seq_len=4096, margin=0.2)
    assert est.weights_bytes == 16_060_522_496  # 8,030,261,248 * 2
    # 16 * 4096 * 32 layers * 2 (K, V) * 4096 hidden * 2 bytes / (32 / 8) = 8 GiB
    assert est.kv_bytes == 8 * GIB
    assert est.total_bytes == pytest.approx((16_060_522_496 + 8 * GIB) * 1.2)


def test_int4_awq_weights_and_fp8_kv_by_hand():
    shape = Geometry.for_sizing(plan.KNOWN_SHAPES["llama-3.1-8b"])
    awq = plan.estimate(shape, plan.INT4, 2, batch=1, seq_len=1, margin=0)
    # 4 bits + a 16-bit scale and a 4-bit zero point per group of 128: 4.15625 bits per weight
    assert awq.weights_bytes == 6_979_321_856 * 4.15625 / 8 + LLAMA_OTHER * 2
    fp8 = plan.estimate(shape, plan.FP8, 2, batch=8, seq_len=1024, margin=0)
    assert fp8.weights_bytes == LLAMA_LINEAR + LLAMA_OTHER * 2
    assert fp8.kv_bytes == 8 * 1024 * 32 * 2 * 4096 * 1 / 4  # FP8 KV: 1 byte, 512 MiB


def test_tinystories_shape_from_its_config(tiny_model):
    recipe = load_recipe(REPO / "recipes" / "tinystories-vllm.yaml")
    shape, source = plan.model_shape(recipe)
    assert Path(source).resolve() == (tiny_model / "config.json").resolve()
    # 2 * (128*16*(16+8) + 3*128*384) = 393,216 linear; 2048*128 tied + 5*128 norms = 262,784
    assert (shape.linear_params, shape.other_params) == (393_216, 262_784)  # 656,000 total
    # batch 4 x 96 tokens x 2 layers x 2 x 128 hidden x 2 bytes (served bf16) / (8 / 4)
    assert plan.kv_cache_bytes(shape, 4, 96, 2) == 196_608


def test_recommendations_follow_the_decision_tree():
    recipe = load_recipe(EXAMPLES / "llama31-8b-fp8-h100.yaml")
    rows = {r["gpu"]: r for r in plan.plan(recipe, batch=16, seq_len=4096)["gpus"]}
    assert rows["H100"]["recommended"] == rows["L4"]["recommended"] == plan.FP8.label
    assert rows["A100-80G"]["recommended"] == rows["A10G"]["recommended"] == plan.INT8.label
    # T4, 16 GiB / 1.2 = 13.33 GiB: INT8 weights 8.46 GiB leave room for 9 sequences of
    # 0.5 GiB (bf16 KV, 4096 tokens); INT4 weights 5.33 GiB for 15: INT4 at batch <= 15.
    assert rows["T4"]["recommended"] == plan.INT4.label
    assert rows["T4"]["recommended_max_batch"] == 15
    # This recipe (FP8 + FP8 KV): (8,030,261,248 + 1,050,939,392 bytes + 4 GiB) * 1.2 = 14.95 GiB
    assert [r["gpu"] for r in rows.values() if not r["fits"]] == []
    assert rows["H100"]["max_batch"] == int((80 * GIB / 1.2 - 9_081_200_640) // (256 * 2**20))


def test_plan_cli_prints_the_table_and_overrides_prices():
    result = run_quench("plan", str(EXAMPLES / "llama31-8b-int8-sq-a100.yaml"),
                        "cost.gpu_usd_per_hour={A10G: 0.5}", "--batch", "8", "--seq-len", "4096")
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
    assert "weights 8.46 GiB + KV cache 4.00 GiB, +20% margin = 14.95 GiB" in result.stdout
    assert " 0.50 " in lines["A10G"] and "fits" in lines["A10G"]
    assert "W8A8 (SmoothQuant), 14.95 GiB" in lines["T4"]  # 9 sequences fit on T4 at INT8
    as_json = run_quench("plan", str(EXAMPLES / "llama31-8b-int8-sq-a100.yaml"), "--json")
    assert json.loads(as_json.stdout)["params"] == LLAMA_LINEAR + LLAMA_OTHER


def test_unknown_model_offline_is_a_clear_error():
    result = run_quench("plan", str(EXAMPLES / "llama31-8b-fp8-h100.yaml"),
                        "model.id=someorg/unknown-7b")
    assert result.returncode == 2
    assert "model.id: 'someorg/unknown-7b': no config.json offline" in result.stderr


def test_cost_per_million_tokens():
    assert plan.usd_per_million_tokens(3.6, 1000) == pytest.approx(1.0)  # 3.6e6 tokens/hour
    recipe = load_recipe(EXAMPLES / "llama31-8b-fp8-h100.yaml", ["cost.gpu_usd_per_hour={h100: 2}"])
    assert plan.gpu_price(recipe, "H100") == 2 and plan.gpu_price(recipe, "L4") == 0.80
    assert plan.gpu_price(recipe, "cpu") is None


def test_modelopt_int4_awq_scheme_by_hand():
    recipe = load_recipe(EXAMPLES / "llama31-8b-trtllm-int4-awq-l4.yaml")
    scheme = plan.recipe_scheme(recipe)
    est = plan.estimate(Geometry.for_sizing(plan.KNOWN_SHAPES["llama-3.1-8b"]), scheme, 2,
                        batch=1, seq_len=1, margin=0)
    # symmetric int4 in blocks of 128: 4 bits + one 16-bit scale per 128 weights = 4.125 bits
    assert est.weights_bytes == LLAMA_LINEAR * 4.125 / 8 + LLAMA_OTHER * 2


def test_cpu_hosts_size_gguf_types_as_llama_quantize_lists_them() -> None:
    """Llama-3.1-8B's files at the listing's sizes (Q8_0 7.96 GiB, Q4_K_M 4.58 GiB); the
    recommendation is the largest type that fits each host, none on a host too small."""
    from quench.geometry import Geometry
    from quench.plan import KNOWN_SHAPES
    from quench.plan_cpu import GIB, cpu_hosts, gguf_bytes

    shape = Geometry.for_sizing(KNOWN_SHAPES["llama-3.1-8b"])
    assert abs(gguf_bytes(shape, "Q8_0") / GIB - 7.96) < 0.05
    assert abs(gguf_bytes(shape, "Q4_K_M") / GIB - 4.58) < 0.05
    rows = {r["ram_gib"]: r for r in cpu_hosts(shape, batch=1, seq_len=4096, margin=0.2)}
    assert rows[8]["recommended"] == "Q4_K_M"  # Q8_0 + KV is over 8 x 0.85 GiB with the margin
    assert rows[16]["recommended"] == rows[128]["recommended"] == "Q8_0"
    assert cpu_hosts(shape, batch=64, seq_len=8192, margin=0.2)[0]["recommended"] is None
