"""A method and an engine quench has never seen, defined in this file and registered for the
test only: `quench validate` accepts a recipe naming them and rejects the models their own
check_model() rules out, with no other file touched."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import Field

from quench.cli import main
from quench.engines import ENGINES, Engine
from quench.errors import RecipeError, UnknownName
from quench.methods import METHODS, Method, MethodCapabilities, ModuleOptions, Storage
from quench.preflight import check_recipe
from quench.recipe import load_recipe

from .conftest import DEFAULT_RECIPE

UNCLASSIFIED = ("quantization.method 'toy-rtn' writes a checkpoint quench cannot "
                "classify: its target support is not checked")


class ToyOptions(ModuleOptions):
    """The toy method's options: a group size and the deepest model it accepts."""

    group_size: int = Field(64, ge=1)
    max_layers: int = Field(4, ge=1)


class ToyMethod(Method[ToyOptions]):
    """Round-to-nearest 4-bit weights that refuse deep models (a rule of its own)."""

    name = "toy-rtn"
    schemes = ("W4A16",)
    default_scheme = "W4A16"
    options_model = ToyOptions
    capabilities = MethodCapabilities(backend="toy")

    def storage(self, scheme: str, options: ToyOptions) -> Storage:
        return Storage(weight_bits=4, group_size=options.group_size)

    def modifiers(self, scheme: str, options: ToyOptions) -> list[Any]:
        return []  # never reached: the test runs the pre-flight only

    def check_model(self, scheme: str, options: ToyOptions, config: dict[str, Any]
                    ) -> list[str]:
        layers = config.get("num_hidden_layers", 0)
        own = [f"quantization.options.max_layers: {options.max_layers}, but the model has "
               f"{layers} layers"] if layers > options.max_layers else []
        return own or super().check_model(scheme, options, config)


class ToyEngine(Engine):
    """An in-process engine whose kernels take weight groups of up to 64."""

    name = "toy-engine"

    def check_model(self, scheme: str, storage: Storage | None, config: dict[str, Any]
                    ) -> list[str]:
        group = storage.group_size if storage else None
        if group and group > 64:
            return [f"target.engine toy-engine: no kernel for groups of {group} (up to 64)"]
        return []


@pytest.fixture(autouse=True)
def toys() -> Iterator[None]:
    """The toy method and engine, registered for each test and removed after it."""
    with METHODS.temporary(ToyMethod), ENGINES.temporary(ToyEngine):
        yield


def toy_recipe(tmp_path: Any, *overrides: str) -> list[str]:
    return ["quantization.method=toy-rtn", "target.engine=toy-engine",
            f"output.dir={tmp_path}", *overrides]


def test_a_recipe_naming_them_validates(mirror, tmp_path, capsys):
    recipe = load_recipe(DEFAULT_RECIPE, toy_recipe(tmp_path))
    assert check_recipe(recipe, for_run=False) == [UNCLASSIFIED]
    assert main(["validate", str(DEFAULT_RECIPE), *toy_recipe(tmp_path)]) == 0
    assert "ok (method toy-rtn, scheme W4A16)" in capsys.readouterr().out


@pytest.mark.parametrize(("overrides", "message"), [
    (["quantization.options.max_layers=1"],
     "quantization.options.max_layers: 1, but the model has 2 layers"),
    (["quantization.options.group_size=96"],  # the base's rule, from what storage() says
     "quantization.options.group_size: 96 does not divide the model's hidden_size (128)"),
    (["quantization.options.group_size=128"],
     "target.engine toy-engine: no kernel for groups of 128 (up to 64)"),
])
def test_their_check_model_rejects_an_impossible_recipe(mirror, tmp_path, capsys, overrides,
                                                        message):
    recipe = load_recipe(DEFAULT_RECIPE, toy_recipe(tmp_path, *overrides))
    with pytest.raises(RecipeError, match="cannot run") as info:
        check_recipe(recipe, for_run=False)
    assert message in str(info.value)
    assert main(["validate", str(DEFAULT_RECIPE), *toy_recipe(tmp_path, *overrides)]) == 2
    assert message in capsys.readouterr().err


def test_they_are_gone_after_the_block():
    with METHODS.temporary(type("Gone", (ToyMethod,), {"name": "toy-gone"})):
        assert "toy-gone" in METHODS
    assert "toy-gone" not in METHODS
    with pytest.raises(UnknownName, match=r"unknown method 'toy-gone'; did you mean `toy-rtn`"):
        METHODS.get("toy-gone")
    with pytest.raises(ValueError, match="registered twice"), METHODS.temporary(ToyMethod):
        pass
