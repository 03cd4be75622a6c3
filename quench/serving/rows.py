"""The throughput sweep's rows (one per concurrency, from the benchmark client's JSON and the
sampler's peaks) and their Markdown summary, shared by the stage and the run report."""

from __future__ import annotations

from typing import Any

STATS = ("mean", "p50", "p95", "p99")
LATENCIES = {"ttft": "ttft", "tpot": "tpot", "itl": "itl", "e2e": "e2el"}  # ours: vLLM's
NO_NVML = "skipped: no NVML (no NVIDIA GPU)"


def row(level: int, r: dict[str, Any], peak: dict[str, float],
        params: dict[str, Any]) -> dict[str, Any]:
    """One report.jsonl row: the client's counts, rates and latency percentiles, and peaks."""
    out: dict[str, Any] = {
        "concurrency": level, "num_prompts": r["num_prompts"], "completed": r["completed"],
        "failed": r["failed"], "input_len": params["input_len"],
        "output_len": params["output_len"], "input_tokens": r["total_input_tokens"],
        "output_tokens": r["total_output_tokens"], "duration_s": r["duration"],
        "requests_per_s": r["request_throughput"], "output_tokens_per_s": r["output_throughput"],
        "total_tokens_per_s": r["total_token_throughput"],
    }
    for ours, theirs in LATENCIES.items():
        for stat in STATS:
            out[f"{ours}_ms_{stat}"] = r[f"{stat}_{theirs}_ms"]
    out["peak_rss_mb"] = peak.get("rss_mb")
    out["peak_pss_mb"] = peak.get("pss_mb")
    out["peak_gpu_memory_mb"] = peak.get("gpu_memory_mb", NO_NVML)
    out["power_w_mean"] = peak.get("power_w_mean", NO_NVML)
    out["power_w_peak"] = peak.get("power_w", NO_NVML)
    return out


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
        "", power_line(rows),
        f"Price: {facts['usd_per_hour']} USD/hour ({facts['price_source']}).",
    ]
    return "\n".join(lines) + "\n"


def power_line(rows: list[dict[str, Any]]) -> str:
    if not rows or isinstance(rows[0]["power_w_mean"], str):
        return f"Power: {rows[0]['power_w_mean'] if rows else 'not measured'}."
    return "Power (NVML, mean W): " + ", ".join(
        f"concurrency {r['concurrency']}: {r['power_w_mean']:.0f}" for r in rows) + "."
