"""throughput: a concurrency sweep on the target engine's server, with memory, power and cost.

Every served engine is measured the same way: the folder it loads (the quantized checkpoint,
or the build stage's `model_dir` for an engine that builds, such as TensorRT-LLM) is served by
`target.engine` from its own environment and driven by the shared benchmark client
(quench/serving/bench_client.py: vLLM's `bench serve`, fixed input/output lengths, a seeded
random prompt set, `--ignore-eos`). While it runs, the server's process tree is sampled for
memory (RSS and PSS; NVML memory and power where a GPU is present). One report.jsonl row per
concurrency level, and report.md; the same metric names for every engine.
"""

from __future__ import annotations

import inspect
import json
import re
import time
from pathlib import Path
from typing import Any

from quench import engines, plan, progress, serving
from quench.contract.manifest import Manifest
from quench.contract.stage import Stage, StageContext, StageResult
from quench.engines import Engine, ServedEngine, Server, get_engine
from quench.errors import StageError
from quench.gpu import gpu_names
from quench.recipe.schema import Recipe
from quench.serving.bench_client import DESCRIPTION as CLIENT
from quench.serving.process import alive, log_tail
from quench.serving.rows import render_markdown
from quench.serving.rows import row as level_row
from quench.serving.telemetry import MB, Sampler
from quench.stages import register_stage

__all__ = ["Sampler", "ThroughputStage", "throughput_markdown", "throughput_summary"]

LEVEL_METRIC = re.compile(r"c(?P<level>\d+)_output_tokens_per_s$")

@register_stage
class ThroughputStage(Stage[Recipe]):
    name = "throughput"
    libraries = ("psutil",)

    def config(self, recipe: Recipe) -> dict[str, Any]:
        spec, target = recipe.evaluation.throughput, recipe.target
        return {"throughput": spec.model_dump() if spec else None,
                "target": target.model_dump() if target else None,
                "cost": recipe.cost.model_dump()}

    def fingerprint(self, recipe: Recipe) -> dict[str, Any]:
        if recipe.target is None or recipe.evaluation.throughput is None:
            return {}
        engine = _engine(recipe)
        return {"engine_versions": engine.versions(), "gpus": gpu_names()}

    def code_files(self) -> list[Path]:
        """plan's formula, the engines and the serving package (process, client, sampler)."""
        found = [Path(inspect.getfile(plan))]
        for package in (engines, serving):
            found += sorted(Path(inspect.getfile(package)).parent.glob("*.py"))
        return [*super().code_files(), *found]

    def skip_reason(self, recipe: Recipe, inputs: dict[str, Manifest]) -> str | None:
        target = recipe.target
        if target is None:
            return "the recipe has no `target` engine to serve"
        if recipe.evaluation.throughput is None:
            return "evaluation.throughput is not set"
        engine = _engine(recipe)
        if not engine.capabilities.benchmark:
            return f"engine {target.engine!r} has no server with a benchmark client in quench"
        reason = engine.unavailable_reason(target.options)
        if reason:
            return reason
        gpu = (target.gpu or "cpu").lower()
        if gpu != "cpu" and not gpu_names():
            return f"target.gpu {target.gpu} needs a CUDA GPU; this machine has none"
        source = engine.loads_from(inputs)
        if source.skipped:
            return ("no quantized checkpoint (quantize was skipped)" if source is inputs["model"]
                    else f"nothing built to serve (build: {source.status})")
        return engine.model_unsupported_reason(source.path("model_dir"))

    def headline(self, manifest: Manifest) -> str:
        for key, value in manifest.metrics.items():
            match = LEVEL_METRIC.match(key)
            if match:
                return f"{value:.1f} output tok/s at concurrency {match['level']}"
        return ""

    def run(self, ctx: StageContext[Recipe]) -> StageResult:
        recipe, spec = ctx.recipe, ctx.recipe.evaluation.throughput
        engine = _served(recipe)
        model_dir, hf_dir, options = served_input(ctx, engine)
        params = spec.model_dump()
        rows: list[dict[str, Any]] = []
        start = time.perf_counter()
        with engine.serve(model_dir, ctx.out_dir / "server", options,
                          trust_remote_code=recipe.model.trust_remote_code) as server, \
                Sampler(server.pid) as sampler:
            startup_s = time.perf_counter() - start
            idle = sampler.level_peak()
            with progress.task("concurrency levels benchmarked", len(spec.concurrency)):
                for level in spec.concurrency:
                    try:
                        result = engine.benchmark(server, hf_dir, level, params,
                                                  ctx.out_dir, spec.timeout_s)
                    except StageError:  # the client failed: was it the server?
                        _check_level(server, {"failed": spec.num_prompts}, level,
                                     spec.num_prompts, only_if_dead=True)
                        raise
                    _check_level(server, result, level, spec.num_prompts)
                    rows.append(level_row(level, result, sampler.level_peak(), params))
                    progress.advance()
        memory = _memory(recipe, hf_dir, sampler, idle, engine.memory_note)
        price = _price(recipe)
        for row in rows:
            row["usd_per_million_output_tokens"] = (
                plan.usd_per_million_tokens(price[0], row["output_tokens_per_s"])
                if price[0] and row["output_tokens_per_s"] else f"skipped: {price[1]}")
        return _result(ctx.out_dir, recipe, engine, rows, memory, startup_s, price,
                       server.base_url)


def _engine(recipe: Recipe) -> Engine:
    return get_engine(recipe.target.engine, recipe.target.environment)


def _served(recipe: Recipe) -> ServedEngine:
    """The target engine, which skip_reason checked has a server and a benchmark client."""
    engine = _engine(recipe)
    if not isinstance(engine, ServedEngine):
        raise StageError(f"engine {engine.name!r} declares a benchmark but is no ServedEngine")
    return engine


