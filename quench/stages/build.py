"""build: the folder TensorRT-LLM serves, and the commands to deploy it, for the exported
checkpoint.

Backend `tensorrt` (legacy) builds an engine with trtllm-build on a GPU host: its `engine/`
folder is the manifest's `model_dir`. Backend `pytorch` (the LLM API) loads the exported HF
checkpoint directly: `model_dir` is the export's. The build stage serves and measures nothing:
the throughput and lm_eval stages serve `model_dir` like any engine's (capabilities.builds).
Everywhere, the stage writes build_plan.sh (build, serve, the shared serving benchmark
command, and an optional trtllm-bench line) and plan.json; without CUDA or TensorRT-LLM its
status is `skipped: <reason>`.
"""

from __future__ import annotations

import inspect
import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quench import compat
from quench.contract.manifest import Manifest
from quench.contract.stage import Stage, StageContext, StageResult
from quench.engines import Engine, get_engine
from quench.engines import tensorrt_llm as trt
from quench.gpu import cuda_device_count
from quench.recipe.schema import Recipe
from quench.serving import bench_client
from quench.serving.process import check_logged
from quench.stages import register_stage

HERE = "__HERE__"  # the stage folder: "$PWD" in build_plan.sh, its real path when run here
PLAN_PORT = 8000
PLAN_CLIENT = "${VLLM:-vllm}"  # build_plan.sh: the `vllm` executable of a vLLM environment
DEFAULT_BENCH = {"concurrency": [1], "input_len": 128, "output_len": 128, "num_prompts": 64,
                 "seed": 0, "warmups": 1}


@register_stage
class BuildStage(Stage[Recipe]):
    name = "build"

    def config(self, recipe: Recipe) -> dict[str, Any]:
        target, spec = recipe.target, recipe.evaluation.throughput
        return {"target": target.model_dump() if target else None, "model": recipe.model.id,
                "bench": spec.model_dump() if spec else DEFAULT_BENCH}

    def fingerprint(self, recipe: Recipe) -> dict[str, Any]:
        """Whether this host can build enters the key: a GPU host does not reuse a plan."""
        engine = _builder(recipe)
        if engine is None:
            return {}
        return {"cuda_devices": cuda_device_count(), "versions": engine.versions()}

    def code_files(self) -> list[Path]:
        return [*super().code_files(), Path(inspect.getfile(trt)),
                Path(inspect.getfile(bench_client))]

    def skip_reason(self, recipe: Recipe, inputs: dict[str, Manifest]) -> str | None:
        if recipe.target is None:
            return "the recipe has no target engine"
        if _builder(recipe) is None:
            return f"engine {recipe.target.engine} loads the checkpoint as it is: nothing to build"
        if inputs["checkpoint"].skipped:
            return "no exported checkpoint (export was skipped)"
        return None

    def run(self, ctx: StageContext[Recipe]) -> StageResult:
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
        if plan.build:
            check_logged(plan.real(plan.build, ctx.out_dir), ctx.out_dir, None,
                         ctx.out_dir / "trtllm-build.log", "trtllm-build")
        return StageResult(outputs={**outputs, **plan.served(ctx.out_dir)})


def _builder(recipe: Recipe) -> Engine | None:
    """The target engine when it serves what this stage builds (capabilities.builds)."""
    if recipe.target is None:
        return None
    engine = get_engine(recipe.target.engine, recipe.target.environment)
    return engine if engine.capabilities.builds else None


