"""The license verdict of a recipe's artifact, from its base model's lineage."""


from __future__ import annotations

from pathlib import Path

from quench.license.inherit import Lineage, walk
from quench.license.policy import Verdict, evaluate
from quench.recipe.schema import Recipe


def artifact_name(recipe: Recipe) -> str:
    """The name the artifact is published under (naming rules apply to it)."""
    return recipe.license.artifact_name or recipe.name


def assess(recipe: Recipe, model_folder: Path) -> tuple[Lineage, Verdict]:
    """The lineage of the recipe's base model and the policy's verdict on it."""
    spec = recipe.license
    lineage = walk(model_folder, recipe.model.id, spec.declared, spec.base_models)
    verdict = evaluate(lineage, spec.intended_use, spec.distribution, spec.allow_unknown,
                       artifact_name(recipe), quantized=recipe.quantization.method != "none")
    return lineage, verdict


def failures(verdict: Verdict) -> str:
    """The failing findings as one message, each with its clause."""
    return "\n  ".join(
        f"{f.reason}" + (f" [{f.cite}]" if f.cite else "")
        for f in verdict.findings if f.level == "fail"
    )
