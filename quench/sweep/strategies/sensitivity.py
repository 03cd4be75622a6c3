"""Layer-wise sensitivity, then mixed precision: phase 1 runs the base recipe as it is (every
group quantized: the k = 0 proposal, and the size every estimate starts from) and one probe per
decoder-layer group (only that group quantized) for its KL; phase 2 keeps the most sensitive
groups at full precision for k = 1, 2, ... within a size budget, each a real, gated trial. Why:
a uniform scheme that fails the gate often passes once its one or two fragile layers are left
out, at a fraction of the size a less aggressive scheme would cost."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field

from quench.errors import QuenchError
from quench.strict import StrictModel
from quench.sweep.layer_groups import (
    base_ignore,
    ignore_keeping,
    layer_count_from_config,
    layer_count_from_run,
    layer_groups,
)
from quench.sweep.mixed_precision import GroupResult, Proposal, full_precision_costs, plan
from quench.sweep.space import Point, point_id
from quench.sweep.strategies import STRATEGIES, Strategy

if TYPE_CHECKING:
    from quench.sweep.trial import TrialRecord

IGNORE_KEY = "quantization.options.ignore"


class SensitivityOptions(StrictModel):
    layers_per_group: int = Field(1, ge=1, le=1000, description="Consecutive decoder layers "
                                  "measured (and kept at full precision) together.")
    max_size_ratio: float | None = Field(
        None, gt=0, description="Size budget relative to the base model (estimated from the "
        "phase-1 trials); null: every prefix level up to `proposals`.")
    proposals: int = Field(3, ge=1, le=1000, description="Mixed-precision proposals verified "
                           "with real trials (k = 0, 1, ... most sensitive groups kept).")


@STRATEGIES.register
class SensitivityStrategy(Strategy):
    name = "sensitivity"
    options_model = SensitivityOptions
    needs_results = True

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.groups: list[list[int]] | None = None
        self.probe_ids: set[str] = set()  # phase-1 points: measurements, not recommendations
        self.proposal_ids: set[str] = set()
        self.proposed: list[Point] | None = None

    @property
    def opts(self) -> SensitivityOptions:
        return self.options  # type: ignore[return-value]

    def check(self) -> None:
        count = _layer_count_before_run(self.context.base_recipe)
        groups = len(layer_groups(count, self.opts.layers_per_group)) if count else 1
        self._check_budget(groups, known=count is not None)

    def ask(self, history: list[TrialRecord], n: int) -> list[Point]:
        groups = self._layer_groups()
        done = {point_id(r.point) for r in history}
        probes = [self._probe(g) for g in range(len(groups))]
        self.probe_ids = {point_id(p) for p in probes} - {point_id(self._all_quantized())}
        phase1 = {point_id(p): p for p in [self._all_quantized(), *probes]}
        missing = [p for pid, p in phase1.items() if pid not in done]
        if missing:
            return missing[:n]
        if self.proposed is None:
            self.proposed = self._propose(history)
        return [p for p in self.proposed if point_id(p) not in done][:n]

    def candidate(self, record: TrialRecord) -> bool:
        """Probes leave almost every layer unquantized: never the recommendation (unless a
        proposal is the same point, as with two groups and k = 1)."""
        if not self.probe_ids and self.context.baseline is not None:
            try:  # a resumed sweep may recommend before asking again
                groups = self._layer_groups()
            except QuenchError:
                return True
            self.probe_ids = ({point_id(self._probe(g)) for g in range(len(groups))}
                              - {point_id(self._all_quantized())})
        pid = point_id(record.point)
        return pid not in self.probe_ids or pid in self.proposal_ids

    def probe_point(self, group: int) -> Point:
        """The phase-1 point for a group: only its layers quantized."""
        return self._probe(group)

    def _all_quantized(self) -> Point:
        """The base recipe's own quantization (k = 0), as a point the sweep can run."""
        return {IGNORE_KEY: base_ignore(self.context.base_recipe)}

    def _probe(self, group: int) -> Point:
        groups = self._layer_groups()
        others = [i for g, layers in enumerate(groups) if g != group for i in layers]
        return {IGNORE_KEY: ignore_keeping(base_ignore(self.context.base_recipe), others)}

    def _layer_groups(self) -> list[list[int]]:
        if self.groups is None:
            baseline = self.context.baseline
            if baseline is None or baseline.outcome is None:
                raise QuenchError("strategy sensitivity: the sweep's baseline has not run; the "
                                  "layer count is read from its resolved model")
            count = layer_count_from_run(baseline.outcome.run_info)
            self.groups = layer_groups(count, self.opts.layers_per_group)
            self._check_budget(len(self.groups), known=True)
        return self.groups

    def _check_budget(self, groups: int, known: bool) -> None:
        needed = groups + min(self.opts.proposals, groups)
        if self.budget.max_trials < needed:
            what = f"{groups} layer group(s)" if known else "at least 1 layer group"
            raise QuenchError(
                f"budget.max_trials: strategy sensitivity needs {needed} trials ({what} "
                f"measured one at a time, then up to {min(self.opts.proposals, groups)} "
                f"proposal(s), the first the base recipe as it is) and the budget allows "
                f"{self.budget.max_trials}; raise "
                "budget.max_trials, strategy.options.layers_per_group or lower "
                "strategy.options.proposals")

    def _propose(self, history: list[TrialRecord]) -> list[Point]:
        """Phase 2: rank the measured groups, plan the proposals, write the notes."""
        by_id = {point_id(r.point): r for r in history}
        dense = _dense_size(self.context.baseline)
        probes = [by_id[point_id(self._probe(g))].metrics.get("size_bytes")
                  for g in range(len(self._layer_groups()))]
        quantized = by_id[point_id(self._all_quantized())].metrics.get("size_bytes")
        if quantized is None and all(p is not None for p in probes):
            quantized = dense - sum(dense - p for p in probes if p is not None)
            self.context.notes.append("sensitivity: the all-quantized trial measured no size; "
                                      "estimated from the probes")
        if quantized is None:
            self.context.notes.append("sensitivity: no proposal: neither the all-quantized "
                                      "trial nor every probe measured a size")
            return []
        results = self._group_results(by_id, probes, quantized, dense)
        plans = plan(results, dense, quantized, self.opts.proposals, self.opts.max_size_ratio)
        for r in results:
            kl = "not measured" if r.kl is None else f"{r.kl:.4g}"
            saved = "not measured" if r.saved_bytes is None else f"{r.saved_bytes:,.0f}"
            self.context.notes.append(f"sensitivity: layers {_span(r.layers)} quantized alone: "
                                      f"KL {kl}; full precision costs {saved} bytes")
        for p in plans:
            self.context.notes.append(_proposal_note(p))
        if not plans:
            self.context.notes.append(
                f"sensitivity: no proposal fits max_size_ratio {self.opts.max_size_ratio} "
                f"(everything quantized is {quantized / dense:.3f} of the base model)")
        base = base_ignore(self.context.base_recipe)
        points = [{IGNORE_KEY: ignore_keeping(base, p.kept_layers)} for p in plans]
        self.proposal_ids = {point_id(p) for p in points}
        return points

    def _group_results(self, by_id: dict[str, TrialRecord], probes: list[float | None],
                       quantized: float, dense: float) -> list[GroupResult]:
        groups = self._layer_groups()
        costs = full_precision_costs(probes, quantized, dense)
        return [GroupResult(g, layers, by_id[point_id(self._probe(g))].metrics.get(
                    "kl_divergence"), cost)
                for g, (layers, cost) in enumerate(zip(groups, costs, strict=True))]


