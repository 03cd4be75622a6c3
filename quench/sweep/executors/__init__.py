"""Executors run a sweep's trials: `local` (one after another on the host) and `ray` (tasks on a Ray
cluster). Each is one module and one registration; the sweep knows them only by this base."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import ClassVar

from pydantic import Field

from quench.registry import Registry
from quench.strict import StrictModel
from quench.sweep.jobs import TrialJob, TrialOutcome


class ExecutorOptions(StrictModel):
    """Options every executor takes; an executor may add its own."""

    max_concurrent: int | None = Field(
        None, ge=1, le=10_000,
        description="Trials running at once (local: at most 1 per `quench run`'s cores; "
        "ray: default the cluster's capacity for the per-trial resources).")


class Executor(ABC):
    """Runs trial jobs and yields their outcomes as they finish; stops them all on close."""

    name: ClassVar[str]
    options_model: ClassVar[type[ExecutorOptions]] = ExecutorOptions

    def __init__(self, options: ExecutorOptions) -> None:
        self.options = options

    @property
    def parallelism(self) -> int:
        """How many trials it runs at once (a model-based sampler asks for that many)."""
        return self.options.max_concurrent or 1

    @abstractmethod
    def run(self, jobs: list[TrialJob]) -> Iterator[TrialOutcome]:
        """Runs every job; yields each outcome when its trial ends (any order). A failing
        trial is an outcome, not an exception; KeyboardInterrupt stops every trial first."""

    def close(self) -> None:  # noqa: B027 - optional
        """Releases what the executor holds (a Ray connection); called on every way out."""

    def describe(self) -> str:
        """One line for the console and the sweep record."""
        return self.name


EXECUTORS: Registry[Executor] = Registry("executor", "quench.sweep.executors")


def get_executor(name: str) -> type[Executor]:
    """The registered executor class `name`; UnknownName naming the allowed ones."""
    return EXECUTORS.get(name)
