"""resolve: turns model.id into a local checkpoint folder and fingerprints its files."""

from __future__ import annotations

import json
from typing import Any

from pipeline.errors import StageError
from pipeline.models import check_safetensors
from pipeline.recipe.schema import Recipe
from pipeline.sources import fingerprint_path, resolve_model
from pipeline.stages import Stage, StageContext, StageResult, register_stage


@register_stage
class ResolveStage(Stage):
    name = "resolve"
    libraries = ("huggingface-hub",)

    def config(self, recipe: Recipe) -> dict[str, Any]:
        return recipe.model.model_dump()

    def fingerprint(self, recipe: Recipe) -> dict[str, Any]:
        resolved = resolve_model(recipe.model.id, recipe.model.revision)
        return {"path": str(resolved.path), "origin": resolved.origin,
                "files": fingerprint_path(resolved.path)}

    def run(self, ctx: StageContext) -> StageResult:
        resolved = resolve_model(ctx.recipe.model.id, ctx.recipe.model.revision)
        try:
            config = json.loads((resolved.path / "config.json").read_text())
        except ValueError as exc:
            raise StageError(f"{resolved.path / 'config.json'}: not valid JSON ({exc})") from None
        weights = sorted(resolved.path.glob("*.safetensors"))
        if not weights:
            raise StageError(f"model.id: {resolved.path} holds no *.safetensors weights")
        tensors = sum(check_safetensors(w) for w in weights)
        outputs = {
            "model_dir": str(resolved.path),
            "origin": resolved.origin,
            "architectures": config.get("architectures", []),
            "model_type": config.get("model_type"),
            "weights": [w.name for w in weights],
            "tensors": tensors,
        }
        return StageResult(outputs=outputs)
