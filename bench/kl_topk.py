"""How tight the top-k KL bound is, per k: the data behind evaluation.perplexity.top_k's default.

For each suite (a baseline recipe and candidate recipes), runs the pipeline, then on the
baseline's exact subset (its first `exact_kl_tokens` scored positions) computes, one model in
memory at a time: the float64 full-vocabulary KL (the truth), the stored float16 subset's exact
KL (its encoding error), and for every k the top-k bound with float16 and with float32 values
(their difference is what float16 storage costs), the covered mass and the storage per token.
Writes artifacts/bench/kl_topk.json and kl_topk.md.

    .venv/bin/python bench/kl_topk.py [--suite smollm2|tinystories ...] [--set key=value ...]
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from quench.contract.manifest import Manifest  # noqa: E402
from quench.metrics.kl import exact_kl, topk_arrays, topk_kl  # noqa: E402
from quench.models import load_model  # noqa: E402
from quench.recipe import load_recipe  # noqa: E402
from quench.stages.evaluate import prepare_windows  # noqa: E402

OUT = REPO / "artifacts" / "bench"
WORK = OUT / "kl-topk-work"
KS = (10, 32, 64, 128, 256, 512, 1024, 2048)
NUCLEUS = (0.95, 0.97, 0.99)
SUITES = {
    "smollm2": ("smollm2-none", ["smollm2-rtn-w4a16-channel", "smollm2-gptq-w4a16",
                                 "smollm2-fp8-dynamic"],
                ["evaluation.perplexity.max_windows=8",
                 "evaluation.perplexity.exact_kl_tokens=512"]),
    "tinystories": ("tinystories-none", ["tinystories-rtn-w4a16", "tinystories-gptq-w4a16",
                                         "tinystories-fp8-dynamic"],
                    ["evaluation.perplexity.max_windows=24",
                     "evaluation.perplexity.exact_kl_tokens=1024"]),
}


def run_recipe(recipe: str, overrides: list[str]) -> dict:
    """Runs one recipe through the real CLI; returns its run.json nodes."""
    cmd = [sys.executable, "-m", "quench", "run", str(REPO / "recipes" / f"{recipe}.yaml"),
           f"output.dir={WORK}", "tracking.backend=none", *overrides]
    subprocess.run(cmd, check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    return json.loads((WORK / recipe / "run.json").read_text())["nodes"]


def model_dir(nodes: dict, node: str) -> Path:
    """The checkpoint folder a node's manifest points at."""
    manifest = Manifest.read(Path(nodes[node]["dir"]))
    assert manifest is not None, f"{node} has no manifest"
    return manifest.path("model_dir")


def subset_windows(recipe_name: str, overrides: list[str], model_dir: Path,
                   n: int) -> list[tuple[np.ndarray, int]]:
    """The evaluation windows holding the first n scored positions, with each one's first."""
    recipe = load_recipe(REPO / "recipes" / f"{recipe_name}.yaml", overrides)
    windows, _ = prepare_windows(recipe, model_dir)
    rows, count = [], 0
    for row, first in zip(windows.inputs, windows.first_scored, strict=True):
        rows.append((row, int(first)))
        count += len(row) - 1 - int(first)
        if count >= n:
            return rows
    raise ValueError(f"the windows hold {count} scored positions, fewer than {n}")


def subset_logits(model_dir: Path, rows: list[tuple[np.ndarray, int]], n: int) -> torch.Tensor:
    """float32 logits [n, V] of the first n scored positions (one model loaded, then freed)."""
    model = load_model(model_dir, "float32")
    out = []
    with torch.no_grad():
        for row, first in rows:
            logits = model(input_ids=torch.from_numpy(row[None])).logits[0, first:-1]
            out.append(logits.float())
    del model
    return torch.cat(out)[:n]


