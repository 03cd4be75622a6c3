"""Optuna's TPE sampler over the space's categorical axes: each result is told to the study
(cost as the value, the gate as a constraint), so later trials go where cheap passes are."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field

from pipeline.strict import StrictModel
from pipeline.sweep.space import Point, point_id
from pipeline.sweep.strategies import STRATEGIES, Strategy

if TYPE_CHECKING:
    from pipeline.sweep.trial import TrialRecord

MAX_REPEATS = 50  # suggestions of already-tried points before the space counts as exhausted


class OptunaOptions(StrictModel):
    startup_trials: int = Field(4, ge=1, le=1000, description="Random trials before TPE models "
                                "the results (Optuna's n_startup_trials).")


@STRATEGIES.register
class OptunaStrategy(Strategy):
    name = "optuna"
    options_model = OptunaOptions

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        sampler = optuna.samplers.TPESampler(
            seed=self.seed, n_startup_trials=self.options.startup_trials,  # type: ignore[attr-defined]
            constraints_func=lambda t: t.user_attrs.get("constraint", (1.0,)))
        self.study = optuna.create_study(direction="minimize", sampler=sampler)
        self.distributions = {
            key: optuna.distributions.CategoricalDistribution(list(range(len(values))))
            for key, values in self.space.axes.items()}
        if self.space.variants:
            self.distributions["variant"] = optuna.distributions.CategoricalDistribution(
                list(range(len(self.space.variants))))
        self.asked: dict[str, list[Any]] = {}  # point id -> optuna trials waiting for a result
        self.told: set[str] = set()

    def ask(self, history: list[TrialRecord], n: int) -> list[Point]:
        self._replay(history)
        wanted = min(n, self.budget.max_trials - len(history) - self._waiting())
        points: list[Point] = []
        repeats = 0
        while len(points) < wanted and repeats < MAX_REPEATS:
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

    def tell(self, record: TrialRecord) -> None:
        pid = point_id(record.point)
        for trial in self.asked.pop(pid, []):
            self._tell_one(trial, record)
        self.told.add(pid)

    def _tell_one(self, trial: Any, record: TrialRecord) -> None:
        import optuna

        if record.cost is None:
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
            return
        trial.set_user_attr("constraint", (0.0 if record.passed else 1.0,))
        self.study.tell(trial, record.cost)

    def _replay(self, history: list[TrialRecord]) -> None:
        """Trials finished before this process started (a resumed sweep) join the study."""
        for record in history:
            pid = point_id(record.point)
            if pid in self.told or pid in self.asked:
                continue
            self.study.enqueue_trial(self.space.indices(record.point))
            self._tell_one(self.study.ask(self.distributions), record)
            self.told.add(pid)

    def _waiting(self) -> int:
        return sum(1 for pid in self.asked if pid not in self.told)
