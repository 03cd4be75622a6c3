"""The Stage base class: what determines a stage's output (config, fingerprint, code) and how
it is made (run), plus what it declares to the runner (publishes, needs_tracker).

A stage reads its inputs' manifests and writes one output folder; the runner owns caching,
atomic writes, tracking and publishing.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from quench.contract.manifest import Manifest

# The recipe model (quench.recipe.schema.Recipe), which the contract, at the bottom layer, does
# not import: a stage may bind it, `Stage[Recipe]` and `StageContext[Recipe]`, to type its use.
RecipeT = TypeVar("RecipeT")


class RunTracker(Protocol):
    """What a stage that declares `needs_tracker` may call: close the run with the report."""

    def finish(self, report: Manifest) -> dict[str, Any]: ...


@dataclass
class StageContext(Generic[RecipeT]):
    """What a stage's run() gets: the recipe, its inputs' manifests and its output folder."""

    recipe: RecipeT
    inputs: dict[str, Manifest]
    out_dir: Path
    config: dict[str, Any]
    tracker: RunTracker | None = None  # set only for a stage with needs_tracker = True


@dataclass
class StageResult:
    """What run() returns: outputs (paths relative to out_dir, facts) and metrics for tracking."""

    outputs: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    # A stage that did part of its work (e.g. wrote a build plan but could not build here)
    # reports "skipped: <reason>" with its outputs; None means "ran".
    status: str | None = None


@dataclass(frozen=True)
class Publishes:
    """What the runner copies from a stage's outputs to <output>/<run>/: declared here so the
    runner publishes by declaration, never by node name.

    `files`: a published file name -> the output key of a file in the stage folder.
    `model_dir`: the output key of a checkpoint folder published as <output>/<run>/model. Of
    the stages declaring one that did not skip, the highest `priority` wins (on a tie, the last
    in graph order); it keeps the tokenizer files of the folder it replaces.
    Every stage's `artifact_files` output (name -> file) is added to that model folder.
    """

    files: Mapping[str, str] = field(default_factory=dict)
    model_dir: str | None = None
    priority: int = 0


class Stage(Generic[RecipeT]):
    """Base class. Subclasses set `name` and `libraries` and implement config() and run()."""

    name: ClassVar[str]
    libraries: ClassVar[tuple[str, ...]] = ()  # distributions whose versions enter the cache key
    needs_tracker: ClassVar[bool] = False  # True: run() gets ctx.tracker (the run's tracker)
    publishes: ClassVar[Publishes | None] = None  # what the runner publishes from its outputs

    def config(self, recipe: RecipeT) -> dict[str, Any]:
        """The part of the recipe that determines this stage's output."""
        return {}

    def fingerprint(self, recipe: RecipeT) -> dict[str, Any]:
        """Fingerprints of external inputs (files) that the config does not capture."""
        return {}

    def skip_reason(self, recipe: RecipeT, inputs: dict[str, Manifest]) -> str | None:
        """A reason to skip this stage for this recipe, or None to run it."""
        return None

    def code_files(self) -> list[Path]:
        """Source files whose content enters the cache key (the stage's own module by default)."""
        return [Path(inspect.getfile(type(self)))]

    def headline(self, manifest: Manifest) -> str:
        """A few words for the stage's console line (its headline metric); '' for none."""
        return ""

    def run(self, ctx: StageContext[RecipeT]) -> StageResult:
        raise NotImplementedError
