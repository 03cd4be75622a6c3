"""Optuna's TPE sampler over the space's categorical axes: each result is told to the study
(cost as the value, the gate as a constraint), so later trials go where cheap passes are."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field

from quench.strict import StrictModel
from quench.sweep.space import Point, point_id
from quench.sweep.strategies import STRATEGIES, Strategy

if TYPE_CHECKING:
    from quench.sweep.trial import TrialRecord

MAX_REPEATS = 50  # suggestions of tried points in a row before an untried one is taken


class OptunaOptions(StrictModel):
    startup_trials: int = Field(4, ge=1, le=1000, description="Random trials before TPE models "
                                "the results (Optuna's n_startup_trials).")


@STRATEGIES.register
class OptunaStrategy(Strategy):
    name = "optuna"
    options_model = OptunaOptions
    needs_results = True

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        sampler = optuna.samplers.TPESampler(  # the gate reaches it as a trial constraint
            seed=self.seed, n_startup_trials=self.options.startup_trials)  # type: ignore[attr-defined]
        self.study = optuna.create_study(direction="minimize", sampler=sampler)
        self.distributions = {
            key: optuna.distributions.CategoricalDistribution(list(range(len(values))))
            for key, values in self.space.axes.items()}
        if self.space.variants:
            self.distributions["variant"] = optuna.distributions.CategoricalDistribution(
                list(range(len(self.space.variants))))
        self.asked: dict[str, list[Any]] = {}  # point id -> optuna trials waiting for a result

    def ask(self, history: list[TrialRecord], n: int) -> list[Point]:
        wanted = min(n, self.budget.max_trials - len(history) - self._waiting())
        points: list[Point] = []
        repeats = 0
        while len(points) < wanted:
            if repeats >= MAX_REPEATS:  # TPE keeps to tried points: take an untried one
                points += self._untried(history, points, wanted - len(points))
                break
            trial = self.study.ask(self.distributions)
            point = self.space.point_at(trial.params)
            pid = point_id(point)
            done = next((r for r in history if point_id(r.point) == pid), None)
            if done is not None or pid in self.asked:  # TPE repeats itself near the optimum
                repeats += 1
                self._tell_one(trial, done) if done else self.asked[pid].append(trial)
                continue
            self.asked[pid] = [trial]
            points.append(point)
        return points

    def _untried(self, history: list[TrialRecord], asked: list[Point], n: int) -> list[Point]:
        """Up to n points neither run nor asked, in a seeded order."""
        import random

        seen = {point_id(p) for p in [*self.tried(history), *asked]} | set(self.asked)
        rest = [p for p in self.space.points() if point_id(p) not in seen]
        random.Random(self.seed + len(history)).shuffle(rest)
        for point in rest[:n]:  # an enqueued trial gets exactly these parameters
            self.study.enqueue_trial(self.space.indices(point))
            self.asked[point_id(point)] = [self.study.ask(self.distributions)]
        return rest[:n]

    def tell(self, record: TrialRecord) -> None:
        pid = point_id(record.point)
        for trial in self.asked.pop(pid, []):
            self._tell_one(trial, record)

    def _tell_one(self, trial: Any, record: TrialRecord) -> None:
        import optuna

        if record.cost is None:  # failed or not measured: TPE counts a pruned trial as a bad one
            self.study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            return
        trial.set_constraint("gate", 0.0 if record.passed else 1.0)  # <= 0: feasible
        self.study.tell(trial, record.cost)

    def _waiting(self) -> int:
        return len(self.asked)
