"""build: TensorRT-LLM engine build, serving and throughput for the exported checkpoint.

Backend `pytorch` (the LLM API) loads the exported HF checkpoint directly; backend `tensorrt`
(legacy) first builds an engine with trtllm-build. Then trtllm-bench measures offline
throughput, trtllm-serve starts the OpenAI-compatible server and the serving benchmark the vllm
engine uses (vLLM's client) measures it. That runs only where a CUDA device and TensorRT-LLM
(in target.environment or target.options.container) are present. Everywhere, the stage writes
build_plan.sh with the exact commands; without CUDA or TensorRT-LLM its status is
`skipped: <reason>` and it reports no number.
"""

from __future__ import annotations

import inspect
import json
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline import compat
from pipeline.contract.manifest import Manifest
from pipeline.contract.stage import Stage, StageContext, StageResult
from pipeline.engines import get_engine
from pipeline.engines import tensorrt_llm as trt
from pipeline.errors import StageError
from pipeline.gpu import cuda_device_count
from pipeline.recipe.schema import Recipe
from pipeline.stages import register_stage

HERE = "__HERE__"  # the stage folder: "$PWD" in build_plan.sh, its real path when run here
PLAN_PORT = 8000
DEFAULT_BENCH = {"concurrency": [1], "input_len": 128, "output_len": 128, "num_prompts": 64,
                 "seed": 0, "warmups": 1}


@register_stage
class BuildStage(Stage):
    name = "build"

    def config(self, recipe: Recipe) -> dict[str, Any]:
        target, spec = recipe.target, recipe.evaluation.throughput
        return {"target": target.model_dump() if target else None, "model": recipe.model.id,
                "bench": spec.model_dump() if spec else DEFAULT_BENCH,
                "lm_eval": (recipe.evaluation.lm_eval.tasks if recipe.evaluation.lm_eval
                            else None)}

    def fingerprint(self, recipe: Recipe) -> dict[str, Any]:
        """Whether this host can build enters the key: a GPU host does not reuse a plan."""
        if recipe.target is None or recipe.target.engine != "tensorrt-llm":
            return {}
        engine = get_engine("tensorrt-llm", recipe.target.environment)
        return {"cuda_devices": cuda_device_count(), "versions": engine.versions()}

    def code_files(self) -> list[Path]:
        return [*super().code_files(), Path(inspect.getfile(trt))]

    def skip_reason(self, recipe: Recipe, inputs: dict[str, Manifest]) -> str | None:
        if recipe.target is None:
            return "the recipe has no target engine"
        if recipe.target.engine != "tensorrt-llm":
            return f"engine {recipe.target.engine} loads the checkpoint as it is: nothing to build"
        if inputs["checkpoint"].skipped:
            return "no exported checkpoint (export was skipped)"
        return None

    def run(self, ctx: StageContext) -> StageResult:
        plan = make_plan(ctx.recipe, ctx.inputs["checkpoint"])
        trt.write_bench_dataset(ctx.out_dir / plan.dataset, plan.vocab_size,
                                plan.bench["input_len"], plan.bench["output_len"],
                                plan.bench["num_prompts"], plan.bench["seed"])
        if plan.extra:
            trt.write_extra_options(plan.options, ctx.out_dir)
        script = ctx.out_dir / "build_plan.sh"
        script.write_text(render_script(plan, ctx.recipe))
        script.chmod(0o755)
        (ctx.out_dir / "plan.json").write_text(json.dumps(plan.as_dict(), indent=2))
        outputs = {"build_plan": "build_plan.sh", "plan": "plan.json",
                   "bench_dataset": plan.dataset, "backend": plan.backend,
                   "checkpoint_dir": str(plan.checkpoint), "commands": plan.as_dict()}
        reason = plan.engine.unavailable_reason(ctx.recipe.target.options)
        if reason:
            return StageResult(outputs={**outputs, "not_run": reason},
                               status=f"skipped: {reason}")
        metrics = run_plan(plan, ctx.out_dir)
        return StageResult(outputs={**outputs, "model_dir": plan.served_model(ctx.out_dir)},
                           metrics=metrics)


