"""Runs the pipeline graph for one recipe: cache look-ups, atomic stage runs, tracking."""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quench.compute import (
    PHASE_PEAK_PREFIX,
    peak_memory,
    pin_mmap_threshold,
    release_memory,
    reset_peak_memory,
)
from quench.contract.manifest import Manifest
from quench.contract.stage import Stage, StageContext
from quench.errors import QuenchError
from quench.owned_files import write_atomic
from quench.recipe.schema import Recipe
from quench.runner.graph import PIPELINE, Node, node_names
from quench.runner.headline import headline
from quench.runner.publish import publish
from quench.runner.stage_view import Progress
from quench.runner.store import Store, cache_key, code_digest, library_versions
from quench.runner.verify import UNRECORDED
from quench.stages import get_stage
from quench.tracking.factory import make_tracker
from quench.tracking.tracker import Tracker

log = logging.getLogger("quench")


@dataclass
class Outcome:
    """What happened to one node in this invocation."""

    node: str
    stage: str
    status: str  # "ran", "cached" or "skipped: <reason>"
    manifest: Manifest
    elapsed: float


@dataclass
class RunSummary:
    recipe: Recipe
    run_dir: Path
    outcomes: list[Outcome] = field(default_factory=list)
    tracking: dict[str, Any] = field(default_factory=dict)

    def manifest(self, node: str) -> Manifest:
        return next(o.manifest for o in self.outcomes if o.node == node)


def output_root(recipe: Recipe) -> Path:
    """The recipe's output folder, created and checked writable (error names output.dir)."""
    root = Path(recipe.output.dir).expanduser().resolve()
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / f".write-probe-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise QuenchError(f"output.dir: {root} is not writable ({exc.strerror})") from None
    return root


def run_pipeline(
    recipe: Recipe,
    force: set[str] | frozenset[str] = frozenset(),
    progress: Progress | None = None,
    until: str | None = None,
) -> RunSummary:
    """Runs every node (reusing cached outputs), publishes the report and logs to tracking.

    `until`: stop after that node (e.g. `license`, to check a card the way a run does); a
    partial run is not logged to tracking: its stages are cached, and the full run logs them.
    """
    unknown = set(force) - set(node_names()) - {"all"}
    if unknown:
        raise QuenchError(f"--force: unknown stage(s) {sorted(unknown)}; known: {node_names()}")
    if until is not None and until not in node_names():
        raise QuenchError(f"--until: unknown stage {until!r}; known: {node_names()}")
    root = output_root(recipe)
    store = Store(root / "cache")
    pin_mmap_threshold()  # freed tensors go back to the OS, so each stage's peak is its own
    progress = progress or Progress()
    store.hold(recipe.name, on_wait=lambda: _note(  # one run of a recipe at a time
        progress, f"another quench run of {recipe.name} is using {root}; waiting for it"))
    store.remove_stale_temporaries()
    summary = RunSummary(recipe, root / recipe.name)
    tracker = Tracker() if until else make_tracker(
        recipe, root, notice=lambda line: progress.console.print(
            line, markup=False, highlight=False, soft_wrap=True))
    tracker.retry_pending()
    last_publisher = max((i for i, n in enumerate(PIPELINE) if get_stage(n.stage).publishes),
                         default=None)
    try:
        manifests: dict[str, Manifest] = {}
        for i, node in enumerate(PIPELINE):
            rerun = "all" in force or node.name in force
            outcome = _run_node(node, recipe, manifests, store, rerun, progress, tracker)
            manifests[node.name] = outcome.manifest
            summary.outcomes.append(outcome)
            tracker.log_stage(outcome.node, outcome.status, outcome.elapsed, outcome.manifest)
            if i == last_publisher:  # before tracking: a tracking failure keeps the report
                publish(summary.run_dir, [(get_stage(o.stage).publishes, o.manifest)
                                          for o in summary.outcomes])
            if node.name == until:
                break
    except BaseException as exc:
        tracker.fail(exc)
        raise
    # the stage that closes the tracker's run reports where it was logged
    summary.tracking = next((o.manifest.outputs for o in summary.outcomes
                             if get_stage(o.stage).needs_tracker), {})
    summary.run_dir.mkdir(parents=True, exist_ok=True)
    _publish_run(summary)
    return summary


