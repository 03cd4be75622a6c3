"""throughput: a concurrency sweep on the target engine's server, with memory, power and cost.

The quantized checkpoint is served by the recipe's `target.engine` (from its own environment)
and driven by vLLM's own benchmark client (`vllm bench serve`: fixed input/output lengths, a
seeded random prompt set, `--ignore-eos` so every request generates output_len tokens). While
it runs, the server's process tree is sampled for memory (RSS and PSS; NVML memory and power
where a GPU is present). One report.jsonl row per concurrency level, and report.md.
"""

from __future__ import annotations

import inspect
import json
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from pipeline import plan, progress
from pipeline.contract.manifest import Manifest
from pipeline.contract.stage import Stage, StageContext, StageResult
from pipeline.engines import Engine, Server, get_engine
from pipeline.errors import StageError
from pipeline.gpu import gpu_names, nvml_handles
from pipeline.recipe.schema import Recipe
from pipeline.stages import register_stage

MB = 1024 * 1024
STATS = ("mean", "p50", "p95", "p99")
LATENCIES = {"ttft": "ttft", "tpot": "tpot", "itl": "itl", "e2e": "e2el"}  # ours: vLLM's


@register_stage
class ThroughputStage(Stage):
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
        from pipeline.engines import vllm

        return [*super().code_files(), Path(inspect.getfile(plan)), Path(inspect.getfile(vllm))]

    def skip_reason(self, recipe: Recipe, inputs: dict[str, Manifest]) -> str | None:
        target = recipe.target
        if target is None:
            return "the recipe has no `target` engine to serve"
        if recipe.evaluation.throughput is None:
            return "evaluation.throughput is not set"
        engine = _engine(recipe)
        if not engine.served or not hasattr(engine, "benchmark"):
            return f"engine {target.engine!r} has no server with a benchmark client in quench"
        reason = engine.unavailable_reason()
        if reason:
            return reason
        gpu = (target.gpu or "cpu").lower()
        if gpu != "cpu" and not gpu_names():
            return f"target.gpu {target.gpu} needs a CUDA GPU; this machine has none"
        if inputs["model"].skipped:
            return "no quantized checkpoint (quantize was skipped)"
        return engine.model_unsupported_reason(inputs["model"].path("model_dir"))

    def run(self, ctx: StageContext) -> StageResult:
        recipe, spec = ctx.recipe, ctx.recipe.evaluation.throughput
        target, engine = recipe.target, _engine(recipe)
        model_dir = ctx.inputs["model"].path("model_dir")
        params = spec.model_dump()
        rows: list[dict[str, Any]] = []
        start = time.perf_counter()
        with engine.serve(model_dir, ctx.out_dir / "server", target.options,
                          trust_remote_code=recipe.model.trust_remote_code) as server, \
                Sampler(server.pid) as sampler:
            startup_s = time.perf_counter() - start
            idle = sampler.level_peak()
            with progress.task("concurrency levels benchmarked", len(spec.concurrency)):
                for level in spec.concurrency:
                    try:
                        result = engine.benchmark(server, model_dir, level, params,
                                                  ctx.out_dir, spec.timeout_s)
                    except StageError:  # the client failed: was it the server?
                        _check_level(server, {"failed": spec.num_prompts}, level,
                                     spec.num_prompts, only_if_dead=True)
                        raise
                    _check_level(server, result, level, spec.num_prompts)
                    rows.append(_row(level, result, sampler.level_peak(), params))
                    progress.advance()
        memory = _memory(recipe, model_dir, sampler, idle)
        price = _price(recipe)
        for row in rows:
            row["usd_per_million_output_tokens"] = (
                plan.usd_per_million_tokens(price[0], row["output_tokens_per_s"])
                if price[0] and row["output_tokens_per_s"] else f"skipped: {price[1]}")
        return _result(ctx.out_dir, recipe, engine, rows, memory, startup_s, price,
                       server.base_url)


