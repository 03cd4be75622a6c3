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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from quench.contract.processes import pid_alive
from quench.redact import redact_data

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
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(redact_data(record), indent=1))
    os.replace(tmp, path)
    return path


def remove_record(root: Path, upload_id: str) -> None:
    record_path(root, upload_id).unlink(missing_ok=True)


def read_records(root: Path) -> list[tuple[Path, dict[str, Any]]]:
    """Every readable record, oldest first (an unreadable one is reported by its path)."""
    folder = pending_dir(root)
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise OSError(f"{path}: unreadable pending-upload record ({exc})") from None
        found.append((path, record))
    return found


def in_progress(record: dict[str, Any]) -> bool:
    """True while the process that writes the record still runs (on this host)."""
    return (record.get("host") == socket.gethostname() and record.get("pid") != os.getpid()
            and pid_alive(int(record.get("pid", 0))))


@contextlib.contextmanager
def locked(path: Path) -> Iterator[bool]:
    """An exclusive, non-blocking lock beside a record: yields False when another holds it."""
    lock = path.with_suffix(".lock")
    with lock.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
