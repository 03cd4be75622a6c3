"""Trackers record a pipeline invocation; chosen by `tracking.backend` (mlflow or none)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.recipe.schema import Recipe
from pipeline.runner.manifest import Manifest


class Tracker:
    """The no-op tracker (`tracking.backend: none`) and the interface every tracker keeps."""

    def start(self, recipe: Recipe) -> None:
        """Called before the first stage."""

    def log_stage(self, node: str, status: str, elapsed: float, manifest: Manifest) -> None:
        """Called when a node has finished, was cached or was skipped."""

    def finish(self, report: Manifest, run_dir: Path) -> dict[str, Any]:
        """Called after the report is published; returns where the run was recorded."""
        return {}

    def fail(self, exc: BaseException) -> None:
        """Called when the pipeline stops on an error or an interrupt."""


def make_tracker(recipe: Recipe, root: Path) -> Tracker:
    """The tracker the recipe asks for."""
    if recipe.tracking.backend == "none":
        return Tracker()
    from pipeline.tracking.mlflow_tracker import MlflowTracker

    return MlflowTracker(recipe.tracking, root)


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings to dotted keys: {"a": {"b": 1}} -> {"a.b": 1}."""
    if not isinstance(data, dict):
        return {prefix: data}
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        flat.update(flatten(value, name) if isinstance(value, dict) else {name: value})
    return flat
