"""track: closes the invocation's tracking run with the report's metrics and files (or keeps
it on disk for `quench sync` when the tracking store is unavailable)."""

from __future__ import annotations

from typing import Any

from pipeline.recipe.schema import Recipe
from pipeline.stages import Stage, StageContext, StageResult, register_stage


@register_stage
class TrackStage(Stage):
    name = "track"
    libraries = ("mlflow",)

    def config(self, recipe: Recipe) -> dict[str, Any]:
        from pipeline.redact import redact_data
        from pipeline.tracking import tracking_target

        return redact_data(tracking_target(recipe))  # the manifest keeps no credentials

    def run(self, ctx: StageContext) -> StageResult:
        tracker = ctx.extra["tracker"]
        return StageResult(outputs=tracker.finish(ctx.inputs["report"]))
