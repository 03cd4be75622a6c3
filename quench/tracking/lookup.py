"""Finding runs in MLflow by what users write: a run id, a registry alias, or a recipe name.

It fails closed: anything that does not resolve to exactly one finished run is an error,
because an MLflow search that returns nothing must never read as "no regression".
"""

from __future__ import annotations

import re
from typing import Any

from quench.errors import QuenchError

RUN_ID = re.compile(r"^[0-9a-f]{32}$")
ALIAS = re.compile(r"^(?:models:/)?(?P<name>[^@/]+)@(?P<alias>[A-Za-z0-9_-]+)$")


class RunNotFound(QuenchError):
    """A reference that does not name one finished run."""


def resolve_run(client: Any, ref: str) -> Any:
    """The run a reference names: `<run id>`, `<model>@<alias>` or `models:/<model>@<alias>`."""
    from mlflow.exceptions import MlflowException

    match = ALIAS.match(ref)
    try:
        if match:
            version = client.get_model_version_by_alias(match["name"], match["alias"])
            if not version.run_id:
                raise RunNotFound(f"{ref}: model version {version.version} has no run")
            run = client.get_run(version.run_id)
        elif RUN_ID.match(ref):
            run = client.get_run(ref)
        else:
            raise RunNotFound(
                f"{ref!r} is neither a run id (32 hex digits) nor a registry alias "
                "(<model>@<alias>, e.g. tinystories@baseline)")
    except MlflowException as exc:
        raise RunNotFound(f"{ref}: not found in MLflow ({exc.message})") from None
    if run.info.status != "FINISHED":
        raise RunNotFound(f"{ref}: run {run.info.run_id} is {run.info.status}, not FINISHED")
    return run


def child_runs(client: Any, parent: Any) -> dict[str, Any]:
    """A parent run's stage runs by node name (the newest, should a name repeat)."""
    children = client.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
        order_by=["attributes.start_time ASC"],
    )
    return {c.info.run_name: c for c in children}


# --- listing pipeline runs (used by `quench compare` and `quench promote`) -----------------

FILTER_VALUE = re.compile(r"^[^'`\\]*$")


def is_pipeline_run(run: Any) -> bool:
    """A `quench run` parent run: tagged with its recipe, not a stage, compare or gate run."""
    tags = run.data.tags
    return ("quench.recipe" in tags and "mlflow.parentRunId" not in tags
            and tags.get("quench.kind", "run") == "run")


def experiment_ids(client: Any, experiment: str | None) -> list[str]:
    """The named experiment's id, or every active experiment's (error when there is none)."""
    if experiment is not None:
        found = client.get_experiment_by_name(experiment)
        if found is None or found.lifecycle_stage != "active":
            raise RunNotFound(f"experiment {experiment!r} does not exist in MLflow")
        return [found.experiment_id]
    ids = [e.experiment_id for e in client.search_experiments()]
    if not ids:
        raise RunNotFound("the MLflow store has no experiments: nothing has been tracked yet")
    return ids


def pipeline_runs(
    client: Any, experiment: str | None = None, tags: dict[str, str] | None = None,
    latest_only: bool = True, max_results: int = 1000,
) -> list[Any]:
    """Finished pipeline parent runs matching every tag, newest first; with `latest_only`
    one per (experiment, recipe). Errors when nothing matches: an empty search is no answer."""
    clauses = ["attributes.status = 'FINISHED'"]
    for key, value in (tags or {}).items():
        if not FILTER_VALUE.match(key) or not FILTER_VALUE.match(value):
            raise RunNotFound(f"tag filter {key}={value}: quotes, backticks and backslashes "
                              "are not allowed")
        clauses.append(f"tags.`{key}` = '{value}'")
    ids = experiment_ids(client, experiment)
    runs: list[Any] = []
    token = None
    while len(runs) < max_results:
        page = client.search_runs(ids, " and ".join(clauses), max_results=min(max_results, 1000),
                                  order_by=["attributes.start_time DESC"], page_token=token)
        runs += [r for r in page if is_pipeline_run(r)]
        token = page.token
        if not token:
            break
    if latest_only:
        seen: set[tuple[str, str]] = set()
        runs = [r for r in runs if _first((r.info.experiment_id, r.data.tags["quench.recipe"]),
                                          seen)]
    if not runs:
        where = f"experiment {experiment!r}" if experiment else "any experiment"
        wanted = ", ".join(f"{k}={v}" for k, v in (tags or {}).items()) or "no tag filter"
        raise RunNotFound(f"no finished quench run in {where} matches {wanted}")
    return runs[:max_results]


def _first(key: tuple[str, str], seen: set[tuple[str, str]]) -> bool:
    if key in seen:
        return False
    seen.add(key)
    return True