def served_input(ctx: StageContext[Recipe], engine: ServedEngine
                 ) -> tuple[Path, Path, dict[str, Any]]:
    """What the engine serves (model_dir of loads_from), the HF-layout folder with config.json
    and tokenizer, and target.options plus the build's serve_options."""
    source = engine.loads_from(ctx.inputs)
    model_dir = source.path("model_dir")
    hf_dir = source.path("tokenizer_dir") if "tokenizer_dir" in source.outputs else model_dir
    options = {**ctx.recipe.target.options, **source.outputs.get("serve_options", {})}
    return model_dir, hf_dir, options


def _check_level(server: Server, result: dict[str, Any], level: int, prompts: int,
                 only_if_dead: bool = False) -> None:
    """A level with failed requests, or a server that died, fails the stage with the log."""
    up = alive(server)
    failed = int(result.get("failed", 0))
    if up and (only_if_dead or not failed and int(result.get("completed", 0)) == prompts):
        return
    what = "the server died" if not up else f"{failed} of {prompts} requests failed"
    raise StageError(f"throughput at concurrency {level}: {what}; last lines of "
                     f"{server.log_path}:\n{log_tail(server.log_path)}")


def _memory(recipe: Recipe, hf_dir: Path, sampler: Sampler, idle: dict[str, float],
            note: str) -> dict[str, Any]:
    """Predicted (plan's formula) next to measured peak memory for the served configuration."""
    spec, options = recipe.evaluation.throughput, recipe.target.options
    shape = plan.config_shape(hf_dir)
    dense = plan.serving_dtype_bytes(shape, options.get("dtype"))
    batch, seq_len = max(spec.concurrency), spec.input_len + spec.output_len
    predicted = plan.estimate(shape, plan.recipe_scheme(recipe), dense, batch, seq_len)
    gpu = "gpu_memory_mb" in sampler.peak
    measured = sampler.peak["gpu_memory_mb" if gpu else "pss_mb"]
    return {
        "batch": batch, "seq_len": seq_len, "predicted": predicted.as_gib(),
        "predicted_mb": predicted.total_bytes / MB, "measured_peak_mb": measured,
        "measured": "NVML memory used (all GPUs)" if gpu else
                    "PSS of the server's process tree (CPU memory)",
        "peak_rss_mb": sampler.peak.get("rss_mb"), "after_startup_pss_mb": idle.get("pss_mb"),
        "note": note,
    }


def _price(recipe: Recipe) -> tuple[float | None, str]:
    """USD/hour of the sweep's machine and where it came from (or why there is none)."""
    if recipe.cost.usd_per_hour:
        return recipe.cost.usd_per_hour, "cost.usd_per_hour"
    gpu = recipe.target.gpu or "cpu"
    price = plan.gpu_price(recipe, gpu)
    if price is None:
        return None, f"no price for target.gpu {gpu!r}: set cost.usd_per_hour"
    return price, f"price table ({gpu})"


def _result(out: Path, recipe: Recipe, engine: ServedEngine, rows: list[dict[str, Any]],
            memory: dict[str, Any], startup_s: float,
            price: tuple[float | None, str], base_url: str) -> StageResult:
    with (out / "report.jsonl").open("w") as f:
        for row in rows:
            f.write(json.dumps(row, sort_keys=True) + "\n")
    columns = sorted({k for row in rows for k in row})
    (out / "table.json").write_text(json.dumps({k: [r.get(k) for r in rows] for k in columns}))
    facts = {"engine": recipe.target.engine, "versions": engine.versions(),
             "gpu": recipe.target.gpu or "cpu", "client": CLIENT,
             "startup_s": startup_s, "server_url": base_url, "usd_per_hour": price[0],
             "price_source": price[1],
             "memory": memory}
    (out / "report.md").write_text(render_markdown(rows, facts))
    metrics: dict[str, float] = {"engine_startup_s": startup_s,
                                 "predicted_memory_mb": memory["predicted_mb"],
                                 "peak_memory_mb": memory["measured_peak_mb"]}
    for row in rows:
        c = row["concurrency"]
        for key in ("output_tokens_per_s", "requests_per_s", "ttft_ms_p50", "ttft_ms_p99",
                    "tpot_ms_p50", "itl_ms_p50", "e2e_ms_p50", "e2e_ms_p95", "e2e_ms_p99",
                    "peak_pss_mb", "power_w_mean", "usd_per_million_output_tokens"):
            if isinstance(row.get(key), int | float):
                metrics[f"c{c}_{key}"] = float(row[key])
    outputs = {"report_jsonl": "report.jsonl", "report_md": "report.md", "table": "table.json",
               "server_log": "server/server.log", "rows": rows, **facts}
    return StageResult(outputs=outputs, metrics=metrics)


def throughput_summary(manifest: Manifest | None) -> dict[str, Any]:
    """The run report's throughput section: rows, memory and cost, or the skip reason."""
    if manifest is None:
        return {}
    if manifest.skipped:
        return {"status": manifest.status}
    keep = ("engine", "gpu", "versions", "client", "startup_s", "usd_per_hour", "price_source",
            "memory", "rows")
    return {"status": manifest.status, **{k: manifest.outputs.get(k) for k in keep}}


def throughput_markdown(summary: dict[str, Any]) -> list[str]:
    """The run report's throughput section in Markdown."""
    if not summary:
        return []
    if "rows" not in summary:
        return ["", "## Throughput", "", f"Throughput: {summary['status']}."]
    body = render_markdown(summary["rows"], summary).splitlines()
    return ["", "## Throughput", "", *body[2:]]  # its own title becomes a section
