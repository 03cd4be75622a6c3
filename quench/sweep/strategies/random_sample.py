"""A seeded random sample of the space, `budget.max_trials` points without repetition."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from quench.sweep.space import Point
from quench.sweep.strategies import STRATEGIES, Strategy

if TYPE_CHECKING:
    from quench.sweep.trial import TrialRecord


@STRATEGIES.register
class RandomStrategy(Strategy):
    name = "random"

    def ask(self, history: list[TrialRecord], n: int) -> list[Point]:
        points = self.space.points()
        count = min(self.budget.max_trials, len(points))
        chosen = [points[i] for i in random.Random(self.seed).sample(range(len(points)), count)]
        tried = self.tried(history)
        return [p for p in chosen if p not in tried][:n]
