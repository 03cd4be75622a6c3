"""Replays run records into MLflow idempotently: each run is found by its `quench.upload_id`
tag before one is created, and everything logged again is logged identically (same values,
same timestamps), so an upload cut short can be repeated without duplicates."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from quench.redact import redact
from quench.tracking.ui import publish_view

EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"
UPLOAD_TAG, COMPLETE_TAG = "quench.upload_id", "quench.upload_complete"
# the artifacts a run was uploaded without (their files were gone): uploaded with what remains
MISSING_TAG = "quench.missing_artifacts"
BATCH = 100  # MLflow accepts at most 100 params / 1000 metrics per log_batch call
HTTP_VARIABLES = ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
                  "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER", "MLFLOW_HTTP_REQUEST_TIMEOUT")


def http_budget(timeout_s: float, retries: int) -> dict[str, str]:
    """MLflow's HTTP retry settings that keep one call, retries included, within timeout_s.

    urllib3 sleeps 0, 2f, 4f, ... between attempts (f = backoff factor, an integer for MLflow);
    each of the retries + 1 attempts may wait the request timeout for connect and for read.
    """
    factor = 1 if retries and 2**retries - 2 <= timeout_s / 2 else 0
    backoff = factor * (2**retries - 2) if retries else 0
    per_request = max(1, int((timeout_s - backoff) / (retries + 1)))
    return {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(retries),
            "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": str(factor),
            "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0",
            "MLFLOW_HTTP_REQUEST_TIMEOUT": str(per_request)}


@contextlib.contextmanager
def bounded(settings: dict[str, str]) -> Iterator[None]:
    """MLflow HTTP calls made inside use these retry settings (restored afterwards)."""
    saved = {name: os.environ.get(name) for name in HTTP_VARIABLES}
    os.environ.update(settings)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def experiment_id(client: Any, record: dict[str, Any]) -> str:
    """The record's experiment, created when missing (its local artifact root, if it has one)."""
    name = record["experiment"]
    found = client.get_experiment_by_name(name)
    if found is not None:
        exp_id = found.experiment_id
    else:
        exp_id = client.create_experiment(name, artifact_location=record["artifact_location"])
    tags = found.tags if found is not None else {}
    if EXPERIMENT_KIND_TAG not in tags:
        # the experiment type MLflow 3's selector sets (3.17's UI goes by the `workflowType`
        # URL parameter instead: quench.tracking.ui); kept for the versions that read it
        client.set_experiment_tag(exp_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    publish_view(client, exp_id, tags, [m[0] for m in record["parent"].get("metrics", [])])
    return exp_id


def find_run(client: Any, exp_id: str, upload_id: str) -> Any | None:
    """The run tagged with this upload id, if one was created already."""
    runs = client.search_runs([exp_id], f"tags.`{UPLOAD_TAG}` = '{upload_id}'", max_results=2)
    return runs[0] if runs else None


def open_run(client: Any, exp_id: str, run: dict[str, Any], parent_id: str | None,
             search: bool = True) -> tuple[str, bool]:
    """The MLflow run of a run record (found or created) and whether it is complete already."""
    found = find_run(client, exp_id, run["tags"][UPLOAD_TAG]) if search else None
    if found is not None:
        return found.info.run_id, found.data.tags.get(COMPLETE_TAG) == "true"
    tags = dict(run["tags"])
    if parent_id is not None:
        tags["mlflow.parentRunId"] = parent_id
    created = client.create_run(exp_id, start_time=run["start_ms"], tags=tags,
                                run_name=run["name"])
    return created.info.run_id, False


def log_contents(client: Any, run_id: str, run: dict[str, Any]) -> list[str]:
    """Tags, params, metrics, dataset inputs and artifacts of a run record (repeatable); the
    artifacts whose files are gone are named in the run's MISSING_TAG and returned."""
    from mlflow.entities import Metric, Param, RunTag

    params = [Param(k, v) for k, v in run.get("params", {}).items()]
    metrics = [Metric(k, v, ts, 0) for k, v, ts in run.get("metrics", [])]
    tags = [RunTag(k, v) for k, v in run.get("tags", {}).items()]
    if tags:
        client.log_batch(run_id, tags=tags)
    for i in range(0, max(len(params), len(metrics)), BATCH):
        client.log_batch(run_id, metrics=metrics[i : i + BATCH], params=params[i : i + BATCH])
    for entry in run.get("inputs", []):
        client.log_inputs(run_id, datasets=[calibration_input(entry)])
    missing = [str(a.get("dest") or Path(a["path"]).name) for a in run.get("artifacts", [])
               if not log_artifact(client, run_id, a)]
    if missing:
        client.set_tag(run_id, MISSING_TAG, redact(", ".join(missing))[:4000])
    return missing


def log_artifact(client: Any, run_id: str, artifact: dict[str, Any]) -> bool:
    """One file, folder or table; False when its file is gone (deleted since it was recorded)."""
    path = Path(artifact["path"])
    if not path.exists():
        return False
    if artifact["kind"] == "dir":
        client.log_artifacts(run_id, str(path), artifact_path=artifact.get("dest"))
    elif artifact["kind"] == "table":  # log_table appends to an existing table: log it once
        name = artifact["dest"]
        parent = os.path.dirname(name) or None
        if name not in {a.path for a in client.list_artifacts(run_id, parent)}:
            client.log_table(run_id, data=json.loads(path.read_text()), artifact_file=name)
    else:
        client.log_artifact(run_id, str(path), artifact_path=artifact.get("dest"))
    return True


def close_run(client: Any, run_id: str, run: dict[str, Any]) -> None:
    """Marks the run complete and sets its final status and end time."""
    client.set_tag(run_id, COMPLETE_TAG, "true")
    client.set_terminated(run_id, run["status"], end_time=run["end_ms"])


def calibration_input(entry: dict[str, Any]) -> Any:
    """Dataset lineage in MLflow's own terms: source, digest and the samples drawn."""
    import mlflow.data
    import pandas as pd
    from mlflow.entities import DatasetInput, InputTag

    frame = pd.DataFrame({"record_index": entry["record_indices"]})
    dataset = mlflow.data.from_pandas(frame, source=entry["source"],
                                      name=f"calibration:{Path(entry['source']).name}")
    tags = [InputTag("mlflow.data.context", "calibration"),
            InputTag("quench.seed", str(entry["seed"])),
            InputTag("quench.max_seq_length", str(entry["max_seq_length"]))]
    tags += [InputTag(f"quench.{k}", str(entry[k])) for k in ("origin", "records") if k in entry]
    return DatasetInput(dataset._to_mlflow_entity(), tags)


def upload_record(client: Any, record: dict[str, Any]) -> str:
    """Replays a whole record (parent, then each stage run); returns the parent's run id.

    The parent is closed last, so a parent marked complete means everything arrived.
    """
    exp_id = experiment_id(client, record)
    parent = record["parent"]
    parent_id, done = open_run(client, exp_id, parent, None)
    if done:
        return parent_id
    log_contents(client, parent_id, parent)
    for child in record["children"]:
        child_id, child_done = open_run(client, exp_id, child, parent_id)
        if not child_done:
            log_contents(client, child_id, child)
            close_run(client, child_id, child)
    if parent["status"] != "RUNNING":
        close_run(client, parent_id, parent)
    return parent_id


def mark_incomplete(client: Any, record: dict[str, Any]) -> bool:
    """Ends as FAILED a parent run that an upload cut short left RUNNING (a later upload of the
    record sets its real status); True when there was one."""
    found = client.get_experiment_by_name(record["experiment"])
    run = find_run(client, found.experiment_id, record["upload_id"]) if found else None
    if run is None or run.info.status != "RUNNING" or run.data.tags.get(COMPLETE_TAG) == "true":
        return False
    client.set_terminated(run.info.run_id, "FAILED")
    return True
