"""AutoRound two ways, and weight rotations, on TinyStories-656K: perplexity and exact KL vs fp32.

`autoround`: llm-compressor's AutoRoundModifier (oneshot) against the auto-round package's own
entry point, W4A16 g128, on the same fixed-length calibration blocks, timed side by side.
`rotations`: RTN and GPTQ W4A16 g128 with no rotation, SpinQuant (R1+R2) and QuIP (online input
Hadamard), evaluated in memory right after oneshot (so QuIP's online transforms are active).
Writes artifacts/bench/algorithms-<part>.json. Usage: bench/algorithms.py autoround|rotations
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "artifacts" / "bench"
MIRROR = Path("/work/shared") if Path("/work/shared/models").is_dir() else REPO.parent / "shared"
MODEL = MIRROR / "models" / "tinystories-656k"
CALIB = MIRROR / "data" / "wikitext2_valid_calibration" / "valid.txt"
TEST = MIRROR / "data" / "wikitext2_raw_test" / "wiki.test.raw"
SAMPLES, SEQLEN, WINDOWS, WINDOW = 64, 256, 128, 256


def load(path: Path = MODEL) -> Any:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()


def tokenizer() -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(MODEL)


def blocks(path: Path, count: int, length: int) -> list[torch.Tensor]:
    """`count` consecutive [1, length] token blocks of a text file (no padding: same for all)."""
    ids = tokenizer()(path.read_text(encoding="utf-8"), add_special_tokens=False).input_ids
    return [torch.tensor([ids[i * length:(i + 1) * length]]) for i in range(count)]


@torch.no_grad()
def logprobs(model: Any, windows: list[torch.Tensor]) -> list[torch.Tensor]:
    return [model(w).logits[0, :-1].float().log_softmax(-1) for w in windows]


def score(candidate: list[torch.Tensor], base: list[torch.Tensor],
          windows: list[torch.Tensor]) -> dict[str, float]:
    """Perplexity of the candidate, mean exact KL(base || candidate) and top-1 agreement."""
    nll = kl = agree = tokens = 0.0
    for q, p, w in zip(candidate, base, windows, strict=True):
        target = w[0, 1:]
        nll += -q.gather(-1, target[:, None]).sum().item()
        kl += (p.exp() * (p - q)).sum().item()
        agree += (q.argmax(-1) == p.argmax(-1)).sum().item()
        tokens += len(target)
    return {"perplexity": math.exp(nll / tokens), "kl_divergence": kl / tokens,
            "top1_agreement": agree / tokens, "tokens": tokens}


def weights_group() -> dict[str, Any]:
    return {"group_0": {"targets": ["Linear"], "weights": {
        "num_bits": 4, "type": "int", "symmetric": True, "strategy": "group", "group_size": 128}}}


def oneshot_run(modifiers: list[Any], calib: list[torch.Tensor]) -> Any:
    import datasets
    from llmcompressor import oneshot

    model = load()
    data = datasets.Dataset.from_dict({"input_ids": [b[0].tolist() for b in calib]})
    torch.manual_seed(0)
    oneshot(model=model, recipe=modifiers, dataset=data, num_calibration_samples=len(calib),
            max_seq_length=SEQLEN, output_dir=None)
    return model


def autoround_modifier(calib: list[torch.Tensor], iters: int, work: Path) -> Any:
    from llmcompressor.modifiers.autoround import AutoRoundModifier

    model = oneshot_run([AutoRoundModifier(config_groups=weights_group(), ignore=["lm_head"],
                                           iters=iters, batch_size=8,
                                           enable_torch_compile=False)], calib)
    model.save_pretrained(work / "modifier", save_compressed=True)
    return load(work / "modifier")


def autoround_package(calib: list[torch.Tensor], iters: int, work: Path) -> Any:
    from auto_round import AutoRound

    ar = AutoRound(load(), tokenizer(), scheme="W4A16", dataset=calib, iters=iters,
                   nsamples=len(calib), seqlen=SEQLEN, batch_size=8, device_map="cpu",
                   enable_torch_compile=False, seed=0)
    ar.quantize_and_save(str(work / "package"), format="llm_compressor")
    return load(next((work / "package").rglob("config.json")).parent)  # it adds a subfolder


def rotation_modifiers(rotation: str) -> list[Any]:
    from llmcompressor.modifiers.transform import QuIPModifier, SpinQuantModifier

    return {"none": [], "spinquant": [SpinQuantModifier(rotations=["R1", "R2"])],
            "quip": [QuIPModifier(rotations=["v"])]}[rotation]


def main(part: str) -> None:
    work = OUT / f"algorithms-{part}-work"
    work.mkdir(parents=True, exist_ok=True)
    calib = blocks(CALIB, SAMPLES, SEQLEN)
    windows = blocks(TEST, WINDOWS, WINDOW)
    base = logprobs(load(), windows)
    rows = [{"variant": "fp32", **score(base, base, windows)}]
    if part == "autoround":
        variants = {f"{name} iters={iters}": (fn, iters) for iters in (200,) for name, fn in (
            ("llmcompressor AutoRoundModifier", autoround_modifier),
            ("auto-round package", autoround_package))}
        for label, (fn, iters) in variants.items():
            start, cpu = time.perf_counter(), time.process_time()
            model = fn(calib, iters, work)
            rows.append({"variant": label, "wall_seconds": time.perf_counter() - start,
                         "cpu_seconds": time.process_time() - cpu,
                         **score(logprobs(model, windows), base, windows)})
            print(rows[-1], flush=True)
    else:
        from llmcompressor.modifiers.gptq import GPTQModifier
        from llmcompressor.modifiers.quantization import QuantizationModifier

        for method, cls in (("RTN", QuantizationModifier), ("GPTQ", GPTQModifier)):
            for rotation in ("none", "spinquant", "quip"):
                start = time.perf_counter()
                model = oneshot_run(rotation_modifiers(rotation) + [
                    cls(config_groups=weights_group(), ignore=["lm_head"])], calib)
                rows.append({"variant": f"{method} W4A16 g128 rotation={rotation}",
                             "wall_seconds": time.perf_counter() - start,
                             **score(logprobs(model, windows), base, windows)})
                print(rows[-1], flush=True)
    (OUT / f"algorithms-{part}.json").write_text(json.dumps(rows, indent=2))
    print("| variant | ppl | KL | top-1 | wall s |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['variant']} | {r['perplexity']:.2f} | {r['kl_divergence']:.4f} | "
              f"{r['top1_agreement']:.3f} | {r.get('wall_seconds', 0):.1f} |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "autoround")
