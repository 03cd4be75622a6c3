"""Strategies pick a sweep's trials: `grid` (every point), `random` (a seeded sample),
`optuna` (Optuna's TPE sampler, told each result) and `sensitivity` (layer-wise KL, then a
mixed-precision proposal). Each is one module and one registration behind this base."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from quench.registry import Registry
from quench.strict import NoOptions, StrictModel
from quench.sweep.space import Point, Space

if TYPE_CHECKING:
    from quench.sweep.spec import BudgetSpec
    from quench.sweep.trial import TrialRecord


@dataclass
class SweepContext:
    """What a strategy may read besides its history: the merged base recipe (a mapping) and,
    once it has run, the baseline trial (its run record names the resolved model's folder)."""

    base_recipe: dict[str, Any]
    baseline: TrialRecord | None = None
    notes: list[str] = field(default_factory=list)  # a strategy's findings, shown in the table


class Strategy(ABC):
    """Proposes points in rounds; the sweep runs them and calls tell() with each result."""

    name: ClassVar[str]
    options_model: ClassVar[type[StrictModel]] = NoOptions
    # its trials depend on measured results (a dry run can list none in advance)
    needs_results: ClassVar[bool] = False

    def __init__(self, options: StrictModel, space: Space, budget: BudgetSpec, seed: int,
                 context: SweepContext) -> None:
        self.options, self.space, self.budget = options, space, budget
        self.seed, self.context = seed, context

    def check(self) -> None:  # noqa: B027 - optional
        """Raises QuenchError when the space and budget cannot work (before any trial runs)."""

    @abstractmethod
    def ask(self, history: list[TrialRecord], n: int) -> list[Point]:
        """Up to n new points to run next (the executor's parallelism); [] when done."""

    def tell(self, record: TrialRecord) -> None:  # noqa: B027 - optional
        """A finished trial (its cost, verdict or error); model-based strategies learn from it."""

    def candidate(self, record: TrialRecord) -> bool:
        """Whether a finished trial may be recommended; False for a strategy's measurement
        trials (sensitivity's one-group probes), which answer a question but are no candidate."""
        return True

    @staticmethod
    def tried(history: list[TrialRecord]) -> list[Point]:
        return [r.point for r in history]


STRATEGIES: Registry[Strategy] = Registry("strategy", "quench.sweep.strategies")
