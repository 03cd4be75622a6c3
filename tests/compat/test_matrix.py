"""The compatibility matrix: impossible targets are refused before any calibration."""

from __future__ import annotations

import pytest

from quench import compat
from quench.errors import RecipeError
from quench.methods import get_method, method_names
from quench.preflight import check_recipe
from quench.recipe import load_recipe

from ..conftest import REPO, run_quench

RECIPES = REPO / "recipes"


def verdict(recipe: str, *overrides: str) -> compat.Verdict:
    return compat.check(load_recipe(RECIPES / recipe, list(overrides)))


def test_compressed_tensors_int8_w8a8_is_rejected_for_the_pytorch_backend():
    v = verdict("tinystories-smoothquant-w8a8.yaml", "target.engine=tensorrt-llm",
                "target.gpu=H100")
    assert len(v.errors) == 1
    error = v.errors[0]
    assert "INT8 W8A8 (SmoothQuant) cannot load" in error
    assert "modelopt with scheme INT8_SQ and target.backend tensorrt" in error
    assert "target.engine vllm" in error
    assert "quant_config_utils.py" in error  # the cited source


def test_fp8_on_ampere_warns_of_the_weight_only_fallback():
    v = verdict("tinystories-fp8-dynamic.yaml", "target.engine=vllm", "target.gpu=A100")
    assert v.errors == []
    assert any("weight-only fallback" in w and "W8A16" in w for w in v.warnings)


def test_fp8_on_vllm_for_cpu_is_rejected():
    for recipe in ("tinystories-fp8-dynamic.yaml", "tinystories-fp8-static.yaml"):
        v = verdict(recipe, "target.engine=vllm", "target.gpu=cpu")
        assert len(v.errors) == 1 and "FP8 W8A8 needs an NVIDIA GPU" in v.errors[0]


def test_fp8_on_ampere_is_rejected_by_tensorrt_llm():
    v = verdict("tinystories-modelopt-fp8.yaml", "target.gpu=A10G")
    assert "no FP8 tensor cores before Ada" in v.errors[0]


def test_int8_smoothquant_needs_the_legacy_engine():
    v = verdict("tinystories-modelopt-int8-sq.yaml", "target.backend=pytorch")
    assert "set target.backend tensorrt" in v.errors[0]
    ok = verdict("tinystories-modelopt-int8-sq.yaml")
    assert ok.errors == [] and any("legacy" in w for w in ok.warnings)
    assert ok.cell.format == "trtllm-checkpoint"


def test_modelopt_int8_and_int4_are_refused_by_vllm():
    for recipe in ("tinystories-modelopt-int8-sq.yaml", "tinystories-modelopt-int4-awq.yaml"):
        v = verdict(recipe, "target.engine=vllm", "target.backend=null", "target.gpu=H100")
        assert "vLLM loads ModelOpt checkpoints only with quant_algo FP8" in v.errors[0]


def test_bundled_targets_are_accepted():
    for recipe, fmt in (("tinystories-modelopt-fp8.yaml", "modelopt-hf"),
                        ("tinystories-modelopt-int4-awq.yaml", "modelopt-hf"),
                        ("examples/llama31-8b-trtllm-fp8-h100.yaml", "modelopt-hf"),
                        ("examples/llama31-8b-trtllm-int8-sq-a100.yaml", "trtllm-checkpoint"),
                        ("examples/llama31-8b-trtllm-int4-awq-l4.yaml", "modelopt-hf"),
                        ("tinystories-vllm.yaml", "compressed-tensors")):
        v = verdict(recipe)
        assert v.errors == [] and v.cell.format == fmt, (recipe, v)


def test_gpu_names_map_to_architectures():
    expected = {"T4": "turing", "A100": "ampere", "a10g": "ampere", "L4": "ada", "L40S": "ada",
                "H100": "hopper", "H200": "hopper", "B200": "blackwell", "cpu": "cpu",
                "RTX 4090": "ada", "A100-80G": "ampere", "V100X": None}
    assert {gpu: compat.gpu_arch(gpu) for gpu in expected} == expected


def test_plan_sizes_gpus_of_the_one_table():
    """quench plan's GPUs are the memory variants of matrix.yaml's gpus, never a second list."""
    from quench import plan

    assert [g.name for g in plan.GPUS] == ["T4", "L4", "A10G", "A100-40G", "A100-80G", "H100",
                                           "H200"]
    assert all(compat.gpu_arch(g.name) == g.arch for g in plan.GPUS)
    assert {g.name: g.compute for g in plan.GPUS}["L4"] == 8.9


def test_every_rule_cites_its_source_and_every_method_is_mapped():
    m = compat.matrix()
    families = {quant for schemes in m["methods"].values() for _, quant in schemes.values()}
    for rule in m["rules"]:
        assert rule["verdict"] in ("ok", "warn", "reject") and rule["source"].strip(), rule
        assert set(rule.get("quant") or []) <= families, rule
        assert set(rule.get("arch") or []) <= {g["arch"] for g in m["gpus"].values()}, rule
    for name in method_names():
        if name == "llmcompressor":  # a raw recipe: its format is unknown in advance
            continue
        assert set(get_method(name).schemes) <= set(m["methods"][name]), name


def test_preflight_refuses_before_anything_runs(tmp_path, mirror):
    recipe = load_recipe(RECIPES / "tinystories-smoothquant-w8a8.yaml",
                         [f"output.dir={tmp_path}", "target.engine=tensorrt-llm"])
    with pytest.raises(RecipeError, match="INT8 W8A8 .SmoothQuant. cannot load"):
        check_recipe(recipe)
    result = run_quench("run", str(RECIPES / "tinystories-fp8-dynamic.yaml"),
                        f"output.dir={tmp_path}", "target.engine=vllm", "target.gpu=cpu")
    assert result.returncode == 2
    assert "FP8 W8A8 needs an NVIDIA GPU" in result.stderr
    assert not (tmp_path / "cache").exists()  # nothing calibrated, nothing cached


def test_unknown_gpu_backend_and_options_are_named(mirror):
    with pytest.raises(RecipeError) as info:
        check_recipe(load_recipe(RECIPES / "tinystories-modelopt-fp8.yaml", [
            "target.gpu=X1", "target.backend=onnx", "target.options.max_seq_len=100",
            "target.options.colour=red"]), for_run=False)
    message = str(info.value)
    assert "target.gpu: unknown GPU 'X1'" in message
    assert "target.backend: 'onnx' is not a backend of tensorrt-llm" in message
    assert "target.options.colour: unknown option" in message
