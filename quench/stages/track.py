"""track: closes the invocation's tracking run with the report's metrics and files (or keeps
it on disk for `quench sync` when the tracking store is unavailable)."""

from __future__ import annotations

from typing import Any

from quench.contract.stage import Stage, StageContext, StageResult
from quench.recipe.schema import Recipe
from quench.stages import register_stage


@register_stage
class TrackStage(Stage[Recipe]):
    name = "track"
    libraries = ("mlflow",)
    needs_tracker = True

    def config(self, recipe: Recipe) -> dict[str, Any]:
        from quench.redact import redact_data
        from quench.tracking.factory import tracking_target

        return redact_data(tracking_target(recipe))  # the manifest keeps no credentials

    def run(self, ctx: StageContext[Recipe]) -> StageResult:
        assert ctx.tracker is not None  # the runner passes it: needs_tracker
        return StageResult(outputs=ctx.tracker.finish(ctx.inputs["report"]))
