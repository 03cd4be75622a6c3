"""After the quantize stage nothing of the model stays alive, with GPTQ's traced sequential
pipeline too: measured as live tensor bytes, on a model with enough layers to show a leak."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest
import yaml

from quench.recipe import load_recipe
from quench.runner.run import run_pipeline
from tests.conftest import DEFAULT_RECIPE
from tests.engines.helpers import build_llama

LAYERS = 8


def live_tensor_bytes() -> int:
    """Bytes of the distinct storages of every tensor the garbage collector can reach."""
    import torch

    storages: dict[int, int] = {}
    for obj in gc.get_objects():
        if (issubclass(type(obj), torch.Tensor) and obj.layout == torch.strided
                and obj.device.type != "meta"):
            storage = obj.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()
    storages.pop(0, None)  # empty tensors
    return sum(storages.values())


def decoder_layer_bytes(model_dir: Path) -> int:
    """Bytes of one decoder layer's weights in the checkpoint (bf16)."""
    from safetensors.torch import load_file

    weights = load_file(model_dir / "model.safetensors")
    return sum(t.nbytes for name, t in weights.items() if name.startswith("model.layers.0."))


@pytest.fixture(scope="module")
def many_layers(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight bf16 Llama of 8 layers (hidden 256) with TinyStories' tokenizer."""
    out = tmp_path_factory.mktemp("llama-8-layers") / "model"
    out.mkdir()
    return build_llama(out, tiny_model, hidden=256, layers=LAYERS, heads=8, kv_heads=2,
                       intermediate=768)


def recipe_file(model_dir: Path, method: str, out: Path) -> Path:
    recipe = {
        "extends": str(DEFAULT_RECIPE),
        "name": f"release-{method}",
        "model": {"id": str(model_dir), "dtype": "auto"},
        "calibration": {"num_samples": 16, "max_seq_length": 64},
        "quantization": {"method": method, "scheme": "W4A16"},
        "license": {"declared": {str(model_dir): "apache-2.0"}},
        "tracking": {"backend": "none"},
        "output": {"dir": str(out)},
    }
    path = out.parent / f"release-{method}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


@pytest.mark.parametrize("method", ["gptq", "rtn"])  # rtn: no tracing, the control
def test_no_model_tensor_outlives_the_quantize_stage(method, many_layers, tmp_path):
    recipe = load_recipe(str(recipe_file(many_layers, method, tmp_path / "out")))
    gc.collect()
    before = live_tensor_bytes()
    summary = run_pipeline(recipe, force={"all"}, until="quantize")
    assert summary.manifest("quantize").status == "ran"
    gc.collect()
    left = live_tensor_bytes() - before
    # the model is 8 layers + embedding; a leaked copy, even int4-packed, is > 2 layers
    assert left < decoder_layer_bytes(many_layers), (method, left)


def tensor_bytes_without_collecting() -> int:
    """Like live_tensor_bytes(), but counting unreachable cycles not yet collected too."""
    import torch

    storages = {o.untyped_storage().data_ptr(): o.untyped_storage().nbytes()
                for o in gc.get_objects()
                if issubclass(type(o), torch.Tensor) and o.layout == torch.strided
                and o.device.type != "meta"}
    storages.pop(0, None)
    return sum(storages.values())


def test_the_reloaded_checkpoint_is_freed_when_the_reload_check_returns(many_layers, tmp_path):
    """A transformers model is a reference cycle: without a collection the reloaded copy
    outlived reload_check into the weight-error pass, a second dense copy at the peak."""
    from quench.methods import get_method
    from quench.stages.quantize import reload_check

    recipe = load_recipe(str(recipe_file(many_layers, "rtn", tmp_path / "out")))
    summary = run_pipeline(recipe, force={"all"}, until="quantize")
    saved = summary.manifest("quantize").path("model_dir")
    gc.collect()
    gc.disable()  # only reload_check's own collection may free the model
    try:
        before = tensor_bytes_without_collecting()
        reload_check(saved, recipe, "cpu", [], [], get_method("rtn"))
        left = tensor_bytes_without_collecting() - before
    finally:
        gc.enable()
    assert left < decoder_layer_bytes(many_layers), left
