"""The comparison as an MLflow run of its own: parent-less, tagged quench.kind=compare."""

from __future__ import annotations

from pathlib import Path
from typing import Any

TAG_LIMIT = 5000  # characters kept in the compared-runs tag; compare.json has the full list


def record(client: Any, experiment_id: str, run_ids: list[str], files: list[Path],
           params: dict[str, str]) -> str:
    """Logs the report files as artifacts of a new run; returns its id."""
    from mlflow.entities import Param, RunTag

    joined = ",".join(run_ids)
    tags = {"quench.kind": "compare", "quench.compared_runs": joined[:TAG_LIMIT]}
    run = client.create_run(experiment_id, run_name="compare", tags=tags)
    run_id = run.info.run_id
    try:
        client.log_batch(run_id, params=[Param(k, v[:6000]) for k, v in params.items()],
                         tags=[RunTag("quench.compared_count", str(len(run_ids)))])
        for path in files:
            client.log_artifact(run_id, str(path))
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")
    return run_id


def compare_page(uri: str, run_ids: list[str], experiment_ids: list[str]) -> str | None:
    """The MLflow UI's compare page for these runs, when the store is a server."""
    if not uri.startswith(("http://", "https://")):
        return None
    runs = ",".join(f'"{r}"' for r in run_ids)
    exps = ",".join(f'"{e}"' for e in dict.fromkeys(experiment_ids))
    return f"{uri.rstrip('/')}/#/compare-runs?runs=[{runs}]&experiments=[{exps}]"
