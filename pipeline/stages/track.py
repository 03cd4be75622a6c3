"""track: closes the invocation's tracking run with the report's metrics and files (or keeps
it on disk for `quench sync` when the tracking store is unavailable)."""

from __future__ import annotations

from typing import Any

from pipeline.contract.stage import Stage, StageContext, StageResult
from pipeline.recipe.schema import Recipe
from pipeline.stages import register_stage


@register_stage
class TrackStage(Stage):
    name = "track"
    libraries = ("mlflow",)
    needs_tracker = True

    def config(self, recipe: Recipe) -> dict[str, Any]:
        from pipeline.redact import redact_data
        from pipeline.tracking import tracking_target

        return redact_data(tracking_target(recipe))  # the manifest keeps no credentials

    def run(self, ctx: StageContext) -> StageResult:
        assert ctx.tracker is not None  # the runner passes it: needs_tracker
        return StageResult(outputs=ctx.tracker.finish(ctx.inputs["report"]))
