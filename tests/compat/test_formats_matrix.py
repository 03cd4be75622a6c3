"""FP4, block-wise FP8 and W4A8 recipes: accepted where an engine loads them, else refused with
the alternative named."""

from __future__ import annotations

import pytest

from quench import compat
from quench.recipe import load_recipe

from ..conftest import REPO, run_quench

RECIPES = REPO / "recipes"


def verdict(recipe: str, engine: str, gpu: str, *extra: str) -> compat.Verdict:
    return compat.check(load_recipe(RECIPES / f"tinystories-{recipe}.yaml",
                                    [f"target.engine={engine}", f"target.gpu={gpu}", *extra]))


# (recipe, engine, gpu) -> accepted without warning
OK = [("nvfp4", "vllm", "B200"), ("nvfp4a16", "vllm", "H100"), ("nvfp4a16", "vllm", "A100"),
      ("mxfp4", "vllm", "B200"), ("mxfp4a16", "vllm", "L4"), ("fp8-block", "vllm", "H100"),
      ("fp8-block", "vllm", "L40S"), ("w4afp8", "vllm", "H100"),
      ("nvfp4", "tensorrt-llm", "B200"), ("fp8-block", "tensorrt-llm", "H200")]
# (recipe, engine, gpu) -> a phrase of the warning
WARN = [("nvfp4", "vllm", "H100", "weight-only"), ("mxfp4", "vllm", "A100", "Marlin"),
        ("fp8-block", "vllm", "A100", "W8A16"), ("fp8-block", "vllm", "cpu", "AMX"),
        ("w4a8", "vllm", "cpu", "accelerated on Arm")]
# (recipe, engine, gpu) -> the alternative the refusal must name
REJECT = [("nvfp4", "vllm", "cpu", "gptq or awq W4A16"),
          ("nvfp4a16", "vllm", "cpu", "gptq or awq W4A16"),
          ("mxfp4", "vllm", "cpu", "smoothquant W8A8"),
          ("mxfp4a16", "vllm", "T4", "gptq W4A16"),
          ("w4afp8", "vllm", "B200", "fp8 FP8_DYNAMIC"),
          ("w4afp8", "vllm", "A100", "gptq W4A16"),
          ("w4afp8", "vllm", "cpu", "gptq W4A16"),
          ("w4a8", "vllm", "H100", "smoothquant W8A8"),
          ("nvfp4", "tensorrt-llm", "H100", "fp8 FP8_BLOCK"),
          ("fp8-block", "tensorrt-llm", "A100", "target.engine vllm"),
          ("nvfp4a16", "tensorrt-llm", "B200", "fp4 NVFP4 (Blackwell)"),
          ("w4a8", "tensorrt-llm", "H100", "target.engine vllm")]


@pytest.mark.parametrize(("recipe", "engine", "gpu"), OK)
def test_supported_targets_are_accepted(recipe, engine, gpu):
    v = verdict(recipe, engine, gpu)
    assert v.errors == [] and v.warnings == [], (v.errors, v.warnings)
    assert v.rule["source"].startswith("https://")


@pytest.mark.parametrize(("recipe", "engine", "gpu", "phrase"), WARN)
def test_fallbacks_warn(recipe, engine, gpu, phrase):
    v = verdict(recipe, engine, gpu)
    assert v.errors == [] and any(phrase in w for w in v.warnings), v.warnings


@pytest.mark.parametrize(("recipe", "engine", "gpu", "alternative"), REJECT)
def test_unsupported_targets_are_refused_with_the_alternative(recipe, engine, gpu, alternative):
    v = verdict(recipe, engine, gpu)
    assert len(v.errors) == 1 and alternative in v.errors[0], v.errors
    assert "[https://" in v.errors[0]  # the cited source


def test_quench_validate_exits_2_naming_the_alternative():
    result = run_quench("validate", str(RECIPES / "tinystories-nvfp4.yaml"),
                        "target.engine=vllm", "target.gpu=cpu")
    assert result.returncode == 2
    assert "no NVFP4 or MXFP4 linear kernel for CPU" in result.stderr
    assert "gptq or awq W4A16" in result.stderr


@pytest.mark.parametrize("example", ["llama31-8b-nvfp4-b200", "llama31-8b-fp8-block-h100",
                                     "llama31-8b-w4afp8-h100"])
def test_real_gpu_examples_validate(example):
    result = run_quench("validate", str(RECIPES / "examples" / f"{example}.yaml"))
    assert result.returncode == 0, result.stderr
    assert "error" not in result.stderr.lower()


def test_fp8_blocks_that_do_not_tile_the_merged_matrices_are_refused_for_vllm(mirror):
    """TinyStories' k/v projections (4 heads x 16 = 64 rows) are half a 128-row block."""
    result = run_quench("validate", str(RECIPES / "tinystories-fp8-block.yaml"),
                        "target.engine=vllm", "target.gpu=H100")
    assert result.returncode == 2
    assert "num_key_value_heads * head_dim (64)" in result.stderr
    assert "use scheme FP8_DYNAMIC" in result.stderr
    assert run_quench("validate", str(RECIPES / "tinystories-fp8-block.yaml")).returncode == 0


def test_fp8_blocks_need_whole_activation_groups(tmp_path):
    """SmolLM2's hidden_size 576 is 4.5 groups of 128: the reloaded model's forward fails."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(
        '{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 576, '
        '"intermediate_size": 1536, "num_attention_heads": 9, "num_key_value_heads": 3, '
        '"num_hidden_layers": 2, "vocab_size": 2048}')
    result = run_quench("validate", str(RECIPES / "tinystories-fp8-block.yaml"),
                        f"model.id={model}")
    assert result.returncode == 2
    assert "hidden_size (576) to be a multiple of 128" in result.stderr
    assert "use scheme FP8_DYNAMIC" in result.stderr
