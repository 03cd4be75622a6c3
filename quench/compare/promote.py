"""`quench promote`: a registry model version for a run, with aliases that resolve back to it.

The version's source is the run's published folder (`<output.dir>/<recipe>/model`) when this
machine has it and it still holds that run's checkpoint, else the run's artifact URI.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from quench.errors import QuenchError
from quench.tracking.lookup import child_runs, is_pipeline_run, resolve_run

MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
ALIAS_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
RESERVED_ALIAS = re.compile(r"^(latest|v\d+)$", re.IGNORECASE)  # MLflow keeps these for itself


def check_names(model: str, aliases: list[str]) -> None:
    """Names that `<model>@<alias>` references can spell (so lookup.resolve_run finds them)."""
    if not MODEL_NAME.match(model):
        raise QuenchError(f"--model {model!r}: use letters, digits, '.', '_' and '-' (no '/' or "
                          "'@', so that <model>@<alias> references stay unambiguous)")
    for alias in aliases:
        if not ALIAS_NAME.match(alias) or RESERVED_ALIAS.match(alias):
            raise QuenchError(f"--alias {alias!r}: use letters, digits, '_' and '-', starting "
                              "with a letter; 'latest' and 'v<number>' are reserved by MLflow")


def promote(client: Any, uri: str, ref: str, model: str, aliases: list[str]) -> dict[str, Any]:
    """Registers the run's model as a new version of `model` and points each alias at it."""
    from mlflow.exceptions import MlflowException

    check_names(model, aliases)
    run = resolve_run(client, ref)
    if not is_pipeline_run(run):
        raise QuenchError(f"{ref}: run {run.info.run_id} is not a quench pipeline run "
                          "(no quench.recipe tag, or a stage/compare/gate run)")
    source, kind = model_source(client, uri, run)
    tags = {k: run.data.tags[k] for k in ("quench.recipe", "quench.method", "quench.scheme",
                                          "quench.model", "license") if k in run.data.tags}
    try:
        _ensure_model(client, model)
        version = client.create_model_version(model, source, run_id=run.info.run_id,
                                              tags={**tags, "quench.source": kind})
        for alias in aliases:
            client.set_registered_model_alias(model, alias, version.version)
    except MlflowException as exc:
        raise QuenchError(f"registering {ref} as {model}: {exc.message}") from None
    return {"model": model, "version": version.version, "run_id": run.info.run_id,
            "source": source, "source_kind": kind, "aliases": aliases}


def model_source(client: Any, uri: str, run: Any) -> tuple[str, str]:
    """(source, kind): the published folder when it is this run's, else the artifact URI."""
    folder = published_folder(run)
    remote = uri.startswith(("http://", "https://", "databricks"))
    if folder is not None and not remote and _holds_run(client, run, folder):
        return str(folder), "published folder"
    return run.info.artifact_uri, "run artifacts"


def published_folder(run: Any) -> Path | None:
    """<output.dir>/<recipe>/model from the run's params (relative output dirs: from here)."""
    out, name = run.data.params.get("output.dir"), run.data.tags.get("quench.recipe")
    if not out or not name:
        return None
    folder = Path(out).expanduser().resolve() / name / "model"
    return folder if folder.is_dir() else None


def _holds_run(client: Any, run: Any, folder: Path) -> bool:
    """The folder is this run's when run.json beside it names the run's quantize cache key."""
    try:
        used = json.loads((folder.parent / "run.json").read_text())["nodes"]["quantize"]["key"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    quantize = child_runs(client, run).get("quantize")
    return quantize is not None and quantize.data.tags.get("quench.key") == used


def _ensure_model(client: Any, model: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(model)
    except MlflowException:
        client.create_registered_model(
            model, description="Quantized checkpoints registered by `quench promote`.")