@dataclass
class Plan:
    """The commands for one recipe's target, with stage-folder paths relative to HERE."""

    engine: trt.TensorRtLlmEngine
    options: trt.TrtllmOptions
    backend: str
    checkpoint: Path
    source: Path
    model_id: str
    quant_algo: str | None
    kv_algo: str | None
    vocab_size: int
    bench: dict[str, Any]
    lm_eval_tasks: list[str] | None
    dataset: str = "bench_dataset.jsonl"
    build: list[str] | None = None
    bench_cmd: list[str] = field(default_factory=list)
    serve: list[str] = field(default_factory=list)

    @property
    def extra(self) -> str | None:
        return f"{HERE}/extra_llm_api_options.yaml" if self.options.extra_llm_api_options else None

    def served_model(self, here: Path) -> str:
        return str(here / "engine") if self.backend == "tensorrt" else str(self.checkpoint)

    def as_dict(self) -> dict[str, Any]:
        return {"build": self.build, "bench": self.bench_cmd, "serve": self.serve,
                "serving_benchmark": [serving_bench_command(self, c, "vllm")
                                      for c in self.bench["concurrency"]]}


def make_plan(recipe: Recipe, checkpoint: Manifest) -> Plan:
    """Every command for the recipe's target and the exported checkpoint."""
    target = recipe.target
    engine = get_engine(target.engine, target.environment)
    options = trt.parse_options(target.options)
    backend = compat.backend_of(target.engine, target.backend)
    ckpt, source = checkpoint.path("model_dir"), Path(checkpoint.outputs["source_model_dir"])
    facts = checkpoint.outputs["validation"]
    vocab = json.loads((source / "config.json").read_text())["vocab_size"]
    spec = recipe.evaluation.throughput
    plan = Plan(engine, options, backend, ckpt, source, recipe.model.id, facts.get("quant_algo"),
                facts.get("kv_cache_quant_algo"), int(vocab),
                spec.model_dump() if spec else dict(DEFAULT_BENCH),
                recipe.evaluation.lm_eval.tasks if recipe.evaluation.lm_eval else None)
    mounts = [ckpt, source, Path(HERE)]
    prefix = engine.command_prefix(options, mounts)
    if prefix:
        prefix = [*prefix[:-1], "-w", HERE, prefix[-1]]
    extra = Path(plan.extra) if plan.extra else None
    if backend == "tensorrt":
        plan.build = prefix + trt.build_command(
            engine.tool("trtllm-build", options), ckpt, Path(f"{HERE}/engine"), plan.quant_algo,
            plan.kv_algo, options)
    plan.bench_cmd = prefix + trt.bench_command(
        engine.tool("trtllm-bench", options), recipe.model.id,
        source if backend == "tensorrt" else ckpt, Path(f"{HERE}/{plan.dataset}"), backend,
        options, Path(f"{HERE}/trtllm_bench.json"),
        engine_dir=Path(f"{HERE}/engine") if backend == "tensorrt" else None, extra=extra)
    serve_prefix = engine.command_prefix(options, mounts, network=True)
    plan.serve = serve_prefix + trt.serve_command(
        engine.tool("trtllm-serve", options), Path(plan.served_model(Path(HERE))), backend,
        options, options.port or PLAN_PORT, extra=extra,
        tokenizer=source if backend == "tensorrt" else None)
    return plan


def serving_bench_command(plan: Plan, concurrency: int, vllm: str) -> list[str]:
    """vLLM's serving benchmark client against trtllm-serve (what the vllm engine runs)."""
    b = plan.bench
    return [vllm, "bench", "serve", "--backend", "openai", "--base-url",
            f"http://127.0.0.1:{plan.options.port or PLAN_PORT}", "--endpoint", "/v1/completions",
            "--model", plan.served_model(Path(HERE)), "--tokenizer", str(plan.source),
            "--dataset-name", "random", "--random-input-len", str(b["input_len"]),
            "--random-output-len", str(b["output_len"]), "--random-range-ratio", "0",
            "--num-prompts", str(b["num_prompts"]), "--seed", str(b["seed"]),
            "--max-concurrency", str(concurrency), "--request-rate", "inf", "--ignore-eos",
            "--temperature", "0", "--percentile-metrics", "ttft,tpot,itl,e2el",
            "--save-result", "--result-dir", HERE, "--result-filename",
            f"serve_c{concurrency}.json"]


def lm_eval_command(plan: Plan, recipe: Recipe) -> list[str] | None:
    """lm-eval's local-completions model against trtllm-serve (quench's own environment)."""
    if not plan.lm_eval_tasks:
        return None
    repo = Path(__file__).resolve().parents[2]
    args = (f"base_url=http://127.0.0.1:{plan.options.port or PLAN_PORT}/v1/completions,"
            f"model={plan.served_model(Path(HERE))},tokenizer={plan.source},"
            "tokenizer_backend=huggingface,num_concurrent=1,max_retries=3")
    return [sys.executable, "-m", "lm_eval", "--model", "local-completions", "--model_args",
            args, "--tasks", ",".join(plan.lm_eval_tasks), "--include_path",
            str(repo / "evals"), "--output_path", f"{HERE}/lm_eval"]


