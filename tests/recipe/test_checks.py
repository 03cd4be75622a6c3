"""Pre-flight checks: missing paths, offline misses, unwritable outputs, engines, before any
load; every check asserts the exact warnings it gets."""

import pytest

from quench.errors import RecipeError
from quench.gpu import cuda_device_count
from quench.preflight import check_recipe
from quench.recipe import load_recipe

from ..conftest import DEFAULT_RECIPE


def test_default_recipe_passes_without_warnings(mirror, tmp_path):
    assert check_recipe(load_recipe(DEFAULT_RECIPE, [f"output.dir={tmp_path}"])) == []


def test_all_problems_reported_at_once(mirror, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    recipe = load_recipe(
        DEFAULT_RECIPE,
        [f"model.id={tmp_path}/missing-model", "evaluation.perplexity.dataset=no-such-set",
         f"output.dir={blocker}/out"],
    )
    with pytest.raises(RecipeError) as info:
        check_recipe(recipe)
    text = str(info.value)
    assert f"model.id: {tmp_path}/missing-model is not a model folder" in text
    assert "evaluation.perplexity.dataset: 'no-such-set' is not a local file" in text
    assert f"output.dir: {blocker}/out is not writable" in text


def test_hub_id_missing_from_mirror_is_an_offline_error(mirror):
    recipe = load_recipe(DEFAULT_RECIPE, ["model.id=someone/not-mirrored"])
    with pytest.raises(RecipeError, match="neither a local folder nor in the mirror"):
        check_recipe(recipe)


def test_group_size_must_divide_layer_widths(mirror):
    recipe = load_recipe(DEFAULT_RECIPE, ["quantization.method=gptq",
                                          "quantization.options.group_size=96"])
    with pytest.raises(RecipeError, match=r"group_size: 96 does not divide the model's "
                                          r"hidden_size \(128\)"):
        check_recipe(recipe)


def test_too_few_calibration_records(mirror, tmp_path):
    few = tmp_path / "few.jsonl"
    few.write_text('{"text": "a"}\n{"text": "b"}\n')
    recipe = load_recipe(DEFAULT_RECIPE, ["quantization.method=gptq",
                                          f"calibration.source={few}"])
    with pytest.raises(RecipeError, match="calibration.num_samples: asked for 64, but .* only 2"):
        check_recipe(recipe)


EXAMPLES = DEFAULT_RECIPE.parent / "examples"
OFFLINE = ("not checked offline: model.id: 'meta-llama/Llama-3.1-8B-Instruct' is neither a local "
           "folder nor in the mirror ($QUENCH_MIRROR={mirror}), and HF_HUB_OFFLINE is set")
LEGACY_TRT = ("target: the TensorRT engine path (trtllm-build) is legacy in TensorRT-LLM 1.x and "
              "removed upstream after 1.2; pin a 1.2 release (or its container) for it [")
NO_GPU_TRT = ("target.engine: tensorrt-llm cannot run on this machine (no CUDA device); what "
              "needs it is recorded as skipped")


def test_example_recipes_validate_offline_with_exact_warnings(mirror):
    """Each example (memory check off: test_memory covers it) warns that its hub model is not
    mirrored, the legacy TensorRT path is named, and TensorRT-LLM is unavailable without CUDA."""
    if cuda_device_count():
        pytest.skip("the expected TensorRT-LLM warnings are those of a machine without CUDA")
    paths = sorted(EXAMPLES.glob("*.yaml"))
    # 6 + issue 17: autoround, gptq-spinquant, model-free-fp8, w4a8-awq, nvfp4, fp8-block, w4afp8
    assert len(paths) == 13
    for path in paths:
        warnings = check_recipe(load_recipe(path, ["compute.check_memory=false"]), for_run=False)
        expected = [OFFLINE.format(mirror=mirror)]
        if "trtllm" in path.name:
            expected += [LEGACY_TRT] if "int8-sq" in path.name else []
            expected += [NO_GPU_TRT]
        shown = [w[:len(LEGACY_TRT)] if w.startswith(LEGACY_TRT) else w for w in warnings]
        assert shown == expected, path.name


def test_bad_target_option_is_an_error(mirror, tmp_path):
    recipe = load_recipe(DEFAULT_RECIPE, ["target.engine=vllm", "target.options.max_model_lenn=4",
                                          f"output.dir={tmp_path}"])
    with pytest.raises(RecipeError) as info:
        check_recipe(recipe, for_run=False)
    assert ("target.options.max_model_lenn: unknown option for engine 'vllm'; did you mean "
            "`max_model_len`?") in str(info.value)


def test_an_engine_environment_not_set_up_fails_a_run_and_warns_validate(mirror, tmp_path,
                                                                         monkeypatch):
    """A target.environment that is no venv; a default one the quench home does not have."""
    recipe = load_recipe(DEFAULT_RECIPE, ["target.engine=vllm", "target.gpu=cpu",
                                          f"target.environment={tmp_path}",
                                          f"output.dir={tmp_path}"])
    problem = (f"target.engine: target.environment: {tmp_path} has no bin/python (a venv with "
               "vLLM expected)")
    assert check_recipe(recipe, for_run=False) == [problem]
    with pytest.raises(RecipeError) as info:
        check_recipe(recipe, for_run=True)
    assert problem in str(info.value)
    monkeypatch.setenv("QUENCH_HOME", str(tmp_path / "home"))
    recipe = load_recipe(DEFAULT_RECIPE, ["evaluation.lm_eval.tasks=[arc_easy]",
                                          "evaluation.lm_eval.engines=[hf, vllm]",
                                          f"output.dir={tmp_path}"])
    with pytest.raises(RecipeError) as info:
        check_recipe(recipe, for_run=True)
    assert (f"evaluation.lm_eval.engines: vllm environment {tmp_path / 'home' / 'envs' / 'vllm'}"
            " missing: run `quench setup vllm`") in str(info.value)


def test_each_lm_eval_engine_is_checked(mirror, tmp_path):
    if cuda_device_count():
        pytest.skip("tensorrt-llm is unavailable only on a machine without CUDA")
    recipe = load_recipe(DEFAULT_RECIPE, ["evaluation.lm_eval.tasks=[arc_easy]",
                                          "evaluation.lm_eval.engines=[hf, tensorrt-llm]",
                                          f"output.dir={tmp_path}"])
    assert check_recipe(recipe, for_run=False) == [
        "evaluation.lm_eval.engines: tensorrt-llm cannot run on this machine (no CUDA device); "
        "what needs it is recorded as skipped"]
