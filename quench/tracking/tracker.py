"""The Tracker interface (and the no-op tracker), and how a report's nesting becomes the flat
keys a tracking store logs."""

from __future__ import annotations

from typing import Any

from quench.contract.manifest import Manifest
from quench.recipe.schema import Recipe


class Tracker:
    """The no-op tracker (`tracking.backend: none`) and the interface every tracker keeps.

    The runner calls begin() only when some stage has real work to do, so an invocation whose
    stages are all cached touches no tracking store; stages finished before begin() are
    handed over when it comes.
    """

    def retry_pending(self) -> None:
        """Called once at the start: uploads runs an earlier tracking outage kept on disk."""

    def begin(self, recipe: Recipe) -> None:
        """Called before the first stage that executes (idempotent)."""

    def log_stage(self, node: str, status: str, elapsed: float, manifest: Manifest) -> None:
        """Called when a node has finished, was cached or was skipped."""

    def finish(self, report: Manifest) -> dict[str, Any]:
        """Called by the track stage; returns where the run was recorded."""
        return {}

    def fail(self, exc: BaseException) -> None:
        """Called when the pipeline stops on an error or an interrupt."""


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings to dotted keys: {"a": {"b": 1}} -> {"a.b": 1}."""
    if not isinstance(data, dict):
        return {prefix: data}
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        flat.update(flatten(value, name) if isinstance(value, dict) else {name: value})
    return flat
