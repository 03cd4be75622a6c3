"""Tells us when llmcompressor's AWQ runs on CPU by itself, so the workaround can go."""

from contextlib import nullcontext

import pytest
import torch

from pipeline.gpu import accelerator_present
from pipeline.methods import get_method
from pipeline.methods.awq import cpu_pin_memory_workaround
from pipeline.models import load_model, load_tokenizer

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
    """With the workaround AWQ quantizes every Linear to asymmetric int4 groups, and the
    patched IntermediatesCache.pin_memory is restored afterwards."""
    from llmcompressor.pipelines.cache import IntermediatesCache

    original = IntermediatesCache.pin_memory
    model = _awq_oneshot(tiny_model, use_workaround=True)
    assert IntermediatesCache.pin_memory is original
    linears = {name: m for name, m in model.named_modules()
               if isinstance(m, torch.nn.Linear) and name != "lm_head"}
    assert linears
    for name, module in linears.items():
        scale, zero = module.weight_scale, module.weight_zero_point
        rows, columns = module.weight.shape
        assert scale.shape == zero.shape == (rows, columns // GROUP), name
        # the stored weights lie on the int4 grid of their group: (w / scale + zero) in 0..15
        q = module.weight / scale.repeat_interleave(GROUP, dim=1) \
            + zero.repeat_interleave(GROUP, dim=1)
        assert torch.allclose(q, q.round(), atol=1e-3), name
        assert q.round().min() >= 0 and q.round().max() <= 15, name
    assert not hasattr(model.lm_head, "weight_scale")  # ignored by the recipe
