"""license: the artifact's license verdict, LICENSE and NOTICE, from the base model's lineage.

Runs right after resolve, so a recipe whose intended use the licenses forbid stops before any
calibration; `quench validate` runs the same assessment when the base card is local.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from quench.contract.manifest import Manifest
from quench.contract.stage import Stage, StageContext, StageResult
from quench.errors import StageError
from quench.license.assess import artifact_name, assess, failures
from quench.license.kb import KB_FILE
from quench.recipe.schema import Recipe
from quench.sources import file_sha256, resolve_spec
from quench.stages import register_stage

LICENSE_PACKAGE = KB_FILE.parent


def license_source(resolved: Manifest) -> Path:
    """What the license is read from: the GGUF file (its metadata) or the checkpoint folder."""
    gguf = resolved.outputs.get("gguf")
    return Path(gguf["file"]) if gguf else resolved.path("model_dir")


@register_stage
class LicenseStage(Stage[Recipe]):
    name = "license"

    def config(self, recipe: Recipe) -> dict[str, Any]:
        q = recipe.quantization
        return {"policy": recipe.license.model_dump(), "model": recipe.model.id,
                "artifact_name": artifact_name(recipe), "method": q.method, "scheme": q.scheme}

    def fingerprint(self, recipe: Recipe) -> dict[str, Any]:
        """The card and license files of every ancestor (the base's are in resolve's key)."""
        resolved = resolve_spec(recipe.model, download=False)
        if resolved.origin == "hub":
            return {}
        lineage, _ = assess(recipe, resolved.source)
        return {m.model: {Path(p).name: file_sha256(Path(p)) for p in m.files.values()}
                for m in lineage.ancestors}

    def code_files(self) -> list[Path]:
        return [*super().code_files(), *sorted(LICENSE_PACKAGE.glob("*.py")), KB_FILE]

    def headline(self, manifest: Manifest) -> str:
        verdict = manifest.outputs.get("verdict") or {}
        names = ", ".join(verdict.get("licenses") or []) or "unknown license"
        return f"{names}: {verdict.get('status', '?')}"

    def run(self, ctx: StageContext[Recipe]) -> StageResult:
        recipe = ctx.recipe
        lineage, verdict = assess(recipe, license_source(ctx.inputs["model"]))
        if verdict.status == "fail":
            raise StageError(f"license: {artifact_name(recipe)!r} may not be used as "
                             f"license.* says:\n  {failures(verdict)}")
        from quench.license.outputs import license_text, notice_text

        q = recipe.quantization
        change = ("weights unchanged (baseline)" if q.method == "none" else
                  f"its weights were quantized ({q.method}, {q.scheme}) with quench.")
        (ctx.out_dir / "LICENSE").write_text(license_text(lineage, verdict))
        (ctx.out_dir / "NOTICE").write_text(
            notice_text(lineage, verdict, artifact_name(recipe), change))
        files = {"LICENSE": "LICENSE", "NOTICE": "NOTICE"}
        if "USE_POLICY" in lineage.base.files:  # acceptable-use policies travel with the model
            shutil.copyfile(lineage.base.files["USE_POLICY"], ctx.out_dir / "USE_POLICY.md")
            files["USE_POLICY.md"] = "USE_POLICY.md"
        (ctx.out_dir / "license.json").write_text(json.dumps(
            {"verdict": verdict.to_json(), "lineage": lineage.to_json()}, indent=2))
        return StageResult(outputs={"verdict": verdict.to_json(), "license_json": "license.json",
                                    "artifact_files": files})