def measure(base: torch.Tensor, cand: torch.Tensor, stored: np.ndarray) -> dict:
    """Exact KL (float64 and from the stored subset) and, per k, the bound and its cost."""
    b64, c64 = torch.log_softmax(base.double(), -1), torch.log_softmax(cand.double(), -1)
    truth = float((b64.exp() * (b64 - c64)).sum(-1).mean())
    b32, c32 = torch.log_softmax(base, -1), torch.log_softmax(cand, -1)
    from_stored = float(exact_kl(c32, torch.from_numpy(stored)).mean())
    rows = []
    for k in sorted({min(k, base.shape[-1]) for k in KS}):
        values, ids, rest = topk_arrays(b32, k)
        bound = float(topk_kl(c32, *map(torch.from_numpy, (values, ids, rest))).mean())
        v32 = b32.gather(-1, torch.from_numpy(ids).long())
        bound32 = float(topk_kl(c32, v32, torch.from_numpy(ids), torch.from_numpy(rest)).mean())
        rows.append({"k": k, "bound": bound, "ratio": bound / truth,
                     "fp16_vs_fp32_pct": 100 * (bound / bound32 - 1),
                     "topk_mass": float((1 - np.exp(rest.astype(np.float64))).mean()),
                     "bytes_per_token": k * 6 + 4,
                     "compressed_bytes_per_token": compressed(values, ids, rest) / len(ids)})
    return {"kl_float64": truth, "kl_stored_subset": from_stored,
            "stored_subset_error_pct": 100 * (from_stored / truth - 1), "per_k": rows,
            "nucleus": [nucleus(b32, c32, mass, truth) for mass in NUCLEUS]}


def nucleus(b32: torch.Tensor, c32: torch.Tensor, mass: float, truth: float) -> dict:
    """The bound when each position keeps the fewest tokens covering `mass`, and their count."""
    cumulative = b32.double().exp().sort(-1, descending=True).values.cumsum(-1)
    counts = ((cumulative < mass).sum(-1) + 1).clamp(max=b32.shape[-1]).tolist()
    bound = sum(float(topk_kl(c32[i : i + 1], *map(torch.from_numpy, topk_arrays(
        b32[i : i + 1], k))).sum()) for i, k in enumerate(counts))
    return {"mass": mass, "mean_tokens": float(np.mean(counts)),
            "median_tokens": float(np.median(counts)), "ratio": bound / len(counts) / truth}


