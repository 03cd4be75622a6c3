"""The sweep's overhead: a 6-trial sweep against the same recipes run one by one.

Runs `quench sweep SWEEP` with a cold cache in one output folder, then, in a second cold
folder, `quench run` on the baseline and on each trial recipe the sweep wrote, followed by
`quench gate` of each trial (what a user does by hand). Both sides share stages between runs
the same way (one cache per side). Prints and writes artifacts/bench/sweep.{json,md}: wall
times, the overhead ratio (target: the sweep takes no more than 1.05 x the manual runs), the
Pareto table and the recommended recipe. BENCH_SWEEP= another sweep file (SmolLM2: a sweep
whose base is a recipes/smollm2-*.yaml recipe).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "artifacts" / "bench"
WORK = OUT / "sweep-work"
SWEEP = Path(os.environ.get("BENCH_SWEEP", REPO / "sweeps" / "tinystories-w4.yaml"))


def quench(*args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "quench", *args], cwd=REPO, text=True,
                          capture_output=True)
    return time.perf_counter() - start, done


def sweep_copy(folder: Path) -> Path:
    """The sweep file with its output (cache, MLflow store, sweep folder) moved to `folder`."""
    data = yaml.safe_load(SWEEP.read_text())
    base = data["base"]
    if isinstance(base, str):
        base = {"extends": str((SWEEP.parent / base).resolve())}
    base = {**base, "output": {**base.get("output", {}), "dir": str(folder / "artifacts")}}
    data["base"] = base
    data["name"] = data.get("name", SWEEP.stem)
    path = folder / "sweep.yaml"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def main() -> int:
    shutil.rmtree(WORK, ignore_errors=True)
    swept = sweep_copy(WORK / "sweep")
    seconds_sweep, done = quench("sweep", str(swept))
    print(done.stdout[-3000:])
    if done.returncode not in (0, 1):
        print(done.stderr, file=sys.stderr)
        return 2
    data = json.loads((WORK / "sweep" / "artifacts" / "sweeps" / data_name(swept)
                       / "sweep.json").read_text())
    manual = manual_runs(data, WORK / "manual")
    result = {"sweep_file": str(SWEEP), "trials": len(data["trials"]),
              "sweep_seconds": round(seconds_sweep, 1), **manual,
              "overhead_vs_runs": round(seconds_sweep / manual["runs_seconds"], 4),
              "overhead_vs_runs_and_gates": round(
                  seconds_sweep / manual["runs_and_gates_seconds"], 4),
              "recommended": data["recommended"],
              "recommended_recipe": data["recommended_recipe"],
              "table": [{k: t[k] for k in ("run_name", "label", "status", "verdict", "cost")}
                        | {"size_ratio": t["metrics"].get("size_ratio"),
                           "kl_divergence": t["metrics"].get("kl_divergence"),
                           "perplexity": t["metrics"].get("perplexity")} for t in data["trials"]]}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "sweep.json").write_text(json.dumps(result, indent=2))
    (OUT / "sweep.md").write_text(render(result))
    print(render(result))
    return 0


def data_name(path: Path) -> str:
    return yaml.safe_load(path.read_text())["name"]


def manual_runs(data: dict[str, Any], folder: Path) -> dict[str, float]:
    """`quench run` of the baseline and every trial recipe, then `quench gate` of each trial,
    in a cold output folder of their own."""
    root = folder / "artifacts"
    recipes = [data["baseline"]["recipe_path"], *(t["recipe_path"] for t in data["trials"])]
    folder.mkdir(parents=True, exist_ok=True)
    runs = gates = 0.0
    baseline_copy = None
    for i, recipe in enumerate(recipes):
        text = yaml.safe_load(Path(recipe).read_text())
        text["output"] = {**text.get("output", {}), "dir": str(root)}
        copy = folder / Path(recipe).name
        copy.write_text(yaml.safe_dump(text, sort_keys=False))
        seconds, done = quench("run", str(copy))
        runs += seconds
        if i == 0:
            baseline_copy = copy
        elif done.returncode == 0:
            seconds, _ = quench("gate", str(copy), "--baseline", str(baseline_copy),
                                "--tracking-uri", f"sqlite:///{root}/mlflow.db")
            gates += seconds
    return {"runs_seconds": round(runs, 1), "gates_seconds": round(gates, 1),
            "runs_and_gates_seconds": round(runs + gates, 1)}


def render(r: dict[str, Any]) -> str:
    lines = ["# Sweep overhead (`make bench`: bench/sweep.py)", "",
             f"`{Path(r['sweep_file']).name}`, {r['trials']} trials, cold caches on both sides.",
             "", "| | seconds |", "| --- | --- |",
             f"| `quench sweep` | {r['sweep_seconds']} |",
             f"| `quench run` x {r['trials'] + 1} (baseline + trials) | {r['runs_seconds']} |",
             f"| ... + `quench gate` of each trial | {r['runs_and_gates_seconds']} |", "",
             f"Sweep / runs: **{r['overhead_vs_runs']}**; sweep / (runs + gates): "
             f"**{r['overhead_vs_runs_and_gates']}** (target <= 1.05).", "",
             "| trial | point | status | gate | size ratio | perplexity | KL |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for t in r["table"]:
        mark = " (recommended)" if t["run_name"].endswith(r["recommended"] or "-") else ""
        lines.append(f"| `{t['run_name']}`{mark} | {t['label']} | {t['status']} | "
                     f"{t['verdict'] or ''} | {_num(t['size_ratio'])} | {_num(t['perplexity'])} "
                     f"| {_num(t['kl_divergence'])} |")
    lines += ["", f"Recommended: `{r['recommended_recipe']}`."]
    return "\n".join(lines) + "\n"


def _num(x: Any) -> str:
    return "" if x is None else f"{x:.4g}"


if __name__ == "__main__":
    sys.exit(main())
