"""Reproduction for llm-compressor: AWQModifier + QuantizationModifier's default (min-max) weight
ranges lose to the same AWQ smoothing with the mse observer, and to mse RTN without AWQ.

llmcompressor 0.14.0.1, CPU, under a minute on TinyStories-656K. AutoAWQ searches a clipping
range per group after scaling (auto_clip); llmcompressor's port leaves that out
(https://github.com/vllm-project/llm-compressor/pull/1177) and its maintainers suggest
`observer="mse"` instead (https://github.com/vllm-project/llm-compressor/issues/1600), but the
default stays min-max, so the documented recipe (AWQModifier() + QuantizationModifier(scheme=
"W4A16_ASYM")) quantizes without any clipping. Prints held-out KL(fp32 || quantized) for RTN
and AWQ, each with min-max and mse ranges, same calibration data.

Usage: python scripts/repro/awq_clip.py [MODEL_DIR]
(default: $QUENCH_MIRROR/models/tinystories-656k; data from $QUENCH_MIRROR/data).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # keep the evidence readable

import torch  # noqa: E402

MIRROR = Path(os.environ.get("QUENCH_MIRROR", "/work/shared"))


def paragraphs(path: Path, count: int) -> list[str]:
    lines = [line.strip() for line in path.read_text().splitlines()]
    return [line for line in lines if len(line) > 200][:count]


def held_out_kl(path: Path, awq: bool, observer: str | None) -> float:
    import datasets
    from llmcompressor import oneshot
    from llmcompressor.modifiers.quantization import QuantizationModifier
    from llmcompressor.modifiers.transform.awq import AWQModifier
    from llmcompressor.pipelines.cache import IntermediatesCache
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not torch.accelerator.is_available():  # 0.14 pins memory unconditionally (a CPU crash)
        IntermediatesCache.pin_memory = lambda self, *a, **k: None
    tokenizer = AutoTokenizer.from_pretrained(path)
    calibration = paragraphs(MIRROR / "data/wikitext2_valid_calibration/valid.txt", 32)
    test = paragraphs(MIRROR / "data/wikitext2_raw_test/wiki.test.raw", 16)
    ids = tokenizer(calibration, truncation=True, max_length=256)["input_ids"]
    data = datasets.Dataset.from_dict({"input_ids": ids,
                                       "attention_mask": [[1] * len(i) for i in ids]})
    batch = tokenizer(test, truncation=True, max_length=256, padding="max_length",
                      return_tensors="pt")
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    with torch.no_grad():
        reference = model(**batch).logits.log_softmax(-1)
    weights = {"num_bits": 4, "type": "int", "symmetric": False, "strategy": "group",
               "group_size": 64, "observer": observer}
    recipe = [QuantizationModifier(config_groups={"g": {"targets": ["Linear"],
                                                        "weights": weights}},
                                   ignore=["lm_head"])]
    if awq:
        recipe.insert(0, AWQModifier())
    torch.manual_seed(0)
    oneshot(model=model, recipe=recipe, dataset=data, num_calibration_samples=len(ids))
    with torch.no_grad():
        quantized = model(**batch).logits.log_softmax(-1)
    kl = (reference.exp() * (reference - quantized)).sum(-1)
    return kl[batch["attention_mask"].bool()].mean().item()


def main() -> None:
    path = Path(sys.argv[1] if len(sys.argv) > 1 else MIRROR / "models/tinystories-656k")
    results = {}
    for awq in (False, True):
        for observer in (None, "memoryless_mse"):
            results[awq, observer] = held_out_kl(path, awq, observer)
    print(f"\n{path.name}, W4A16_ASYM g64, held-out KL(fp32 || quantized), mean per token:")
    for (awq, observer), kl in results.items():
        label = f"{'AWQ' if awq else 'RTN'}, {observer or 'default (min-max)'}"
        print(f"  {label:<24} {kl:.4f}")


if __name__ == "__main__":
    main()