def compressed(*arrays: np.ndarray) -> int:
    """Bytes of np.savez_compressed of these arrays: what zlib would save on disk."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, *arrays)
    return buffer.tell()


def run_suite(name: str, extra: list[str]) -> dict:
    baseline, candidates, overrides = SUITES[name]
    overrides = [*overrides, *extra]
    nodes = run_recipe(baseline, overrides)
    base_dir = model_dir(nodes, "resolve")
    topk = Path(nodes["baseline_eval"]["dir"]) / "topk"
    stored, stored_k = np.load(topk / "exact.npy"), np.load(topk / "ids.npy").shape[1]
    n = len(stored)
    rows = subset_windows(baseline, overrides, base_dir, n)
    base = subset_logits(base_dir, rows, n)
    result = {"baseline": baseline, "overrides": overrides, "exact_tokens": n,
              "vocab": int(base.shape[-1]), "recipe_top_k": int(stored_k),
              "topk_bytes": sum(f.stat().st_size for f in topk.iterdir()),
              "exact_subset_bytes": stored.nbytes,
              "candidates": {}}
    for candidate in candidates:
        cand_nodes = run_recipe(candidate, overrides)
        pipeline = json.loads((Path(cand_nodes["evaluate"]["dir"]) / "manifest.json")
                              .read_text())["metrics"]
        cand = subset_logits(model_dir(cand_nodes, "quantize"), rows, n)
        found = measure(base, cand, stored)
        found["pipeline"] = {k: pipeline.get(k) for k in (
            "kl_divergence", "kl_exact_subset", "kl_bound_subset", "kl_bound_ratio",
            "topk_mass", "kl_exact_tokens")}
        result["candidates"][candidate] = found
        print(f"{name} {candidate}: exact {found['kl_float64']:.4g}, ratios "
              + ", ".join(f"k={r['k']} {r['ratio']:.3f}" for r in found["per_k"]), flush=True)
    return result


def markdown(results: dict) -> str:
    lines = ["# KL top-k bound vs exact KL", "",
             "Made by `bench/kl_topk.py`. ratio = top-k bound / exact full-vocabulary KL (float64) "
             "on the baseline's first scored tokens; fp16 = change of the bound from storing the "
             "top-k values as float16 instead of float32; mass = baseline probability covered by "
             "the top-k; bytes = stored bytes per scored token (float16 value + int32 id per k, "
             "float32 rest) as stored (plain .npy, read by row range), and zlib-compressed for "
             "comparison. Nucleus: per position the fewest tokens covering that mass (not "
             "implemented in the pipeline; shown to compare storage at equal tightness).", ""]
    for suite, r in results.items():
        cands = list(r["candidates"])
        lines += [f"## {suite}: `{r['baseline']}` vs {', '.join(f'`{c}`' for c in cands)}", "",
                  f"Vocabulary {r['vocab']}, {r['exact_tokens']} exact tokens, overrides "
                  f"`{' '.join(r['overrides'])}`. Exact subset stored as float16 log-probs: "
                  f"{r['exact_subset_bytes'] / 1e6:.1f} MB; the baseline's whole `topk/` "
                  f"(recipe top_k {r['recipe_top_k']}) {r['topk_bytes'] / 1e6:.2f} MB.", ""]
        lines += ["| candidate | exact KL (float64) | stored subset error % | pipeline "
                  "kl_exact_subset | pipeline kl_divergence | pipeline ratio |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for c, f in r["candidates"].items():
            p = f["quench"]
            lines.append(f"| {c} | {f['kl_float64']:.4g} | {f['stored_subset_error_pct']:+.4f} "
                         f"| {_num(p['kl_exact_subset'], 4)} | {_num(p['kl_divergence'], 4)} "
                         f"| {_num(p['kl_bound_ratio'])} |")
        lines += ["", "| k | " + " | ".join(f"ratio {c}" for c in cands)
                  + " | fp16 % (max abs) | mass (min) | bytes | compressed |",
                  "| --- |" + " --- |" * (len(cands) + 4)]
        for i, row in enumerate(next(iter(r["candidates"].values()))["per_k"]):
            per = [f["per_k"][i] for f in r["candidates"].values()]
            lines.append(
                f"| {row['k']} | " + " | ".join(f"{x['ratio']:.3f}" for x in per)
                + f" | {max(abs(x['fp16_vs_fp32_pct']) for x in per):.3f} "
                f"| {min(x['topk_mass'] for x in per):.3f} | {row['bytes_per_token']} "
                f"| {row['compressed_bytes_per_token']:.0f} |")
        lines += ["", "| nucleus mass | mean (median) tokens | "
                  + " | ".join(f"ratio {c}" for c in cands) + " |",
                  "| --- | --- |" + " --- |" * len(cands)]
        for i, row in enumerate(next(iter(r["candidates"].values()))["nucleus"]):
            per = [f["nucleus"][i] for f in r["candidates"].values()]
            lines.append(f"| {row['mass']} | {row['mean_tokens']:.0f} "
                         f"({row['median_tokens']:.0f}) | "
                         + " | ".join(f"{x['ratio']:.3f}" for x in per) + " |")
        lines.append("")
    return "\n".join(lines)


def _num(value: float | None, digits: int = 3) -> str:
    return "" if value is None else f"{value:.{digits}g}"


def main() -> None:
    """Runs the suites asked for and writes the JSON and Markdown tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", action="append", choices=sorted(SUITES))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    results = {s: run_suite(s, args.set) for s in args.suite or list(SUITES)}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "kl_topk.json").write_text(json.dumps(results, indent=2))
    (OUT / "kl_topk.md").write_text(markdown(results))
    print(f"wrote {OUT / 'kl_topk.md'}")


if __name__ == "__main__":
    main()
