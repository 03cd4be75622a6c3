"""Uploads a record a tracking outage kept on disk, exactly once: what the tracker's retry at
the start of a run and `quench sync` share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from quench.tracking.pending import in_progress, locked, remove_record
from quench.tracking.upload import bounded, upload_record


def finalized(record: dict[str, Any]) -> dict[str, Any]:
    """A record whose writer is gone: a parent still RUNNING was killed (its last stage's end)."""
    parent = record["parent"]
    if parent["status"] == "RUNNING" and not in_progress(record):
        ends = [c["end_ms"] for c in record["children"] if c.get("end_ms")]
        parent = {**parent, "status": "KILLED",
                  "end_ms": max(ends, default=parent["start_ms"])}
        return {**record, "parent": parent}
    return record


def upload_one(path: Path, record: dict[str, Any], uri: str,
               budget: dict[str, str]) -> str | None:
    """Uploads one record under its lock and removes it; None when another process holds it."""
    from mlflow.tracking import MlflowClient

    with locked(path) as mine:
        if not mine:
            return None
        with bounded(budget):
            run_id = upload_record(MlflowClient(tracking_uri=uri), finalized(record))
        remove_record(path.parent.parent.parent, record["upload_id"])
        path.with_suffix(".lock").unlink(missing_ok=True)
    return run_id


def store_reachable(uri: str, budget: dict[str, str]) -> bool:
    """Whether the store answers a cheap call: tells a down store from a bad record."""
    from mlflow.tracking import MlflowClient

    try:
        with bounded(budget):
            MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
        return True
    except Exception:  # noqa: BLE001 - any failure means the store is not usable
        return False


def record_name(record: dict[str, Any]) -> str:
    return f"{record['parent']['name']} ({record['upload_id'][:8]})"
