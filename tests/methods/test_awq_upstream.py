"""Tells us when llmcompressor's AWQ runs on CPU by itself, so the workaround can go."""

from contextlib import nullcontext

import pytest
import torch

from quench.gpu import accelerator_present
from quench.methods import get_method
from quench.methods.awq import cpu_pin_memory_workaround
from quench.models import load_model, load_tokenizer

GROUP = 64  # the tiny model's Linear layers have 128 or 384 inputs: 2 or 6 groups per row


def _awq_oneshot(model_dir, use_workaround: bool) -> torch.nn.Module:
    import datasets
    from llmcompressor import oneshot

    model = load_model(model_dir, "float32")
    tokenizer = load_tokenizer(model_dir)
    ids = tokenizer(["Once upon a time there was a dog."] * 4)["input_ids"]
    data = datasets.Dataset.from_dict({"input_ids": ids, "attention_mask": [[1] * len(i)
                                                                            for i in ids]})
    awq = get_method("awq")
    options = awq.parse_options({"group_size": GROUP, "n_grid": 4})
    context = cpu_pin_memory_workaround() if use_workaround else nullcontext()
    with context:
        oneshot(model=model, recipe=awq.modifiers("W4A16_ASYM", options), dataset=data,
                num_calibration_samples=4)
    return model


@pytest.mark.skipif(accelerator_present(), reason="the failure only happens without accelerator")
def test_awq_still_needs_the_workaround_on_cpu(tiny_model):
    """If this fails, llmcompressor fixed AWQ on CPU: delete cpu_pin_memory_workaround."""
    with pytest.raises(RuntimeError, match="Cannot access accelerator device when none is "
                                           "available"):
        _awq_oneshot(tiny_model, use_workaround=False)


def test_awq_runs_on_cpu_with_the_workaround(tiny_model):
    """With the workaround AWQ smooths (scales folded into the norms) and every Linear gets
    asymmetric int4 group scales and zero points; pin_memory is restored afterwards."""
    from llmcompressor.pipelines.cache import IntermediatesCache

    original = IntermediatesCache.pin_memory
    norm = load_model(tiny_model, "float32").model.layers[0].input_layernorm.weight
    model = _awq_oneshot(tiny_model, use_workaround=True)
    assert IntermediatesCache.pin_memory is original
    assert not torch.equal(model.model.layers[0].input_layernorm.weight, norm)  # AWQ smoothed
    linears = {name: m for name, m in model.named_modules()
               if isinstance(m, torch.nn.Linear) and name != "lm_head"}
    assert len(linears) == 14  # 2 layers x (q, k, v, o, gate, up, down)
    for name, module in linears.items():
        weights = module.quantization_scheme.weights
        assert (weights.num_bits, weights.symmetric, weights.strategy, weights.group_size) == \
            (4, False, "group", GROUP), name
        rows, columns = module.weight.shape
        assert module.weight_scale.shape == module.weight_zero_point.shape \
            == (rows, columns // GROUP), name
    assert not hasattr(model.lm_head, "weight_scale")  # ignored by the recipe
