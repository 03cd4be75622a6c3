"""Spine benchmark: cold vs warm (all cached) run, and quench's rtn stage vs bare oneshot.

Writes artifacts/bench/spine.json and prints it. Targets (not assertions): warm/cold <= 5%,
quench quantize stage / bare llmcompressor oneshot <= 1.05.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "tinystories-rtn-w4a16.yaml"
OUT = REPO / "artifacts" / "bench"
REPEATS = 3

# Timed from before its imports: in quench the quantize stage is where torch, transformers and
# llmcompressor are first imported, so both sides pay for them.
BARE = r'''
import time
start = time.perf_counter()
import sys, json, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from llmcompressor import oneshot
from llmcompressor.modifiers.quantization import QuantizationModifier
src, out = sys.argv[1], sys.argv[2]
model = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32).eval()
tok = AutoTokenizer.from_pretrained(src)
oneshot(model=model, recipe=[QuantizationModifier(targets=["Linear"], scheme="W4A16",
                                                  ignore=["lm_head"])])
model.save_pretrained(out, save_compressed=True)
tok.save_pretrained(out)
again = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
ids = tok("Once upon a time, there was a little girl", return_tensors="pt").input_ids
with torch.no_grad():
    assert torch.isfinite(again(ids).logits).all()
print(json.dumps({"seconds": time.perf_counter() - start}))
'''


def quench(work: Path, *extra: str) -> float:
    """Wall seconds of one `quench run` of the default recipe into `work`."""
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "quench", "run", str(RECIPE), f"output.dir={work}", *extra],
        check=True, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def quantize_stage_seconds(work: Path) -> float:
    run = json.loads((work / "tinystories-rtn-w4a16" / "run.json").read_text())
    manifest = Path(run["nodes"]["quantize"]["dir"]) / "manifest.json"
    return json.loads(manifest.read_text())["elapsed_s"]


def bare_oneshot_seconds(model_dir: Path, work: Path) -> float:
    out = work / "bare"
    shutil.rmtree(out, ignore_errors=True)
    result = subprocess.run([sys.executable, "-c", BARE, str(model_dir), str(out)], check=True,
                            capture_output=True, text=True, cwd=work)
    return json.loads(result.stdout.strip().splitlines()[-1])["seconds"]


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path.insert(0, str(REPO))
    from quench.sources import resolve_model

    work = OUT / "spine-work"
    shutil.rmtree(work, ignore_errors=True)
    cold = quench(work)
    warm = statistics.median(quench(work) for _ in range(REPEATS))
    stage, bare = [], []
    model_dir = resolve_model("raincandy-u/TinyStories-656K").path
    for _ in range(REPEATS):
        quench(work, "--force", "quantize")
        stage.append(quantize_stage_seconds(work))
        bare.append(bare_oneshot_seconds(model_dir, work))
    result = {
        "recipe": str(RECIPE.relative_to(REPO)),
        "cold_run_seconds": round(cold, 2),
        "warm_run_seconds_median": round(warm, 2),
        "warm_over_cold": round(warm / cold, 4),
        "warm_over_cold_target": 0.05,
        "quantize_stage_seconds_median": round(statistics.median(stage), 3),
        "bare_oneshot_seconds_median": round(statistics.median(bare), 3),
        "stage_over_bare": round(statistics.median(stage) / statistics.median(bare), 3),
        "stage_over_bare_target": 1.05,
        "repeats": REPEATS,
        "cpu_count": os.cpu_count(),
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "spine.json").write_text(json.dumps(result, indent=2))
    shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