def _engine(recipe: Recipe) -> Engine:
    return get_engine(recipe.target.engine, recipe.target.environment)


class Sampler:
    """Samples the server's process tree (RSS, PSS) and NVML (memory, power) every 0.25 s."""

    def __init__(self, pid: int, interval: float = 0.25) -> None:
        self.pid, self.interval = pid, interval
        self.peak: dict[str, float] = {}
        self.level: dict[str, float] = {}
        self.power: list[float] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._nvml = nvml_handles()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> Sampler:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def level_peak(self) -> dict[str, float]:
        """Peaks since the previous call (and average power), then a new level starts."""
        self._sample()
        with self._lock:
            out = dict(self.level)
            if self.power:
                out["power_w_mean"] = sum(self.power) / len(self.power)
            self.level, self.power = {}, []
        return out

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def _sample(self) -> None:
        values = _tree_memory(self.pid)
        if self._nvml:
            values.update(_nvml_sample(self._nvml))
        with self._lock:
            for key, value in values.items():
                if key == "power_w":
                    self.power.append(value)
                for store in (self.peak, self.level):
                    store[key] = max(store.get(key, 0.0), value)


def _tree_memory(pid: int) -> dict[str, float]:
    """RSS and PSS (shared pages split between the processes) of pid and its descendants, MB."""
    rss = pss = 0.0
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return {}
    for proc in procs:
        try:
            info = proc.memory_full_info()
        except psutil.Error:
            continue
        rss += info.rss / MB
        pss += getattr(info, "pss", info.rss) / MB
    return {"rss_mb": rss, "pss_mb": pss}



def _nvml_sample(handles: list[Any]) -> dict[str, float]:
    import pynvml

    return {
        "gpu_memory_mb": sum(pynvml.nvmlDeviceGetMemoryInfo(h).used for h in handles) / MB,
        "power_w": sum(pynvml.nvmlDeviceGetPowerUsage(h) for h in handles) / 1000,
    }


