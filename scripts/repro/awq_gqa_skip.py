"""Reproduction for llm-compressor: AWQModifier leaves every GQA v_proj -> o_proj pair unbalanced.

llmcompressor 0.14.0.1, CPU, about a minute. On a grouped-query-attention Llama (fewer KV heads
than query heads) `_check_layers_are_compatible` drops the default v_proj -> o_proj mapping of
every layer because v_proj.out_features != o_proj.in_features (only a count is logged at
WARNING, the names at DEBUG). So o_proj is quantized without any AWQ scaling. The mapping is
expressible: scaling v_proj's rows by s and o_proj's columns by s repeated per query head
(repeat_kv's layout) leaves the model's output unchanged, which this script checks too.
Upstream: https://github.com/vllm-project/llm-compressor/issues/2808 (open);
the skip dates from https://github.com/mit-han-lab/llm-awq/pull/67.

Usage: python scripts/repro/awq_gqa_skip.py [MODEL_DIR]
(default: $QUENCH_MIRROR/models/tinystories-656k, 8 query heads / 4 KV heads).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # keep the evidence readable

import torch  # noqa: E402


def calibration(tokenizer, n: int = 8):
    import datasets

    text = ["Once upon a time there was a little dog who liked to run in the park."] * n
    ids = tokenizer(text)["input_ids"]
    return datasets.Dataset.from_dict({"input_ids": ids,
                                       "attention_mask": [[1] * len(i) for i in ids]})


def run_awq(model, data) -> list[str]:
    """oneshot AWQ + W4A16_ASYM g64; returns the library's messages about skipped mappings."""
    from llmcompressor import oneshot
    from llmcompressor.modifiers.quantization import QuantizationModifier
    from llmcompressor.modifiers.transform.awq import AWQModifier
    from llmcompressor.pipelines.cache import IntermediatesCache
    from loguru import logger

    messages: list[str] = []
    sink = logger.add(lambda m: messages.append(str(m).strip()), level="DEBUG",
                      filter=lambda r: "skip" in r["message"].lower())
    if not torch.accelerator.is_available():  # 0.14 pins memory unconditionally (a CPU crash)
        IntermediatesCache.pin_memory = lambda self, *a, **k: None
    weights = {"num_bits": 4, "type": "int", "symmetric": False, "strategy": "group",
               "group_size": 64}
    recipe = [AWQModifier(n_grid=5),
              QuantizationModifier(config_groups={"g": {"targets": ["Linear"],
                                                        "weights": weights}},
                                   ignore=["lm_head"])]
    try:
        oneshot(model=model, recipe=recipe, dataset=data, num_calibration_samples=len(data))
    finally:
        logger.remove(sink)
    return messages


def gqa_balance_is_exact(model, data) -> float:
    """Max output change after a GQA-aware v_proj -> o_proj rescale (should be ~1e-6)."""
    cfg = model.config
    head_dim = cfg.hidden_size // cfg.num_attention_heads
    repeats = cfg.num_attention_heads // cfg.num_key_value_heads
    ids = torch.tensor(data["input_ids"][:2])
    with torch.no_grad():
        before = model(ids).logits
        attn = model.model.layers[0].self_attn
        s = torch.rand(attn.v_proj.out_features) + 0.5  # one scale per KV channel
        per_o_input = s.view(cfg.num_key_value_heads, 1, head_dim).expand(
            -1, repeats, -1).reshape(-1)  # KV head k serves query heads k*repeats..+repeats-1
        attn.v_proj.weight.div_(s.view(-1, 1))
        attn.o_proj.weight.mul_(per_o_input.view(1, -1))
        after = model(ids).logits
    return (after - before).abs().max().item()


def main() -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    mirror = os.environ.get("QUENCH_MIRROR", "/work/shared")
    path = Path(sys.argv[1] if len(sys.argv) > 1 else f"{mirror}/models/tinystories-656k")
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    cfg = model.config
    print(f"model {path.name}: {cfg.num_hidden_layers} layers, {cfg.num_attention_heads} query "
          f"heads, {cfg.num_key_value_heads} KV heads")
    data = calibration(tokenizer)
    print(f"GQA-aware v_proj->o_proj rescale, max |logit change| = "
          f"{gqa_balance_is_exact(model, data):.2e} (the mapping is expressible)")

    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    original = {n: m.weight.detach().clone() for n, m in model.named_modules()
                if isinstance(m, torch.nn.Linear)}
    messages = run_awq(model, data)
    print("llmcompressor's messages about skipped mappings:")
    for message in messages:
        print("   ", message[:160])
    for name, module in model.named_modules():
        if name.endswith(("o_proj", "down_proj")):
            changed = not torch.equal(module.weight, original[name])
            print(f"{name}: input columns rescaled by AWQ: {changed}")


if __name__ == "__main__":
    main()