@dataclass
class Plan:
    """The commands for one recipe's target, with stage-folder paths relative to HERE."""

    engine: trt.TensorRtLlmEngine
    options: trt.TrtllmOptions
    backend: str
    checkpoint: Path
    source: Path
    quant_algo: str | None
    kv_algo: str | None
    vocab_size: int
    bench: dict[str, Any]
    dataset: str = "bench_dataset.jsonl"
    build: list[str] | None = None
    bench_cmd: list[str] = field(default_factory=list)
    serve: list[str] = field(default_factory=list)

    @property
    def extra(self) -> str | None:
        return f"{HERE}/extra_llm_api_options.yaml" if self.options.extra_llm_api_options else None

    @property
    def tokenizer(self) -> Path:
        """An engine folder has no tokenizer: the source model's; the checkpoint has one."""
        return self.source if self.backend == "tensorrt" else self.checkpoint

    def served_model(self, here: Path) -> str:
        return str(here / "engine") if self.backend == "tensorrt" else str(self.checkpoint)

    def served(self, here: Path) -> dict[str, Any]:
        """The manifest outputs the serving stages read: the folder, tokenizer, serve options."""
        options: dict[str, Any] = {"backend": self.backend}
        if self.backend == "tensorrt":
            options["tokenizer"] = str(self.source)
        return {"model_dir": self.served_model(here), "tokenizer_dir": str(self.tokenizer),
                "serve_options": options}

    @staticmethod
    def real(cmd: list[str], here: Path) -> list[str]:
        return [part.replace(HERE, str(here)) for part in cmd]

    def serving_benchmarks(self, client: str) -> list[list[str]]:
        """The throughput stage's client command lines against the plan's server."""
        return [bench_client.bench_command(
            [client, "bench", "serve"], f"http://127.0.0.1:{self.options.port or PLAN_PORT}",
            self.served_model(Path(HERE)), self.tokenizer, c, self.bench, HERE,
            bench_client.result_name(c)) for c in self.bench["concurrency"]]

    def as_dict(self) -> dict[str, Any]:
        return {"build": self.build, "serve": self.serve,
                "serving_benchmark": self.serving_benchmarks("vllm"), "bench": self.bench_cmd}


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
    plan = Plan(engine, options, backend, ckpt, source, facts.get("quant_algo"),
                facts.get("kv_cache_quant_algo"), int(vocab),
                spec.model_dump() if spec else dict(DEFAULT_BENCH))
    mounts = [ckpt, source, Path(HERE)]
    prefix = engine.command_prefix(options, mounts)
    if prefix:
        prefix = [*prefix[:-1], "-w", HERE, prefix[-1]]
    extra = Path(plan.extra) if plan.extra else None
    engine_dir = Path(f"{HERE}/engine") if backend == "tensorrt" else None
    if engine_dir is not None:
        plan.build = prefix + trt.build_command(
            engine.tool("trtllm-build", options), ckpt, engine_dir, plan.quant_algo,
            plan.kv_algo, options)
    plan.bench_cmd = prefix + trt.bench_command(
        engine.tool("trtllm-bench", options), recipe.model.id,
        source if backend == "tensorrt" else ckpt, Path(f"{HERE}/{plan.dataset}"), backend,
        options, Path(f"{HERE}/trtllm_bench.json"), engine_dir=engine_dir, extra=extra)
    serve_prefix = engine.command_prefix(options, mounts, network=True)
    plan.serve = serve_prefix + trt.serve_command(
        engine.tool("trtllm-serve", options), Path(plan.served_model(Path(HERE))), backend,
        options, options.port or PLAN_PORT, extra=extra,
        tokenizer=source if backend == "tensorrt" else None)
    return plan


def render_script(plan: Plan, recipe: Recipe) -> str:
    """build_plan.sh: the same commands, to run on a GPU host with TensorRT-LLM 1.x."""
    def line(cmd: list[str]) -> str:
        return shlex.join(cmd).replace(HERE, '"$PWD"').replace(
            f"'{PLAN_CLIENT}'", f'"{PLAN_CLIENT}"')

    where = (f"in the container {plan.options.container}" if plan.options.container else
             f"with the environment {plan.engine.env_dir}")
    port = plan.options.port or PLAN_PORT
    out = ["#!/usr/bin/env bash",
           f"# quench build plan for recipe {recipe.name}: TensorRT-LLM ({plan.backend} backend), "
           f"{where}.",
           f"# Checkpoint: {plan.checkpoint} (validated offline: quant_algo "
           f"{plan.quant_algo}, KV cache {plan.kv_algo}).",
           "# Needs a CUDA GPU. Outputs land next to this script. On such a host `quench run`",
           "# itself builds (step 1) and its throughput/lm_eval stages serve and measure.",
           "set -euo pipefail", 'cd "$(dirname "$0")"', ""]
    steps = [("Build the TensorRT engine (legacy backend)", [line(plan.build)] if plan.build
              else []),
             ("Serve (OpenAI-compatible) and wait until healthy",
              [line(plan.serve) + " &", "SERVER=$!", "trap 'kill $SERVER' EXIT",
               f"until curl -sf http://127.0.0.1:{port}/health >/dev/null; do sleep 5; done"]),
             ("Serving benchmark: vLLM's client, as the throughput stage runs it (VLLM: the "
              "`vllm` executable of an environment with vLLM)",
              [line(cmd) for cmd in plan.serving_benchmarks(PLAN_CLIENT)]),
             ("Optional, not run by quench: trtllm-bench offline throughput "
              "(bench_dataset.jsonl is written by quench)", [line(plan.bench_cmd)])]
    for number, (title, lines) in enumerate([s for s in steps if s[1]], start=1):
        out += [f"# {number}. {title}", *lines, ""]
    return "\n".join(out) + "\n"
