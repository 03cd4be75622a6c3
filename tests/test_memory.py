"""Predicted peak memory per step (`quench plan`) and the pre-flight that refuses a misfit."""

from __future__ import annotations

import json
import re

import pytest

from quench import stage_memory as memory
from quench.errors import RecipeError
from quench.geometry import Geometry
from quench.memory_fit import check_fits
from quench.methods import get_method
from quench.plan import KNOWN_SHAPES, plan, render
from quench.preflight import check_recipe
from quench.recipe import load_recipe
from tests.conftest import DEFAULT_RECIPE, REPO, run_quench

EIGHT_B = REPO / "recipes" / "examples" / "llama31-8b-int4-awq.yaml"
LLAMA_8B = Geometry.for_sizing(KNOWN_SHAPES["llama-3.1-8b"])


def test_plan_of_an_8b_recipe_prints_every_steps_memory(mirror):
    result = run_quench("plan", str(EIGHT_B))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Running this recipe on cpu (predicted peak per stage):" in out
    for step in ("quantize", "evaluate"):
        assert any(line.startswith(step) and "GiB" in line for line in out.splitlines()), out
    table = plan(load_recipe(EIGHT_B, ["quantization.method=gptq",
                                       "quantization.scheme=W4A16"]))
    steps = {s["step"]: s for s in table["run_memory"]["steps"]}
    # one dense bf16 copy of 8.03 B parameters, and not two
    assert 15 < steps["quantize"]["host_gib"] < 2 * 15, steps


def test_each_method_adds_its_own_working_set(mirror):
    """GPTQ: a layer's Hessians; AWQ: float32 layer copies and its cached mapping inputs,
    which grow with the calibration set; RTN: neither."""
    def working_set(*overrides: str) -> float:
        recipe = load_recipe(EIGHT_B, ["model.dtype=bfloat16", *overrides])
        q = recipe.quantization
        work = get_method(q.method).working_set(q.scheme, q.options)
        return memory.method_bytes(work, recipe, LLAMA_8B)

    assert working_set("quantization.method=rtn", "quantization.scheme=W4A16") == 0
    assert working_set("quantization.method=gptq", "quantization.scheme=W4A16") == \
        memory.HESSIAN_COPIES * memory.gptq_hessian_bytes(LLAMA_8B)
    small = working_set("calibration.num_samples=16", "calibration.max_seq_length=512")
    large = working_set("calibration.num_samples=256", "calibration.max_seq_length=2048")
    tokens = 256 * 2048 - 16 * 512  # (4 x hidden + intermediate) bf16 inputs per token
    assert large - small == pytest.approx(tokens * (4 * 4096 + 14336) * 2, rel=1e-6)


def test_run_refuses_a_recipe_that_cannot_fit_with_the_numbers(mirror):
    recipe = load_recipe(EIGHT_B, ["model.dtype=float32"])
    with pytest.raises(RecipeError, match=r"quantize needs ~\d+\.\d GiB of host RAM, this "
                                          r"machine has \d+\.\d GiB"):
        check_recipe(recipe, for_run=True)
    warnings = check_recipe(recipe, for_run=False)  # validate: may be meant for a bigger host
    assert any(w.startswith("compute.check_memory: the recipe does not fit") for w in warnings)
    assert not any("check_memory" in w for w in check_recipe(
        load_recipe(EIGHT_B, ["model.dtype=float32", "compute.check_memory=false"]),
        for_run=False))


def test_cli_run_exits_2_before_any_work(mirror, tmp_path):
    result = run_quench("run", str(EIGHT_B), "model.dtype=float32", f"output.dir={tmp_path}")
    assert result.returncode == 2, result.stderr
    assert "compute.check_memory" in result.stderr and not any(tmp_path.iterdir())


def test_tiny_recipe_fits_and_is_predicted_small(mirror):
    table = plan(load_recipe(DEFAULT_RECIPE), 1, 256)
    steps = table["run_memory"]["steps"]
    assert all(s["host_gib"] < 2 for s in steps), json.dumps(steps)
    check_recipe(load_recipe(DEFAULT_RECIPE))  # does not raise
    assert "Running this recipe on cpu" in render(table)


def test_a_recipe_too_big_for_the_host_is_told_the_offload_settings_that_fit(mirror, tmp_path):
    gptq = ["quantization.method=gptq", "quantization.scheme=W4A16", "model.dtype=float32"]
    with pytest.raises(RecipeError, match=r"With disk offload it fits: compute.offload_folder: "
                                          r".* compute.max_cpu_memory: (\d+)MiB") as info:
        check_recipe(load_recipe(EIGHT_B, gptq), for_run=True)
    budget = re.search(r"compute.max_cpu_memory: (\d+MiB)", str(info.value))[1]
    advised = load_recipe(EIGHT_B, [*gptq, f"compute.offload_folder={tmp_path}",
                                    f"compute.max_cpu_memory={budget}"])
    check_fits(advised, LLAMA_8B)  # does not raise: every stage fits now
    text = render(plan(load_recipe(EIGHT_B, gptq)))
    assert "With disk offload it fits" in text, text


def test_offloaded_peak_does_not_grow_with_the_number_of_layers(mirror, tmp_path):
    """A fixed compute.max_cpu_memory: the peak is the budget plus one module read back from
    disk, whatever the model's depth; a compressed checkpoint is read one shard at a time (its
    budget holds compressed modules, a little more once dequantized)."""
    recipe = load_recipe(EIGHT_B, ["quantization.method=gptq", "quantization.scheme=W4A16",
                                   f"compute.offload_folder={tmp_path}",
                                   "compute.max_cpu_memory=1GiB"])
    shapes = [Geometry.for_sizing({**KNOWN_SHAPES["llama-3.1-8b"], "num_hidden_layers": n})
              for n in (8, 80)]
    shallow, deep = ({s.step: s.host_bytes for s in memory.predict(recipe, shape, "cpu")}
                     for shape in shapes)
    assert shallow["baseline_eval"] == deep["baseline_eval"]
    assert shallow["quantize"] == pytest.approx(deep["quantize"], rel=0.02)
    assert shallow["evaluate"] <= deep["evaluate"] < 1.05 * shallow["evaluate"]
    assert all(peak < 0.5 * memory.sizes(recipe, shapes[1]).model for peak in deep.values())