def _dense_size(baseline: TrialRecord | None) -> float:
    """The base model's size (every run's report has it: metrics.baseline.size_bytes)."""
    report = (baseline.outcome.report if baseline and baseline.outcome else None) or {}
    dense = ((report.get("metrics") or {}).get("baseline") or {}).get("size_bytes")
    if not dense:
        raise QuenchError("strategy sensitivity: the baseline's report.json has no "
                          "metrics.baseline.size_bytes (the base model's size the size "
                          "ratios are relative to)")
    return float(dense)


def _layer_count_before_run(base_recipe: dict[str, Any]) -> int | None:
    """The layer count from a model already on disk (local or mirror); None: known only once
    the baseline has resolved it (check() then assumes one group)."""
    from quench.sources import model_config, resolve_model

    model = base_recipe.get("model") or {}
    if not isinstance(model.get("id"), str):
        return None
    try:
        resolved = resolve_model(model["id"], model.get("revision"), download=False,
                                 gguf_file=model.get("gguf_file"))
        if resolved.origin == "hub":
            return None
        return layer_count_from_config(model_config(resolved), resolved.source)
    except QuenchError:
        return None


def _span(layers: list[int]) -> str:
    return f"{layers[0]}-{layers[-1]}" if len(layers) > 1 else str(layers[0])


def _proposal_note(p: Proposal) -> str:
    kept = ", ".join(str(i) for i in p.kept_layers) or "none"
    return (f"sensitivity proposal k={p.k}: layers kept at full precision: {kept}; "
            f"estimated size ratio {p.size_ratio:.3f} ({p.size_bytes:,.0f} bytes)")
