"""Does vLLM's CPU build serve the FP4, block-FP8 and W4A8 checkpoints quench writes?

bench/engines.py's random-weight Llama (head_dim 64), quantized by `quench run`, served once at
concurrency 1 with 16 output tokens: output tok/s and the kernels vLLM chose, or the error it
refused with. Writes artifacts/bench/formats-serve.json; checks matrix.yaml's CPU rows.
"""

from __future__ import annotations

import json
import sys

from bench import engines
from quench.engines import get_engine

VARIANTS = {
    "w4a8-int8-rtn": ("tinystories-w4a8", ["quantization.options.weights=rtn"]),
    "fp8-block": ("tinystories-fp8-block", []),
    "nvfp4a16": ("tinystories-nvfp4a16", []),
    "w4afp8-rtn": ("tinystories-w4afp8", ["quantization.options.weights=rtn"]),
}


def main() -> None:
    engine = get_engine("vllm")
    reason = engine.unavailable_reason()
    if reason:
        sys.exit(f"bench/formats_serve.py: {reason}")
    engines.VARIANTS.update(VARIANTS)
    model, _ = engines.build_model(engines.OUT / "models" / "llama-bf16")
    results = {"bf16": engines.sweep(engine, "bf16", model, levels=(1,), output_len=16)}
    for label in VARIANTS:
        results[label] = engines.sweep(engine, label, engines.quantize(model, label),
                                       levels=(1,), output_len=16)
        print(label, json.dumps(results[label])[:600], flush=True)
    (engines.OUT / "formats-serve.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
