"""The tracker a recipe asks for (MLflow, or none), and where it logs."""


from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from quench.recipe.schema import Recipe
from quench.tracking.tracker import Tracker


def tracking_target(recipe: Recipe) -> dict[str, Any]:
    """Where a recipe's runs are recorded: part of the track stage's cache key."""
    spec = recipe.tracking
    if spec.backend == "none":
        return {"backend": "none"}
    from quench.tracking.mlflow_tracker import tracking_uri

    root = Path(recipe.output.dir).expanduser().resolve()
    target = {"backend": spec.backend, "experiment": spec.experiment,
              "tracking_uri": tracking_uri(spec, root)}
    if spec.tags:  # only when set: the key of a recipe without tags stays what it was
        target["tags"] = dict(sorted(spec.tags.items()))
    return target


def make_tracker(recipe: Recipe, root: Path,
                 notice: Callable[[str], None] | None = None) -> Tracker:
    """The tracker the recipe asks for; `notice` shows a one-line message on the console."""
    if recipe.tracking.backend == "none":
        return Tracker()
    from quench.tracking.mlflow_tracker import MlflowTracker

    return MlflowTracker(recipe.tracking, root, notice)
