"""Each method says what it stores; sizing reads only that (no scheme-name parsing in plan)."""

from __future__ import annotations

import pytest

from quench import plan
from quench.errors import QuenchError
from quench.methods import METHODS, Method, ModuleOptions, Storage, get_method, method_names
from quench.recipe import load_recipe
from tests.conftest import REPO

ALL_SCHEMES = [(name, scheme) for name in method_names() for scheme in get_method(name).schemes]


@pytest.mark.parametrize(("name", "scheme"), ALL_SCHEMES)
def test_every_scheme_of_every_method_says_what_it_stores(name, scheme):
    method = get_method(name)
    if name == "llmcompressor":  # a raw recipe: what it stores is known only after it ran
        assert method.storage(scheme, None) is None
        return
    options = method.parse_options({})
    storage = method.storage(scheme, options)
    assert isinstance(storage, Storage)
    dense = name == "none" or (name == "gguf" and scheme in ("F32", "F16", "BF16"))
    assert storage.quantized == (not dense)


@pytest.mark.parametrize(("overrides", "expected"), [
    (["quantization.method=rtn", "quantization.scheme=W3A16", "quantization.options.symmetric="
      "false"], Storage(weight_bits=3, group_size=128, zero_points=True)),
    (["quantization.method=gptq", "quantization.scheme=W8A16"], Storage(weight_bits=8)),
    (["quantization.method=awq", "quantization.scheme=W4A16_ASYM",
      "quantization.options.group_size=64"],
     Storage(weight_bits=4, group_size=64, zero_points=True)),
    (["quantization.method=fp8", "quantization.scheme=FP8",
      "quantization.options.kv_cache=true"],
     Storage(weight_bits=8, weight_type="float", activation_bits=8, activation_type="float",
             kv_cache_dtype="fp8")),
    (["quantization.method=smoothquant", "quantization.scheme=W8A8"],
     Storage(weight_bits=8, activation_bits=8)),
    (["quantization.method=modelopt", "quantization.scheme=INT4_AWQ"],
     Storage(weight_bits=4, group_size=128)),
])
def test_storage_follows_the_options(overrides, expected):
    recipe = load_recipe(REPO / "recipes" / "tinystories-vllm.yaml", overrides)
    q = recipe.quantization
    assert get_method(q.method).storage(q.scheme, q.options) == expected


class _FutureOptions(ModuleOptions):
    pass


class _FutureFP4(Method[_FutureOptions]):
    """A scheme sizing has never heard of: FP4 weights in groups of 16 with FP8 scales."""

    name = "future-fp4"
    schemes = ("NVFP4",)
    default_scheme = "NVFP4"
    options_model = _FutureOptions

    def storage(self, scheme: str, options: _FutureOptions) -> Storage:
        return Storage(weight_bits=4, weight_type="float", group_size=16, scale_bytes=1,
                       activation_bits=4, activation_type="float")


@METHODS.temporary(_FutureFP4)
def test_an_unknown_scheme_is_sized_from_what_its_method_stores():
    recipe = load_recipe(REPO / "recipes" / "examples" / "llama31-8b-fp8-h100.yaml",
                         ["quantization.method=future-fp4", "quantization.scheme=NVFP4",
                          "quantization.options={}"])
    scheme = plan.recipe_scheme(recipe)
    assert scheme.label == "NVFP4" and not scheme.fp8_compute
    assert scheme.bits_per_weight(2) == 4 + 8 / 16  # one 8-bit scale per 16 weights
    assert plan.plan(recipe, batch=1, seq_len=128)["scheme"] == "NVFP4"


def test_a_raw_recipe_cannot_be_sized(tmp_path):
    raw = tmp_path / "recipe.yaml"
    raw.write_text("quant_stage: {}\n")
    recipe = load_recipe(REPO / "recipes" / "examples" / "llama31-8b-fp8-h100.yaml",
                         ["quantization.method=llmcompressor", "quantization.scheme=custom",
                          f"quantization.options={{recipe: {raw}}}"])
    with pytest.raises(QuenchError, match="has no scheme sizing can read"):
        plan.recipe_scheme(recipe)
