"""Quality table: every method on TinyStories-656K, WikiText-2 perplexity, KL and top-1 vs fp32.

Writes artifacts/bench/methods.json and methods.md. Calibrated methods run with two seeds so
the table shows the spread a calibration draw alone causes.
"""

from __future__ import annotations

import hashlib
import json
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "artifacts" / "bench"
WORK = OUT / "methods-work"
SEEDS = (0, 1)

# label -> (recipe, overrides, calibrated)
VARIANTS = {
    "fp32 baseline": ("tinystories-none", [], False),
    "RTN W4 g128": ("tinystories-rtn-w4a16", [], False),
    "GPTQ W4 g128": ("tinystories-gptq-w4a16", [], True),
    "AWQ W4 g128 (asym)": ("tinystories-awq-w4a16", [], True),
    "RTN W3 g32": ("tinystories-rtn-w4a16", ["quantization.scheme=W3A16",
                                             "quantization.options.group_size=32"], False),
    "GPTQ W3 g32": ("tinystories-gptq-w3a16", [], True),
    "SmoothQuant W8A8 (GPTQ, dynamic)": ("tinystories-smoothquant-w8a8", [], True),
    "FP8 dynamic": ("tinystories-fp8-dynamic", [], False),
    "FP8 static": ("tinystories-fp8-static", [], True),
    # issue 17 algorithms: AutoRound, rotations in front of RTN/GPTQ, model-free PTQ
    "AutoRound W4 g128": ("tinystories-autoround-w4a16", [], True),
    "RTN W4 g128 + SpinQuant": ("tinystories-rtn-w4a16", ["quantization.options.rotation="
                                                          "spinquant"], False),
    "RTN W4 g128 + QuIP": ("tinystories-rtn-quip-w4a16", [], False),
    "GPTQ W4 g128 + SpinQuant": ("tinystories-gptq-spinquant-w4a16", [], True),
    "GPTQ W4 g128 + QuIP": ("tinystories-gptq-w4a16", ["quantization.options.rotation=quip"],
                            True),
    "model_free FP8 dynamic": ("tinystories-model-free-fp8", [], False),
    "model_free W4 g128": ("tinystories-model-free-fp8", ["quantization.scheme=W4A16"], False),
    # FP4, block-wise FP8, W4A8 and the FP8 KV cache option (issue 17)
    "NVFP4 (W4A4)": ("tinystories-nvfp4", [], True),
    "NVFP4A16": ("tinystories-nvfp4a16", [], False),
    "MXFP4 (W4A4)": ("tinystories-mxfp4", [], False),
    "MXFP4A16": ("tinystories-mxfp4a16", [], False),
    "FP8 block": ("tinystories-fp8-block", [], False),
    "W4AFP8 (GPTQ)": ("tinystories-w4afp8", [], True),
    "W4A8 (GPTQ)": ("tinystories-w4a8", [], True),
    "RTN W4 g128 + FP8 KV": ("tinystories-rtn-w4a16", ["quantization.options.kv_cache=true"],
                             True),
}


def run(label: str, recipe: str, overrides: list[str], seed: int) -> dict:
    tag = hashlib.sha256(" ".join(overrides).encode()).hexdigest()[:6]
    name = f"bench-{recipe}-{tag}-s{seed}"
    cmd = [sys.executable, "-m", "quench", "run", str(REPO / "recipes" / f"{recipe}.yaml"),
           f"name={name}", f"output.dir={WORK}", "tracking.backend=none",
           f"calibration.seed={seed}", *overrides]
    subprocess.run(cmd, check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    report = json.loads((WORK / name / "report.json").read_text())
    m = report["metrics"]
    return {"variant": label, "seed": seed, "baseline_perplexity": m["baseline"]["perplexity"],
            **{k: m["candidate"].get(k) for k in (
                "perplexity", "kl_divergence", "top1_agreement", "size_bytes",
                "quantize_wall_seconds", "peak_rss_mb", "output_cosine", "weight_error_mean")},
            "tokens": report["perplexity_protocol"]["windows"] * 256,
            "notes": report["notes"]}


def spread(rows: list[dict], key: str) -> str:
    values = [r[key] for r in rows if r[key] is not None]
    if not values:
        return ""
    if len(values) == 1:
        return f"{values[0]:.4g}"
    return f"{statistics.mean(values):.4g} ({min(values):.4g}-{max(values):.4g})"


def markdown(rows: list[dict]) -> str:
    lines = ["| variant | seeds | WikiText-2 ppl | KL vs fp32 | top-1 agree | size (KB) | "
             "quantize s | peak RSS MB |", "|---|---|---|---|---|---|---|---|"]
    for label in VARIANTS:
        group = [r for r in rows if r["variant"] == label]
        if not group:
            continue
        lines.append(
            f"| {label} | {len(group)} | {spread(group, 'perplexity')} | "
            f"{spread(group, 'kl_divergence')} | {spread(group, 'top1_agreement')} | "
            f"{group[0]['size_bytes'] / 1024:.0f} | {spread(group, 'quantize_wall_seconds')} | "
            f"{spread(group, 'peak_rss_mb')} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    """All variants; with labels as arguments, only those (written to methods-partial.*)."""
    only = sys.argv[1:]
    unknown = [label for label in only if label not in VARIANTS]
    if unknown:
        sys.exit(f"unknown variant(s) {unknown}; known: {list(VARIANTS)}")
    rows = []
    for label, (recipe, overrides, calibrated) in VARIANTS.items():
        if only and label not in only:
            continue
        for seed in SEEDS if calibrated else SEEDS[:1]:
            rows.append(run(label, recipe, overrides, seed))
            print(f"{label} seed {seed}: ppl {rows[-1]['perplexity']:.3f} "
                  f"KL {rows[-1]['kl_divergence']:.5f}", flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    stem = "methods-partial" if only else "methods"
    (OUT / f"{stem}.json").write_text(json.dumps(rows, indent=2))
    table = markdown(rows)
    (OUT / f"{stem}.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
