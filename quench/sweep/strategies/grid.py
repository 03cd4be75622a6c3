"""Every point of the space, in the file's order; a grid larger than the budget is an error."""

from __future__ import annotations

from typing import TYPE_CHECKING

from quench.errors import QuenchError
from quench.sweep.space import Point
from quench.sweep.strategies import STRATEGIES, Strategy

if TYPE_CHECKING:
    from quench.sweep.trial import TrialRecord


@STRATEGIES.register
class GridStrategy(Strategy):
    name = "grid"

    def check(self) -> None:
        if self.space.size > self.budget.max_trials:
            raise QuenchError(f"budget.max_trials: the grid has {self.space.size} points and "
                              f"the budget allows {self.budget.max_trials}; raise "
                              "budget.max_trials or use strategy.kind random or optuna")

    def ask(self, history: list[TrialRecord], n: int) -> list[Point]:
        tried = self.tried(history)
        return [p for p in self.space.points() if p not in tried][:n]
