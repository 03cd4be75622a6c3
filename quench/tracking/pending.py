"""Pending-upload records: a run's whole tracking content, kept on disk until MLflow has it.

A record is written (atomically) as soon as a tracked run begins and after each stage, and is
removed once its parent run reached MLflow in a terminal state; so whatever tracking outage,
kill or crash happens, `quench sync` can replay the run later. Records are redacted.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

from quench.contract.manifest import Manifest
from quench.contract.processes import pid_alive
from quench.owned_files import open_owned, write_atomic
from quench.redact import redact, redact_data

VERSION = 1


def pending_dir(root: Path) -> Path:
    """Where an output folder keeps its pending uploads."""
    return root / ".quench" / "pending"


def record_path(root: Path, upload_id: str) -> Path:
    return pending_dir(root) / f"{upload_id}.json"


def new_record(upload_id: str, uri: str, experiment: str, artifact_location: str | None,
               budget: dict[str, Any]) -> dict[str, Any]:
    """An empty record: where it goes, who writes it, the parent run and its stage runs."""
    return {
        "version": VERSION, "upload_id": upload_id, "tracking_uri": uri,
        "experiment": experiment, "artifact_location": artifact_location,
        "host": socket.gethostname(), "pid": os.getpid(), "budget": budget,
        "parent": None, "children": [],
    }


def write_record(root: Path, record: dict[str, Any]) -> Path:
    """Writes (replaces) the record atomically, redacted; returns its path."""
    path = record_path(root, record["upload_id"])
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(redact_data(record), indent=1))
    return path


def remove_record(root: Path, upload_id: str) -> None:
    record_path(root, upload_id).unlink(missing_ok=True)


class Unreadable(NamedTuple):
    """A record file that cannot be replayed (damaged, or from another quench): it blocks
    nothing; `quench sync --drop` moves it aside."""

    path: Path
    reason: str


def read_records(root: Path) -> tuple[list[tuple[Path, dict[str, Any]]], list[Unreadable]]:
    """Every readable record, oldest first, and the record files that cannot be read."""
    folder = pending_dir(root)
    if not folder.is_dir():
        return [], []
    found, bad = [], []
    for path in sorted(folder.glob("*.json"), key=_mtime):
        try:
            record = json.loads(path.read_text())
            if not isinstance(record, dict) or record.get("version") != VERSION:
                raise ValueError(f"not a version-{VERSION} record")
            for key in ("upload_id", "tracking_uri", "parent", "children"):
                record[key]  # noqa: B018 - a KeyError names what is missing
        except (OSError, ValueError, KeyError) as exc:
            bad.append(Unreadable(path, f"{type(exc).__name__}: {exc}"))
            continue
        found.append((path, record))
    return found, bad


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:  # removed by a concurrent upload
        return 0.0


def drop_record(path: Path) -> Path:
    """Moves a record aside, into pending/dropped/, where `quench sync` no longer looks."""
    dropped = path.parent / "dropped"
    dropped.mkdir(exist_ok=True)
    target = dropped / path.name
    os.replace(path, target)
    path.with_suffix(".lock").unlink(missing_ok=True)
    return target


def in_progress(record: dict[str, Any]) -> bool:
    """True while the process that writes the record still runs (on this host)."""
    return (record.get("host") == socket.gethostname() and record.get("pid") != os.getpid()
            and pid_alive(int(record.get("pid", 0))))


@contextlib.contextmanager
def locked(path: Path) -> Iterator[bool]:
    """An exclusive, non-blocking lock beside a record: yields False when another holds it."""
    lock = path.with_suffix(".lock")
    with open_owned(lock, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run_record(name: str, tags: dict[str, str], params: dict[str, Any] | None = None,
               metrics: dict[str, Any] | None = None,
               start_ms: int | None = None) -> dict[str, Any]:
    """A run as the record keeps it: strings for params and tags, timestamped metrics."""
    now = now_ms()
    return {
        "name": name, "start_ms": start_ms or now, "end_ms": None, "status": "RUNNING",
        "tags": {k: redact(str(v)) for k, v in tags.items()},
        "params": {k: redact(str(v))[:6000] for k, v in (params or {}).items() if v is not None},
        "metrics": numbers(metrics or {}, now), "artifacts": [], "inputs": [],
    }


def numbers(metrics: dict[str, Any], timestamp: int) -> list[list[Any]]:
    """[name, value, timestamp] for each number (bools and None are not metrics)."""
    return [[k, float(v), timestamp] for k, v in metrics.items()
            if isinstance(v, int | float) and not isinstance(v, bool)]


def stage_artifacts(manifest: Manifest) -> list[dict[str, Any]]:
    """The files a stage run carries: its manifest, per-sample data for the gate, a table."""
    found = [{"kind": "file", "path": str(manifest.dir / "manifest.json")}]
    for rel in manifest.outputs.get("mlflow_artifacts", []):
        path = manifest.dir / rel
        if path.is_dir():
            found.append({"kind": "dir", "path": str(path), "dest": rel})
        elif path.is_file():
            found.append({"kind": "file", "path": str(path)})
    if "table" in manifest.outputs:  # a JSON file of columns {name: [values]}
        found.append({"kind": "table", "path": str(manifest.path("table")),
                      "dest": manifest.outputs["table"]})
    return found


def now_ms() -> int:
    """The record's clock: milliseconds since the epoch, as MLflow timestamps."""
    return int(time.time() * 1000)
