"""Peak RSS of quantizing without loading the model (model_free_ptq) vs loading it (oneshot).

One path per process, to be run under `/usr/bin/time -v` (quench's own runs reset the kernel's
peak per stage, so time's maximum RSS of a `quench run` is the last stage's): W8A16 per
channel, lm_head and embeddings left dense, the checkpoint's dtype. Usage:
bench/model_free_rss.py model_free|loaded SOURCE_DIR OUT_DIR
"""

from __future__ import annotations

import sys

IGNORE = ["lm_head", "re:.*embed_tokens$"]


def scheme():
    from compressed_tensors.quantization import preset_name_to_scheme

    preset = preset_name_to_scheme("W8A16", ["Linear"])
    preset.weights.strategy, preset.weights.group_size = "channel", None
    return preset


def main(path: str, source: str, out: str) -> None:
    if path == "model_free":
        from llmcompressor.entrypoints.model_free import model_free_ptq

        model_free_ptq(source, out, scheme=scheme(), ignore=IGNORE, device="cpu")
        return
    from llmcompressor import oneshot
    from llmcompressor.modifiers.quantization import QuantizationModifier
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(source, dtype="auto")
    groups = {"group_0": {"targets": ["Linear"], "weights": scheme().weights.model_dump()}}
    oneshot(model=model, recipe=[QuantizationModifier(config_groups=groups, ignore=IGNORE)],
            output_dir=None)
    model.save_pretrained(out, save_compressed=True)


if __name__ == "__main__":
    main(*sys.argv[1:4])
