"""The grid, random and Optuna strategies on a real space, told hand-built results."""

from __future__ import annotations

import pytest

from quench.errors import QuenchError
from quench.sweep.jobs import FAILED, FINISHED, TrialOutcome
from quench.sweep.space import Space, point_id
from quench.sweep.spec import BudgetSpec
from quench.sweep.strategies import STRATEGIES, SweepContext
from quench.sweep.trial import TrialRecord

SPACE = Space(axes={"quantization.options.group_size": [16, 32, 64, 128],
                    "calibration.num_samples": [8, 16, 32]},
              variants=[{"quantization.method": "rtn"}, {"quantization.method": "gptq"}])


def strategy(kind: str, max_trials: int, seed: int = 0, **options: object):
    cls = STRATEGIES.get(kind)
    assert cls is not None
    return cls(cls.options_model.model_validate(options), SPACE,
               BudgetSpec(max_trials=max_trials), seed, SweepContext(base_recipe={}))


def finish(point: dict, passed: bool | None) -> TrialRecord:
    """A record as the sweep makes it: cost = group size, a failure when passed is None."""
    status = FAILED if passed is None else FINISHED
    record = TrialRecord(point_id(point), point, "r", "r.yaml",
                         TrialOutcome(point_id(point), status, 0, 1.0))
    if passed is not None:
        record.cost = float(point["quantization.options.group_size"])
        record.passed = passed
    return record


def drive(strat, batch: int) -> list[TrialRecord]:
    history: list[TrialRecord] = []
    while points := strat.ask(history, batch):
        for point in points:
            record = finish(point, passed=None if point["calibration.num_samples"] == 8
                            else point["quantization.method"] == "gptq")
            strat.tell(record)
            history.append(record)
    return history


def test_space_points_are_every_variant_times_every_axis_combination() -> None:
    points = SPACE.points()
    assert len(points) == SPACE.size == 24
    assert len({point_id(p) for p in points}) == 24
    assert points[0] == {"quantization.method": "rtn", "quantization.options.group_size": 16,
                         "calibration.num_samples": 8}
    assert all(SPACE.point_at(SPACE.indices(p)) == p for p in points)


def test_grid_runs_every_point_once_and_refuses_a_small_budget() -> None:
    history = drive(strategy("grid", 24), batch=5)
    assert [r.point for r in history] == SPACE.points()
    with pytest.raises(QuenchError, match="the grid has 24 points"):
        strategy("grid", 10).check()


def test_random_is_a_seeded_sample_without_repeats() -> None:
    first = [r.point for r in drive(strategy("random", 7, seed=3), batch=2)]
    again = [r.point for r in drive(strategy("random", 7, seed=3), batch=3)]
    other = [r.point for r in drive(strategy("random", 7, seed=4), batch=2)]
    assert first == again and len(first) == 7
    assert len({point_id(p) for p in first}) == 7
    assert first != other


@pytest.mark.parametrize("batch", [1, 3])
def test_optuna_asks_new_points_within_budget_and_records_every_result(batch: int) -> None:
    strat = strategy("optuna", 12, seed=0, startup_trials=4)
    history = drive(strat, batch)
    assert len(history) == 12
    assert len({r.trial_id for r in history}) == 12  # no point runs twice
    assert all(p in SPACE.points() for p in strat.tried(history))
    import optuna

    trials = strat.study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    pruned = [t for t in trials if t.state == optuna.trial.TrialState.PRUNED]
    assert {point_id(SPACE.point_at(t.params)) for t in pruned} == {
        r.trial_id for r in history if r.cost is None}  # failures are told as bad trials
    for t in complete:  # the value told is the trial's cost, the constraint its verdict
        point = SPACE.point_at(t.params)
        assert t.value == point["quantization.options.group_size"]
        feasible = point["quantization.method"] == "gptq"
        gate = [v for k, v in t.system_attrs.items() if k.endswith(":gate")]
        assert gate == [0.0 if feasible else 1.0]


def test_optuna_is_deterministic_for_a_seed() -> None:
    """What a resumed sweep relies on: the same results give the same trials again."""
    first = [r.trial_id for r in drive(strategy("optuna", 10, seed=5), batch=1)]
    again = [r.trial_id for r in drive(strategy("optuna", 10, seed=5), batch=1)]
    assert first == again
