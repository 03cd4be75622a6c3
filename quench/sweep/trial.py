"""A trial's record (its point, run, gate verdict and cost) and the recipe file it runs from:
the base recipe with the point applied, written out so `quench run FILE` repeats it alone."""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from quench.errors import RecipeError
from quench.owned_files import write_atomic
from quench.recipe.load import format_validation_error, set_value
from quench.recipe.schema import Recipe
from quench.sweep.jobs import FINISHED, TrialOutcome
from quench.sweep.space import Point, describe, point_id

SWEEP_TAG, TRIAL_TAG = "quench.sweep", "quench.sweep.trial"
BASELINE_ID = "baseline"


@dataclass
class TrialRecord:
    """One trial of a sweep, as the table, the strategies and sweep.json see it."""

    trial_id: str  # the point's hash ("baseline" for the baseline)
    point: Point
    run_name: str
    recipe_path: str
    outcome: TrialOutcome | None = None
    verdict: str | None = None  # PASS, FAIL or INCONCLUSIVE; None when not gated
    passed: bool = False  # the verdict is accepted under the sweep's constraints
    checks: list[dict[str, Any]] = field(default_factory=list)  # one per gated metric
    metrics: dict[str, float] = field(default_factory=dict)  # what the objective may use
    cost: float | None = None  # None: not measured (failed, or a metric is missing)
    note: str | None = None  # why it was not gated or costed
    output_dir: str = "artifacts"  # the trial recipe's output.dir (its run folder's parent)

    @property
    def status(self) -> str:
        return self.outcome.status if self.outcome else "pending"

    @property
    def finished(self) -> bool:
        return self.status == FINISHED

    @property
    def label(self) -> str:
        return describe(self.point)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"], data["label"] = self.status, self.label
        return data


def trial_recipe(base: dict[str, Any], point: Point, sweep: str) -> dict[str, Any]:
    """The base recipe mapping with the point's values set, named and tagged for the sweep."""
    data = copy.deepcopy(base)
    for key, value in point.items():
        set_value(data, key, copy.deepcopy(value), f"{key}={value!r}")
    data["name"] = f"{sweep}-{point_id(point)}"
    tracking = data.setdefault("tracking", {}) or {}
    tracking["tags"] = {**(tracking.get("tags") or {}), SWEEP_TAG: sweep,
                        TRIAL_TAG: point_id(point)}
    data["tracking"] = tracking
    return data


def validate_trial(data: dict[str, Any], where: str) -> Recipe:
    """The trial's recipe, validated; a RecipeError names the sweep file and the point."""
    try:
        return Recipe.model_validate(data)
    except ValidationError as exc:
        raise RecipeError(format_validation_error(Path(where), exc)) from None


def write_trial(data: dict[str, Any], folder: Path, header: str) -> Path:
    """Writes the trial's recipe (atomically) as trials/<name>.yaml and returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{data['name']}.yaml"
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    comment = "".join(f"# {line}\n" for line in header.splitlines())
    write_atomic(path, comment + text)
    return path
