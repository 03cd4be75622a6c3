"""The sweep file's schema: a base recipe, the axes to vary, how to pick trials, what is
cheapest and what must pass. Strict like a recipe: unknown keys and lax types are errors."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator, model_validator

from quench.recipe.gate import GateSpec
from quench.strict import StrictModel

# What an objective may rank by: report.json numbers every trial has (size, quality, time)
# and the served throughput (when the recipe measures it). "lower" or "higher" is better.
OBJECTIVE_METRICS: dict[str, str] = {
    "size_bytes": "lower",  # the deployed checkpoint (the export when there is one)
    "size_ratio": "lower",  # size_bytes / the base model's
    "perplexity": "lower",
    "kl_divergence": "lower",
    "quantize_wall_seconds": "lower",
    "output_tokens_per_s": "higher",  # served, at the highest concurrency measured
}


class ObjectiveSpec(StrictModel):
    """What "cheapest" means: one metric, or a weighted sum of metrics (lower wins)."""

    minimize: str | None = Field(None, description="Metric to minimize: "
                                 + ", ".join(k for k, v in OBJECTIVE_METRICS.items()
                                             if v == "lower") + ".")
    maximize: str | None = Field(
        None, description="Metric to maximize: output_tokens_per_s (served, at the highest "
        "concurrency measured; needs target and evaluation.throughput).")
    weights: dict[str, float] | None = Field(
        None, description="Weighted cost, minimized: sum of weight x metric (give a negative "
        "weight to a metric where higher is better, e.g. output_tokens_per_s: -0.001).")
    tie_pct: float = Field(0.5, ge=0, le=100, description="Passing trials whose cost is within "
                           "this percentage of the cheapest one's tie; a tie goes to the better "
                           "quality (lower KL divergence, then perplexity).")

    @model_validator(mode="after")
    def _one_form(self) -> ObjectiveSpec:
        given = [k for k in ("minimize", "maximize", "weights") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError("give exactly one of minimize, maximize, weights (got "
                             f"{', '.join(given) or 'none'})")
        for name in [self.minimize, self.maximize, *(self.weights or {})]:
            if name is not None and name not in OBJECTIVE_METRICS:
                raise ValueError(f"unknown metric {name!r}; allowed: "
                                 f"{', '.join(OBJECTIVE_METRICS)}")
        if self.minimize and OBJECTIVE_METRICS[self.minimize] != "lower":
            raise ValueError(f"minimize: {self.minimize} is better when higher; use maximize")
        if self.maximize and OBJECTIVE_METRICS[self.maximize] != "higher":
            raise ValueError(f"maximize: {self.maximize} is better when lower; use minimize")
        return self

    def metrics(self) -> list[str]:
        return [m for m in [self.minimize, self.maximize, *(self.weights or {})] if m]


class ConstraintsSpec(StrictModel):
    """What a trial must pass to be recommended: the gate against the baseline."""

    baseline: str | None = Field(
        None, description="Baseline recipe file (relative to the sweep file); default the "
        "base recipe's gate.baseline.")
    gate: dict[str, Any] = Field(
        default_factory=dict, description="Gate thresholds over the base recipe's `gate:` "
        "section (same keys: max_perplexity_increase_pct, max_kl_divergence, max_accuracy_drop, "
        "min_throughput_ratio, alpha, ...); the merged gate must keep at least one threshold.")
    strict: bool = Field(
        True, description="Only PASS is accepted (an INCONCLUSIVE metric does not pass); "
        "false accepts INCONCLUSIVE like `quench gate` without --strict.")

    @field_validator("gate")
    @classmethod
    def _gate_keys(cls, value: dict[str, Any]) -> dict[str, Any]:
        GateSpec.model_validate(value)  # a typo is an error here, not a silent default
        return value


class BudgetSpec(StrictModel):
    max_trials: int = Field(16, ge=1, le=10_000, description="Most trials the strategy runs "
                            "(the baseline not counted); `--max-trials` overrides it.")
    trial_timeout_s: float | None = Field(
        None, gt=0, description="A trial still running after this long is stopped (its whole "
        "process group) and recorded as timeout; null: no limit.")


class ExecutorSpec(StrictModel):
    kind: str = Field("local", description="Where trials run: a registered executor (local, "
                      "ray); `--executor` overrides it.")
    options: dict[str, Any] = Field(default_factory=dict, description="The executor's options, "
                                    "validated before any trial runs.")


class StrategySpec(StrictModel):
    kind: str = Field("grid", description="How trials are picked: a registered strategy "
                      "(grid, random, optuna, sensitivity).")
    options: dict[str, Any] = Field(default_factory=dict, description="The strategy's options, "
                                    "validated before any trial runs.")


class SweepSpec(StrictModel):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$",
                      description="Sweep name (letters, digits, . _ -; at most 80 characters): "
                      "its folder, MLflow run and trial-name prefix. The loader sets it to the "
                      "sweep file's name when it is missing.")
    description: str = Field("", max_length=10_000, description="Free text.")
    base: str | dict[str, Any] = Field(
        description="The base recipe: a file (relative to the sweep file) or an inline "
        "recipe mapping (which may use `extends:`).")
    axes: dict[str, list[Any]] = Field(
        default_factory=dict, description="Recipe key (dotted, as in key.sub=value overrides) "
        "-> the values it takes; trials combine them. Any recipe key but name, output.dir and "
        "tracking.* (e.g. quantization.options.group_size, calibration.num_samples).")
    variants: list[dict[str, Any]] = Field(
        default_factory=list, description="Named sets of overrides that go together (a "
        "method with its own options); each is combined with every point of `axes`, whose "
        "values are applied after the variant's.")
    strategy: StrategySpec = Field(default_factory=StrategySpec,
                                   description="How trials are picked from the space.")
    objective: ObjectiveSpec = Field(
        default_factory=lambda: ObjectiveSpec(minimize="size_bytes"),
        description="What is cheapest; a trial without a metric the objective needs gets no "
        "cost and is never recommended.")
    constraints: ConstraintsSpec = Field(default_factory=ConstraintsSpec,
                                         description="What a trial must pass to be recommended.")
    budget: BudgetSpec = Field(default_factory=BudgetSpec,
                               description="How many trials run and for how long.")
    executor: ExecutorSpec = Field(default_factory=ExecutorSpec,
                                   description="Where trials run.")
    seed: int = Field(0, ge=0, description="Seed of the sampling strategies (random, optuna).")
    output_dir: str | None = Field(
        None, description="Where the sweep's table, plot and trial recipes go; default "
        "<base output.dir>/sweeps/<name>.")

    @field_validator("axes")
    @classmethod
    def _axes(cls, axes: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for key, values in axes.items():
            if not values:
                raise ValueError(f"{key}: an axis needs at least one value")
            if key in ("name", "output.dir") or key.startswith("tracking."):
                raise ValueError(f"{key}: the sweep sets this key itself; it cannot be an axis")
        return axes

    @field_validator("variants")
    @classmethod
    def _variants(cls, variants: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for i, variant in enumerate(variants):
            if not variant:
                raise ValueError(f"variants[{i}]: empty; give at least one key")
        return variants
