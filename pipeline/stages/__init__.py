"""Stages: one module each, registered with @register_stage and found at start-up.

A stage reads its inputs' manifests and writes one output directory. The runner owns caching,
atomic writes and tracking; a stage only says what determines its output and how to make it.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pipeline.recipe.schema import Recipe
from pipeline.registry import Registry
from pipeline.runner.manifest import Manifest


@dataclass
class StageContext:
    """What a stage's run() gets: the recipe, its inputs' manifests and its output folder."""

    recipe: Recipe
    inputs: dict[str, Manifest]
    out_dir: Path
    config: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class StageResult:
    """What run() returns: outputs (paths relative to out_dir, facts) and metrics for tracking."""

    outputs: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    # A stage that did part of its work (e.g. wrote a build plan but could not build here)
    # reports "skipped: <reason>" with its outputs; None means "ran".
    status: str | None = None


class Stage:
    """Base class. Subclasses set `name` and `libraries` and implement config() and run()."""

    name: ClassVar[str]
    libraries: ClassVar[tuple[str, ...]] = ()  # distributions whose versions enter the cache key
    cacheable: ClassVar[bool] = True

    def config(self, recipe: Recipe) -> dict[str, Any]:
        """The part of the recipe that determines this stage's output."""
        return {}

    def fingerprint(self, recipe: Recipe) -> dict[str, Any]:
        """Fingerprints of external inputs (files) that the config does not capture."""
        return {}

    def skip_reason(self, recipe: Recipe, inputs: dict[str, Manifest]) -> str | None:
        """A reason to skip this stage for this recipe, or None to run it."""
        return None

    def code_files(self) -> list[Path]:
        """Source files whose content enters the cache key (the stage's own module by default)."""
        return [Path(inspect.getfile(type(self)))]

    def run(self, ctx: StageContext) -> StageResult:
        raise NotImplementedError


STAGES: Registry[Stage] = Registry("stage", __name__)
register_stage = STAGES.register


def get_stage(name: str) -> Stage:
    """A new instance of the registered stage `name`."""
    cls = STAGES.get(name)
    if cls is None:
        raise KeyError(f"no stage {name!r}; registered: {STAGES.names()}")
    return cls()
