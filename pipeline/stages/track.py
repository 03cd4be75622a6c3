"""track: closes the invocation's tracking run with the report's metrics and files."""

from __future__ import annotations

from typing import Any

from pipeline.recipe.schema import Recipe
from pipeline.stages import Stage, StageContext, StageResult, register_stage


@register_stage
class TrackStage(Stage):
    name = "track"
    libraries = ("mlflow",)

    def config(self, recipe: Recipe) -> dict[str, Any]:
        from pipeline.tracking import tracking_target

        return tracking_target(recipe)

    def run(self, ctx: StageContext) -> StageResult:
        tracker = ctx.extra["tracker"]
        return StageResult(outputs=tracker.finish(ctx.inputs["report"]))