def render_script(plan: Plan, recipe: Recipe) -> str:
    """build_plan.sh: the same commands, to run on a GPU host with TensorRT-LLM 1.x."""
    def line(cmd: list[str]) -> str:
        return shlex.join(cmd).replace(HERE, '"$PWD"')

    where = (f"in the container {plan.options.container}" if plan.options.container else
             f"with the environment {plan.engine.env_dir}")
    port = plan.options.port or PLAN_PORT
    out = ["#!/usr/bin/env bash",
           f"# quench build plan for recipe {recipe.name}: TensorRT-LLM ({plan.backend} backend), "
           f"{where}.",
           f"# Checkpoint: {plan.checkpoint} (validated offline: quant_algo "
           f"{plan.quant_algo}, KV cache {plan.kv_algo}).",
           "# Needs a CUDA GPU. Outputs land next to this script.",
           "set -euo pipefail", 'cd "$(dirname "$0")"', ""]
    steps = [("Build the TensorRT engine (legacy backend)", [line(plan.build)] if plan.build
              else []),
             ("Offline throughput (bench_dataset.jsonl is written by quench)",
              [line(plan.bench_cmd)]),
             ("Serve (OpenAI-compatible) and wait until healthy",
              [line(plan.serve) + " &", "SERVER=$!", "trap 'kill $SERVER' EXIT",
               f"until curl -sf http://127.0.0.1:{port}/health >/dev/null; do sleep 5; done"]),
             ("Serving benchmark: vLLM's client, as the vllm engine's throughput stage (VLLM: "
              "the `vllm` executable of an environment with vLLM)",
              [line(serving_bench_command(plan, c, "${VLLM:-vllm}")).replace(
                  "'${VLLM:-vllm}'", '"${VLLM:-vllm}"') for c in plan.bench["concurrency"]])]
    lm = lm_eval_command(plan, recipe)
    if lm:
        steps.append(("lm-eval through the server (local-completions)", [line(lm)]))
    for number, (title, lines) in enumerate([s for s in steps if s[1]], start=1):
        out += [f"# {number}. {title}", *lines, ""]
    return "\n".join(out) + "\n"


def run_plan(plan: Plan, here: Path) -> dict[str, float]:
    """On a GPU host: the plan's commands for real; metrics from the tools' own reports."""
    def real(cmd: list[str]) -> list[str]:
        return [part.replace(HERE, str(here)) for part in cmd]

    if plan.build:
        _run(real(plan.build), here, "trtllm-build")
    _run(real(plan.bench_cmd), here, "trtllm-bench")
    metrics = {f"trtllm_bench_{k}": v for k, v in
               _numbers(json.loads((here / "trtllm_bench.json").read_text())).items()}
    options = {**plan.options.model_dump(), "backend": plan.backend}
    if plan.backend == "tensorrt":
        options["tokenizer"] = plan.source
    with plan.engine.serve(Path(plan.served_model(here)), here / "server", options) as server:
        for c in plan.bench["concurrency"]:
            try:
                result = plan.engine.benchmark(server, plan.source, c, plan.bench, here, 3600)
            except StageError as exc:  # no vLLM client here: trtllm-bench's numbers stand
                (here / "serving_benchmark_skipped.txt").write_text(str(exc))
                break
            metrics[f"c{c}_output_tokens_per_s"] = float(result["output_throughput"])
    return metrics


def _run(cmd: list[str], cwd: Path, what: str) -> None:
    log = cwd / f"{what}.log"
    with log.open("wb") as fh:
        code = subprocess.run(cmd, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT).returncode
    if code != 0:
        from pipeline.engines.vllm import log_tail

        raise StageError(f"{what} failed (exit {code}); last lines of {log}:\n{log_tail(log)}")


def _numbers(data: Any, prefix: str = "") -> dict[str, float]:
    """The numeric leaves of a JSON report, keyed by their path."""
    if isinstance(data, dict):
        found: dict[str, float] = {}
        for key, value in data.items():
            found.update(_numbers(value, f"{prefix}{key}_" if prefix or key else ""))
        return found
    if isinstance(data, int | float) and not isinstance(data, bool):
        return {prefix.rstrip("_"): float(data)}
    return {}
