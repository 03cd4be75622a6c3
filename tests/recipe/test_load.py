"""Recipe loading: extends, overrides and error messages that name the key."""

from pathlib import Path

import pytest

from quench.errors import RecipeError
from quench.recipe import load_recipe
from quench.recipe.load import apply_override, deep_merge

from ..conftest import DEFAULT_RECIPE


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_default_recipe_extends_its_base():
    recipe = load_recipe(DEFAULT_RECIPE)
    assert recipe.name == "tinystories-rtn-w4a16"
    assert recipe.model.id == "raincandy-u/TinyStories-656K"  # from the base
    assert recipe.quantization.method == "rtn" and recipe.quantization.scheme == "W4A16"
    assert recipe.evaluation.perplexity.batch_size == 16  # nested mapping merged, not replaced


def test_name_defaults_to_file_stem_and_is_not_inherited(tmp_path):
    write(tmp_path / "base.yaml", "name: base\nmodel: {id: a/b}\n")
    child = write(tmp_path / "child.yaml", "extends: base.yaml\n")
    assert load_recipe(child).name == "child"


def test_extends_cycle_is_an_error(tmp_path):
    write(tmp_path / "a.yaml", "extends: b.yaml\n")
    write(tmp_path / "b.yaml", "extends: a.yaml\n")
    with pytest.raises(RecipeError, match="cycle"):
        load_recipe(tmp_path / "a.yaml")


def test_overrides_are_typed_as_yaml():
    recipe = load_recipe(
        DEFAULT_RECIPE,
        ["quantization.scheme=W8A16", "evaluation.perplexity.max_windows=3",
         "model.trust_remote_code=true", "quantization.options.ignore=[lm_head, foo]"],
    )
    assert recipe.quantization.scheme == "W8A16"
    assert recipe.evaluation.perplexity.max_windows == 3
    assert recipe.model.trust_remote_code is True
    assert recipe.quantization.options.ignore == ["lm_head", "foo"]


def test_override_syntax_errors_are_named():
    with pytest.raises(RecipeError, match="expected key.sub=value"):
        apply_override({}, "no-equals-sign")
    with pytest.raises(RecipeError, match="model.id is 'x', not a mapping"):
        apply_override({"model": {"id": "x"}}, "model.id.sub=1")


def test_deep_merge_does_not_mutate_inputs():
    base = {"a": {"b": 1, "c": 2}}
    merged = deep_merge(base, {"a": {"b": 3}})
    assert merged == {"a": {"b": 3, "c": 2}} and base == {"a": {"b": 1, "c": 2}}


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("quantization.scheme=W8A8", "quantization.scheme: 'W8A8' is not allowed for method "
                                     "'rtn'; allowed: W3A16, W4A16, W8A16"),
        ("quantization.method=magic", "quantization.method: unknown method 'magic'; allowed:"),
        ("quantization.options.bogus=1", "quantization.options.bogus: unknown option for method "
                                         "'rtn'; allowed: targets, ignore, kv_cache, "
                                         "kv_cache_strategy, group_size, symmetric, rotation"),
        ("modle.id=x", "modle: unknown key"),
        ("calibration.num_samples=0", "calibration.num_samples: Input should be greater than"),
        ("evaluation.perplexity.stride=999", "evaluation.perplexity.stride: 999 must be <= "
                                             "window (256)"),
        ("model.dtype=float8",
         "model.dtype: Input should be 'auto', 'float32', 'bfloat16' or 'float16'"),
        ("name=has space", "name: String should match pattern"),
    ],
)
def test_invalid_values_name_key_value_and_allowed(override, message):
    with pytest.raises(RecipeError) as info:
        load_recipe(DEFAULT_RECIPE, [override])
    assert message in str(info.value)
    assert str(DEFAULT_RECIPE) in str(info.value)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(RecipeError, match="recipe file not found"):
        load_recipe(tmp_path / "nope.yaml")
    with pytest.raises(RecipeError, match="not valid YAML"):
        load_recipe(write(tmp_path / "bad.yaml", "model: [unclosed\n"))
    with pytest.raises(RecipeError, match="must be a mapping"):
        load_recipe(write(tmp_path / "list.yaml", "- a\n- b\n"))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["quantization.method=awq", "quantization.scheme=W8A8"],
         "quantization.scheme: 'W8A8' is not allowed for method 'awq'; allowed: W4A16_ASYM"),
        (["quantization.method=fp8", "quantization.scheme=FP8",
          "quantization.options.group_size=128"],
         "quantization.options.group_size: unknown option for method 'fp8'; "
         "allowed: targets, ignore, kv_cache"),
        (["quantization.method=gptq", "quantization.options.group_size=0"],
         "quantization.options.group_size: must be >= 1 or 'channel'"),
        (["quantization.method=smoothquant", "quantization.scheme=W8A8",
          "quantization.options.smoothing_strength=1.5"],
         "quantization.options.smoothing_strength: Input should be less than or equal to 1"),
    ],
)
def test_impossible_method_combinations(overrides, message):
    with pytest.raises(RecipeError) as info:
        load_recipe(DEFAULT_RECIPE, overrides)
    assert message in str(info.value)