def _run_node(
    node: Node,
    recipe: Recipe,
    manifests: dict[str, Manifest],
    store: Store,
    rerun: bool,
    progress: Progress,
    tracker: Tracker,
) -> Outcome:
    stage = get_stage(node.stage)
    inputs = {role: manifests[src] for role, src in node.inputs.items()}
    with progress.stage(node.name):
        start = time.perf_counter()
        parts = _key_parts(stage, recipe, inputs)
        key = cache_key(parts)
        waiting = f"{node.name}: another quench run is writing this stage; waiting for it"
        # One process at a time looks up and writes an entry: a second run of the same recipe
        # waits here, then reuses what the first wrote.
        with store.entry_lock(stage.name, key, on_wait=lambda: _note(progress, waiting)):
            found, damage = (None, None) if rerun else store.lookup(stage.name, key)
            if damage is not None:
                kind = "unverified" if damage == UNRECORDED else "damaged"
                _note(progress, f"{node.name}: cache entry {kind} ({damage}), re-running "
                      f"[{store.final_dir(stage.name, key)}]")
            if found is not None:
                status = "cached"
            else:
                tracker.begin(recipe)
                found = _execute(stage, recipe, inputs, parts, key, store,
                                 tracker if stage.needs_tracker else None)
                status = found.status
        elapsed = time.perf_counter() - start
    shown = "skipped" if found.skipped else status  # a cached skip still did nothing
    progress.done(node.name, shown, elapsed, headline(stage, found))
    return Outcome(node.name, stage.name, status, found, elapsed)


def _key_parts(stage: Stage, recipe: Recipe, inputs: dict[str, Manifest]) -> dict[str, Any]:
    return {
        "stage": stage.name,
        "config": stage.config(recipe),
        "fingerprint": stage.fingerprint(recipe),
        "inputs": {role: m.data for role, m in inputs.items()},
        "versions": library_versions(stage.libraries),
        "code": code_digest(stage.code_files()),
    }


def _execute(
    stage: Stage,
    recipe: Recipe,
    inputs: dict[str, Manifest],
    parts: dict[str, Any],
    key: str,
    store: Store,
    tracker: Tracker | None,
) -> Manifest:
    """Runs (or skips) a stage into a temporary folder that becomes its cache entry."""
    with store.writing(stage.name, key) as tmp:
        start = time.perf_counter()
        reason = stage.skip_reason(recipe, inputs)
        if reason is None:
            ctx = StageContext(recipe, inputs, tmp, parts["config"], tracker)
            reset_peak_memory()
            try:
                result = stage.run(ctx)
            finally:
                del ctx
                release_memory()
            status, outputs, metrics = result.status or "ran", result.outputs, result.metrics
            if result.status is None:  # a partial run ("skipped: ...") claims no measurements
                metrics = {**metrics, **_memory_metrics(metrics)}
        else:
            status, outputs, metrics = f"skipped: {reason}", {}, {}
        store.write_manifest(
            tmp,
            {
                "stage": stage.name,
                "key": key,
                "status": status,
                "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "elapsed_s": round(time.perf_counter() - start, 3),
                "config": parts["config"],
                "inputs": {role: m.key for role, m in inputs.items()},
                "versions": parts["versions"],
                "code": parts["code"],
                "outputs": outputs,
                "metrics": metrics,
            },
        )
    final = store.load(stage.name, key)
    assert final is not None
    return final


def _note(progress: Progress, text: str) -> None:
    """A line on the console and in the log, between the stage lines."""
    log.info(text)
    progress.console.print(f"  {text}", markup=False, highlight=False, soft_wrap=True)


def _memory_metrics(reported: dict[str, Any]) -> dict[str, float]:
    """The stage's peak host RSS and accelerator memory (MiB), measured since it started (a
    stage that measured its phases reset the counter: their peaks count too)."""
    peak = peak_memory()
    phases = [v for k, v in reported.items() if k.startswith(PHASE_PEAK_PREFIX)]
    metrics = {"stage_peak_rss_mb": max([round(peak["peak_rss_bytes"] / 2**20, 1), *phases])}
    if peak["accelerator_peak_bytes"] is not None:
        metrics["stage_accelerator_peak_mb"] = round(peak["accelerator_peak_bytes"] / 2**20, 1)
    return metrics


def _publish_run(summary: RunSummary) -> None:
    """Records in <output>/<run>/run.json which cache folder each node used, and how."""
    nodes = {
        o.node: {"stage": o.stage, "status": o.status, "key": o.manifest.key,
                 "dir": str(o.manifest.dir), "seconds": round(o.elapsed, 3)}
        for o in summary.outcomes
    }
    # Each stage restarts the kernel's peak-RSS counter (so /usr/bin/time and ru_maxrss see only
    # the last stage): the run's peak is the largest stage peak of those that ran now.
    ran = [o.manifest.metrics.get("stage_peak_rss_mb") for o in summary.outcomes
           if o.status == "ran"]
    peak = max((x for x in ran if x is not None), default=None)
    write_atomic(summary.run_dir / "run.json",
                  json.dumps({"nodes": nodes, "peak_rss_mb": peak}, indent=2))


__all__ = ["Outcome", "RunSummary", "Tracker", "run_pipeline"]
