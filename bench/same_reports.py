"""Behaviour check for refactors: the bundled recipes give the same report metrics before and
after a change.

Runs each recipe twice, with the code of git revision `--before` (a detached worktree) and with
this working tree, into separate output folders, then compares the two report.json files:
every quality number (perplexity, KL, lm-eval accuracy, layer weight errors, output cosine),
every status and the license verdict must be equal; measured times, throughput, latency and
memory (noisy by nature) and cache keys/paths are left out. Writes
artifacts/bench/same_reports.json and prints one line per recipe; exit 1 when any differs.

    .venv/bin/python bench/same_reports.py --before REV [--recipes GLOB] [key=value ...]
"""

from __future__ import annotations

import argparse
import fcntl
import glob
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "artifacts" / "bench"
LINKED = (".venv", ".venvs", "models")  # environments and downloaded models, shared
# report.json sections that are about this invocation, not about the artifact
IGNORED_SECTIONS = ("run", "stages", "versions", "recipe", "notes")
# leaves measured with a clock or a memory counter, or naming a cache entry or a folder
NOISY = re.compile(r"(seconds|elapsed|_s$|_s\.|startup|per_s|_ms|latency|ttft|tpot|itl|e2e|"
                   r"rss|pss|memory|_mb|peak|power|usd|duration|throughput\.|created|"
                   r"\bkey\b|\.key$|dir$|path|checkpoint$|url|log|pid|digest_of_run)", re.I)
REL_TOL = 1e-6  # same code, same CPU: numbers agree to float32 round-off


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Leaves of a JSON document keyed by their dotted path."""
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    if isinstance(data, list):
        out = {}
        for i, value in enumerate(data):
            out.update(flatten(value, f"{prefix}{i}."))
        return out
    return {prefix.rstrip("."): data}


def comparable(report: dict[str, Any]) -> dict[str, Any]:
    """The report's leaves that must not change with a refactor."""
    kept = {k: v for k, v in report.items() if k not in IGNORED_SECTIONS}
    return {k: v for k, v in flatten(kept).items()
            if not NOISY.search(k) and not _is_path(v)}


def _is_path(value: Any) -> bool:
    """An absolute path names a place in one run's output folder, never a result."""
    return isinstance(value, str) and value.startswith("/")


def differences(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Human-readable differences between two comparable() dicts."""
    found = []
    for key in sorted(set(before) | set(after)):
        a, b = before.get(key, "<absent>"), after.get(key, "<absent>")
        if isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(a, bool):
            if math.isclose(a, b, rel_tol=REL_TOL, abs_tol=1e-12):
                continue
        elif a == b:
            continue
        found.append(f"{key}: {a!r} -> {b!r}")
    return found


def checkout(revision: str, where: Path) -> Path:
    """A detached worktree of `revision`, sharing this checkout's environments."""
    subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(where)],
                   capture_output=True)
    shutil.rmtree(where, ignore_errors=True)
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-f", str(where),
                    revision], check=True, capture_output=True)
    for name in LINKED:
        if (REPO / name).exists():
            (where / name).symlink_to(REPO / name)
    return where


def run_recipe(tree: Path, recipe: Path, out: Path, overrides: list[str]) -> dict[str, Any]:
    """`quench run` of recipe with the code in `tree`; its report.json (or the failure)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": str(tree)}
    env.setdefault("QUENCH_MIRROR", str(REPO.parent / "shared"))
    args = [f"output.dir={out}", f"tracking.tracking_uri=sqlite:///{out}/mlflow.db", *overrides]
    cmd = [sys.executable, "-m", "quench", "run", str(recipe), *args]
    with heavy_lock():
        start = time.perf_counter()
        done = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
    seconds = round(time.perf_counter() - start, 1)
    if done.returncode != 0:
        return {"exit": done.returncode, "seconds": seconds, "stderr": done.stderr[-2000:]}
    return {"exit": 0, "seconds": seconds, **recorded(out)}


@contextmanager
def heavy_lock() -> Iterator[None]:
    """Holds the file lock named by $QUENCH_HEAVY_LOCK (if set) for one run: on a shared
    machine, heavy jobs take turns."""
    path = os.environ.get("QUENCH_HEAVY_LOCK")
    if not path:
        yield
        return
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def recorded(out: Path) -> dict[str, Any]:
    """The report.json a finished run left in `out` (one recipe per output folder)."""
    reports = sorted(out.glob("*/report.json"))
    return {"report": json.loads(reports[0].read_text())} if reports else {}


def side(tree: Path, recipe: Path, out: Path, overrides: list[str], reuse: bool
         ) -> dict[str, Any]:
    """A run's result; with reuse, the report already in `out` (a `--keep` folder) stands."""
    if reuse and recorded(out):
        return {"exit": 0, "seconds": "reused", **recorded(out)}
    shutil.rmtree(out, ignore_errors=True)
    return run_recipe(tree, recipe, out, overrides)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="git revision before the change")
    parser.add_argument("--recipes", default="recipes/*.yaml",
                        help="glob(s) of recipes to run, comma-separated")
    parser.add_argument("overrides", nargs="*", help="key.sub=value overrides for both runs")
    parser.add_argument("--keep", type=Path, help="keep both outputs under this folder; a "
                        "`before` report already there is reused")
    parser.add_argument("--only-before", action="store_true",
                        help="record the `before` reports only (with --keep), compare later")
    args = parser.parse_args()
    recipes = sorted({Path(p).resolve() for pattern in args.recipes.split(",")
                      for p in glob.glob(str(REPO / pattern))})
    work = args.keep or Path(tempfile.mkdtemp(prefix="same-reports-"))
    before_tree = checkout(args.before, work / "before-code")
    rows = []
    try:
        for recipe in recipes:
            rel = recipe.relative_to(REPO)
            old = side(before_tree, before_tree / rel, work / "before" / recipe.stem,
                       args.overrides, reuse=args.keep is not None)
            if args.only_before:
                print(f"recorded  {rel} (exit {old['exit']}, {old['seconds']} s)", flush=True)
                continue
            new = side(REPO, recipe, work / "after" / recipe.stem, args.overrides, reuse=False)
            row = {"recipe": str(rel), "before_s": old["seconds"], "after_s": new["seconds"]}
            if old["exit"] or new["exit"]:
                same = old["exit"] == new["exit"]
                row.update(same=same, exit_before=old["exit"], exit_after=new["exit"],
                           differences=[] if same else [old.get("stderr", ""),
                                                        new.get("stderr", "")])
            else:
                a, b = comparable(old["report"]), comparable(new["report"])
                diff = differences(a, b)
                row.update(same=not diff, compared=len(a), differences=diff)
            rows.append(row)
            print(f"{'same' if row['same'] else 'DIFFERENT':9} {rel} "
                  f"({row.get('compared', 0)} values; {row['before_s']} s / {row['after_s']} s)"
                  + "".join(f"\n    {d}" for d in row["differences"][:20]), flush=True)
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force",
                        str(before_tree)], capture_output=True)
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    if args.only_before:
        return 0
    OUT.mkdir(parents=True, exist_ok=True)
    summary = {"before": args.before, "overrides": args.overrides, "recipes": rows,
               "all_same": all(r["same"] for r in rows)}
    (OUT / "same_reports.json").write_text(json.dumps(summary, indent=2))
    print(f"{sum(r['same'] for r in rows)} of {len(rows)} recipes give the same report; "
          f"written to {OUT / 'same_reports.json'}")
    return 0 if summary["all_same"] else 1


if __name__ == "__main__":
    sys.exit(main())
