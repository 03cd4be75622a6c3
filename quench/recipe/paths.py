"""The recipe values quench uses verbatim as paths, and the check that none holds a secret:
a path in a manifest must stay usable by the next stage, so it cannot be redacted there."""

from __future__ import annotations

from quench.recipe.schema import Recipe
from quench.redact import redact


def path_values(recipe: Recipe) -> dict[str, str | None]:
    """The recipe values quench writes verbatim, as paths, into manifests, MLflow and NOTICE."""
    perplexity = recipe.evaluation.perplexity
    return {"name": recipe.name, "model.id": recipe.model.id,
            "model.gguf_file": recipe.model.gguf_file,
            "calibration.source": recipe.calibration.source,
            "evaluation.perplexity.dataset": perplexity.dataset if perplexity else None,
            "output.dir": recipe.output.dir,
            "compute.offload_folder": recipe.compute.offload_folder,
            "quantization.options.recipe": str(getattr(recipe.quantization.options, "recipe",
                                                       None) or "")}


def secrets_in_paths(recipe: Recipe) -> list[str]:
    """A secret inside a path cannot be redacted where the path is used (a manifest naming the
    folder a later stage reads): such a recipe is refused before anything is written."""
    found = []
    for key, value in path_values(recipe).items():
        if value and redact(value) != value:
            found.append(f"{key}: {redact(value)} holds a secret (a token, or the value of a "
                         "secret environment variable such as HF_TOKEN); quench writes this "
                         "path into manifests and MLflow, where it cannot be redacted: use a "
                         "path without it")
    return found
