"""Reads a sweep file and prepares everything it names before any trial runs: the base recipe,
the baseline, the strategy, the executor, and every trial recipe it can know, validated."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from quench.errors import RecipeError
from quench.recipe.find import find_file
from quench.recipe.gate import GateSpec
from quench.recipe.load import (
    format_validation_error,
    merge_extends,
    read_recipe_data,
    read_yaml_mapping,
)
from quench.recipe.schema import Recipe
from quench.strict import first_error, suggest
from quench.sweep.executors import EXECUTORS, Executor
from quench.sweep.space import Space, describe
from quench.sweep.spec import SweepSpec
from quench.sweep.strategies import STRATEGIES, Strategy, SweepContext
from quench.sweep.trial import trial_recipe, validate_trial

PREFLIGHT_POINTS = 64  # spaces up to this size get the full pre-flight per trial


@dataclass
class Prepared:
    """A sweep ready to run: nothing here has started a trial."""

    path: Path
    spec: SweepSpec
    base: dict[str, Any]  # the base recipe as one mapping (extends merged)
    base_recipe: Recipe
    baseline: dict[str, Any]  # the baseline recipe mapping
    gate: GateSpec
    space: Space
    strategy: Strategy
    executor: Executor
    out_dir: Path


def read_sweep(path: Path, overrides: dict[str, Any] | None = None) -> SweepSpec:
    """The sweep file validated; a RecipeError names the file, key and value."""
    data = read_yaml_mapping(path, "sweep")
    data.setdefault("name", path.stem)
    for key, value in (overrides or {}).items():  # command-line flags (executor, budget)
        section, _, leaf = key.partition(".")
        data.setdefault(section, {})[leaf] = value
    try:
        return SweepSpec.model_validate(data)
    except ValidationError as exc:
        raise RecipeError(format_validation_error(path, exc).replace(
            "invalid recipe", "invalid sweep")) from None


def prepare(path: Path, spec: SweepSpec, preflight: bool = True) -> Prepared:
    """Loads the base and baseline recipes, builds strategy and executor, and validates every
    trial recipe the space holds (the pre-flight too, for small spaces)."""
    base = _base_data(path, spec)
    base_recipe = validate_trial(dict(base), f"{path}: base")
    baseline_path = _baseline_path(path, spec, base_recipe)
    baseline = read_recipe_data(baseline_path)
    validate_trial(dict(baseline), str(baseline_path))
    gate = _gate(path, spec, base_recipe)
    space = Space(spec.axes, spec.variants)
    context = SweepContext(base_recipe=base)
    strategy = _build(STRATEGIES, "strategy", spec.strategy.kind, spec.strategy.options,
                      path)(_options(STRATEGIES, spec.strategy.kind, spec.strategy.options,
                                     path, "strategy"), space, spec.budget, spec.seed, context)
    strategy.check()
    executor_cls = _build(EXECUTORS, "executor", spec.executor.kind, spec.executor.options,
                          path)
    executor = executor_cls(_options(EXECUTORS, spec.executor.kind, spec.executor.options,
                                     path, "executor"))
    _check_points(path, spec, base, space, preflight)
    out = Path(spec.output_dir) if spec.output_dir else (
        Path(base_recipe.output.dir) / "sweeps" / spec.name)
    return Prepared(path, spec, base, base_recipe, baseline, gate, space, strategy, executor,
                    out.expanduser().resolve())


def _base_data(path: Path, spec: SweepSpec) -> dict[str, Any]:
    if isinstance(spec.base, str):
        return read_recipe_data(find_file(spec.base, beside=path.parent))
    data = merge_extends(spec.base, path.parent, f"{path}: base")
    data.setdefault("name", f"{spec.name}-base")
    return data


def _baseline_path(path: Path, spec: SweepSpec, base: Recipe) -> Path:
    if spec.constraints.baseline:
        ref, beside, where = spec.constraints.baseline, path.parent, "constraints.baseline"
    elif base.gate.baseline:
        ref, beside, where = base.gate.baseline, None, "the base recipe's gate.baseline"
    else:
        raise RecipeError(f"{path}: constraints.baseline: no baseline recipe (set it, or "
                          "gate.baseline in the base recipe)")
    try:
        return find_file(ref, beside=beside)
    except RecipeError as exc:
        raise RecipeError(f"{path}: {where}: {exc}") from None


def _gate(path: Path, spec: SweepSpec, base: Recipe) -> GateSpec:
    merged = {**base.gate.model_dump(exclude={"baseline"}), **spec.constraints.gate}
    merged.pop("baseline", None)
    gate = GateSpec.model_validate(merged)
    thresholds = ("max_perplexity_increase_pct", "max_kl_divergence", "max_accuracy_drop",
                  "min_throughput_ratio")
    if all(getattr(gate, t) is None for t in thresholds):
        raise RecipeError(f"{path}: constraints.gate: every threshold is null; a sweep needs "
                          f"at least one of {', '.join(thresholds)}")
    return gate


def _build(registry: Any, what: str, kind: str, options: dict[str, Any], path: Path) -> Any:
    if kind not in registry:
        raise RecipeError(f"{path}: {what}.kind: {suggest(kind, registry.names(), what)} "
                          f"(got {kind!r})")
    return registry.get(kind)


def _options(registry: Any, kind: str, options: dict[str, Any], path: Path, what: str) -> Any:
    model = registry.get(kind).options_model
    try:
        return model.model_validate(options)
    except ValidationError as exc:
        raise RecipeError(f"{path}: " + first_error(exc, f"{what}.options",
                                                    model.model_fields, "option")) from None


def _check_points(path: Path, spec: SweepSpec, base: dict[str, Any], space: Space,
                  preflight: bool) -> None:
    """Every point's recipe validates; small spaces also pass the run pre-flight."""
    from quench.preflight import check_recipe

    for point in space.points()[:10_000]:
        where = f"{path}: trial {describe(point)}"
        recipe = validate_trial(trial_recipe(base, point, spec.name), where)
        if preflight and space.size <= PREFLIGHT_POINTS:
            try:
                check_recipe(recipe)
            except RecipeError as exc:
                raise RecipeError(f"{where}: {exc}") from None
