"""A model loaded from mapped safetensors files ends up in owned memory, values unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest

from quench.mapped_weights import file_mappings, own_mapped_weights
from quench.models import load_model


def _in_mapping(model, ranges: list[tuple[int, int]]) -> int:
    return sum(1 for p in model.parameters() if any(lo <= p.data_ptr() < hi for lo, hi in ranges))


@pytest.mark.skipif(not Path("/proc/self/maps").is_file(), reason="needs Linux /proc")
def test_weights_leave_the_mapping_and_keep_their_values(tmp_path: Path) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(hidden_size=512, intermediate_size=1408, num_hidden_layers=4,
                         num_attention_heads=8, num_key_value_heads=8, vocab_size=4096,
                         tie_word_embeddings=True)
    torch.manual_seed(0)
    LlamaForCausalLM(config).to(torch.bfloat16).save_pretrained(tmp_path / "m")
    model = load_model(tmp_path / "m", "bfloat16")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    mapped = file_mappings()
    assert _in_mapping(model, mapped) > 0, "transformers no longer maps safetensors files"

    moved = own_mapped_weights(model)

    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    assert moved >= 0.99 * weights
    assert _in_mapping(model, file_mappings()) == 0
    assert model.lm_head.weight is model.model.embed_tokens.weight  # still tied
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    # Nothing holds the file any more: replacing weights (AWQ) cannot leave its pages resident.
    assert not any(str(tmp_path) in line for line in Path("/proc/self/maps").read_text()
                   .splitlines()), "the checkpoint is still mapped"