def _check_level(server: Server, result: dict[str, Any], level: int, prompts: int,
                 only_if_dead: bool = False) -> None:
    """A level with failed requests, or a server that died, fails the stage with the log."""
    from pipeline.engines.vllm import healthy, log_tail

    try:
        alive = psutil.Process(server.pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        alive = False
    alive = alive and healthy(server.base_url)
    failed = int(result.get("failed", 0))
    if alive and (only_if_dead or not failed and int(result.get("completed", 0)) == prompts):
        return
    what = "the server died" if not alive else f"{failed} of {prompts} requests failed"
    raise StageError(f"throughput at concurrency {level}: {what}; last lines of "
                     f"{server.log_path}:\n{log_tail(server.log_path)}")


def _row(level: int, r: dict[str, Any], peak: dict[str, float],
         params: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {
        "concurrency": level, "num_prompts": r["num_prompts"], "completed": r["completed"],
        "failed": r["failed"], "input_len": params["input_len"],
        "output_len": params["output_len"], "input_tokens": r["total_input_tokens"],
        "output_tokens": r["total_output_tokens"], "duration_s": r["duration"],
        "requests_per_s": r["request_throughput"], "output_tokens_per_s": r["output_throughput"],
        "total_tokens_per_s": r["total_token_throughput"],
    }
    for ours, theirs in LATENCIES.items():
        for stat in STATS:
            row[f"{ours}_ms_{stat}"] = r[f"{stat}_{theirs}_ms"]
    row["peak_rss_mb"] = peak.get("rss_mb")
    row["peak_pss_mb"] = peak.get("pss_mb")
    row["peak_gpu_memory_mb"] = peak.get("gpu_memory_mb", "skipped: no NVML (no NVIDIA GPU)")
    row["power_w_mean"] = peak.get("power_w_mean", "skipped: no NVML (no NVIDIA GPU)")
    row["power_w_peak"] = peak.get("power_w", "skipped: no NVML (no NVIDIA GPU)")
    return row


def _memory(recipe: Recipe, model_dir: Path, sampler: Sampler,
            idle: dict[str, float]) -> dict[str, Any]:
    """Predicted (plan's formula) next to measured peak memory for the served configuration."""
    spec, options = recipe.evaluation.throughput, recipe.target.options
    shape = plan.config_shape(model_dir)
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
        "note": "vLLM reserves its KV cache up front (VLLM_CPU_KVCACHE_SPACE on CPU, "
                "gpu_memory_utilization on GPU), and the measured figure includes the runtime "
                "(Python, torch, compiled graphs) of every server process.",
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


def _result(out: Path, recipe: Recipe, engine: Engine, rows: list[dict[str, Any]],
            memory: dict[str, Any], startup_s: float,
            price: tuple[float | None, str], base_url: str) -> StageResult:
    with (out / "report.jsonl").open("w") as f:
        for row in rows:
            f.write(json.dumps(row, sort_keys=True) + "\n")
    columns = sorted({k for row in rows for k in row})
    (out / "table.json").write_text(json.dumps({k: [r.get(k) for r in rows] for k in columns}))
    facts = {"engine": recipe.target.engine, "versions": engine.versions(),
             "gpu": recipe.target.gpu or "cpu", "client": "vllm bench serve "
             "(vllm.benchmarks.serve, from the engine environment)",
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


def render_markdown(rows: list[dict[str, Any]], facts: dict[str, Any]) -> str:
    """Short human summary of the sweep."""
    mem = facts["memory"]
    lines = [
        f"# Throughput: {facts['engine']} on {facts['gpu']}", "",
        f"Client: {facts['client']}. Engine start-up {facts['startup_s']:.1f} s. Versions: "
        + ", ".join(f"{k} {v}" for k, v in sorted(facts["versions"].items())) + ".", "",
        "| concurrency | req/s | out tok/s | TTFT p50/p99 ms | TPOT p50 ms | ITL p50 ms "
        "| e2e p50/p95/p99 ms | peak PSS MB | $/M out tok |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        cost = r["usd_per_million_output_tokens"]
        lines.append(
            f"| {r['concurrency']} | {r['requests_per_s']:.3g} | {r['output_tokens_per_s']:.4g} "
            f"| {r['ttft_ms_p50']:.4g} / {r['ttft_ms_p99']:.4g} | {r['tpot_ms_p50']:.4g} "
            f"| {r['itl_ms_p50']:.4g} | {r['e2e_ms_p50']:.4g} / {r['e2e_ms_p95']:.4g} / "
            f"{r['e2e_ms_p99']:.4g} | {r['peak_pss_mb']:.0f} "
            f"| {cost if isinstance(cost, str) else f'{cost:.4g}'} |")
    lines += [
        "", f"Memory at batch {mem['batch']} x {mem['seq_len']} tokens: predicted "
        f"{mem['predicted_mb']:.0f} MB (weights {mem['predicted']['weights_gib'] * 1024:.1f} MB "
        f"+ KV cache {mem['predicted']['kv_cache_gib'] * 1024:.1f} MB + "
        f"{mem['predicted']['margin']:.0%}), measured peak {mem['measured_peak_mb']:.0f} MB "
        f"({mem['measured']}). {mem['note']}",
        "", _power_line(rows),
        f"Price: {facts['usd_per_hour']} USD/hour ({facts['price_source']}).",
    ]
    return "\n".join(lines) + "\n"


def _power_line(rows: list[dict[str, Any]]) -> str:
    if not rows or isinstance(rows[0]["power_w_mean"], str):
        return f"Power: {rows[0]['power_w_mean'] if rows else 'not measured'}."
    return "Power (NVML, mean W): " + ", ".join(
        f"concurrency {r['concurrency']}: {r['power_w_mean']:.0f}" for r in rows) + "."


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
