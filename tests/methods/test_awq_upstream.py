"""Tells us when llmcompressor's AWQ runs on CPU by itself, so the workaround can go."""

import pytest
import torch

from pipeline.gpu import accelerator_present
from pipeline.methods import get_method
from pipeline.methods.awq import cpu_pin_memory_workaround
from pipeline.models import load_model, load_tokenizer


def _awq_oneshot(model_dir, use_workaround: bool):
    import datasets
    from llmcompressor import oneshot

    model = load_model(model_dir, "float32")
    tokenizer = load_tokenizer(model_dir)
    ids = tokenizer(["Once upon a time there was a dog."] * 4)["input_ids"]
    data = datasets.Dataset.from_dict({"input_ids": ids, "attention_mask": [[1] * len(i)
                                                                            for i in ids]})
    recipe = get_method("awq").modifiers("W4A16_ASYM", {"group_size": 128, "duo_scaling": True,
                                                        "n_grid": 4, "targets": ["Linear"],
                                                        "ignore": ["lm_head"]})
    context = cpu_pin_memory_workaround() if use_workaround else torch.no_grad()
    with context:
        oneshot(model=model, recipe=recipe, dataset=data, num_calibration_samples=4)


@pytest.mark.skipif(accelerator_present(), reason="the failure only happens without accelerator")
def test_awq_still_needs_the_workaround_on_cpu(tiny_model):
    """If this fails, llmcompressor fixed AWQ on CPU: delete cpu_pin_memory_workaround."""
    with pytest.raises(RuntimeError, match="accelerator"):
        _awq_oneshot(tiny_model, use_workaround=False)


def test_awq_runs_on_cpu_with_the_workaround(tiny_model):
    _awq_oneshot(tiny_model, use_workaround=True)
