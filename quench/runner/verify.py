"""What a cache entry holds, file by file, so a damaged entry is never reused.

When a stage folder is finalised every file in it is recorded: size, mtime_ns and the full
sha256 (the digest the Hugging Face Hub shows for LFS files, so a user can compare a checkpoint
with its hub copy). Hashing costs one read of each file, once, when it is written.

A cache hit gets the fast check: size, and a sha256 of the first and last MiB (where a
safetensors header and the end of its data live, and where truncation shows). A file whose
mtime_ns changed since it was recorded was written to, so it gets its full digest checked.
`quench cache verify` checks every full digest (a bit flip in the middle of an untouched file).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from quench.contract.manifest import MANIFEST, Manifest

FILES = "files"  # the manifest key holding the record
EDGE = 1 << 20  # bytes hashed at each end of a file by the fast check
CHUNK = 1 << 22
UNRECORDED = "no file record: written by an older quench"  # such entries are re-run once


def sha256_file(path: Path) -> str:
    """The full sha256 of a file."""
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def edges_digest(path: Path, size: int) -> str:
    """A sha256 of the first and last EDGE bytes (the whole file when it is small)."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        if size <= 2 * EDGE:
            while chunk := fh.read(CHUNK):
                digest.update(chunk)
        else:
            digest.update(fh.read(EDGE))
            fh.seek(size - EDGE)
            digest.update(fh.read(EDGE))
    return digest.hexdigest()


def entry_files(directory: Path) -> list[Path]:
    """The files of a stage folder (recursively, symlinks followed), manifest.json excepted."""
    found = []
    for base, dirs, names in os.walk(directory, followlinks=True):
        dirs.sort()
        for name in sorted(names):
            path = Path(base) / name
            if path.is_file() and path != directory / MANIFEST:
                found.append(path)
    return found


def file_record(path: Path) -> dict[str, Any]:
    """Size, mtime_ns, full sha256 and edges digest of one file."""
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha256_file(path),
            "edges": edges_digest(path, stat.st_size)}


def record_files(directory: Path) -> dict[str, dict[str, Any]]:
    """The record of every file in a stage folder, by path relative to it."""
    return {p.relative_to(directory).as_posix(): file_record(p) for p in entry_files(directory)}


def file_damage(path: Path, record: dict[str, Any], full: bool = False) -> str | None:
    """Why a file no longer matches its record (missing, size, bytes), or None."""
    try:
        stat = path.stat()
    except OSError:
        return "missing"
    if not path.is_file():
        return "not a regular file"
    if stat.st_size != record["size"]:
        return f"size {stat.st_size} != {record['size']}"
    try:
        if edges_digest(path, stat.st_size) != record["edges"]:
            return "bytes changed (first/last MiB)"
        if (full or stat.st_mtime_ns != record["mtime_ns"]) and \
                sha256_file(path) != record["sha256"]:
            return "bytes changed (sha256)"
    except OSError as exc:
        return f"unreadable ({exc.strerror})"
    return None


def entry_problems(manifest: Manifest, full: bool = False) -> Iterator[str]:
    """Every reason a cache entry cannot be trusted ("<file>: <what>"), lazily."""
    record = manifest.data.get(FILES)
    if not isinstance(record, dict):
        yield UNRECORDED
        return
    for rel, expected in sorted(record.items()):
        problem = file_damage(manifest.dir / rel, expected, full)
        if problem is not None:
            yield f"{rel}: {problem}"


def entry_damage(manifest: Manifest, full: bool = False) -> str | None:
    """The first reason a cache entry cannot be trusted, or None when every file checks out."""
    return next(entry_problems(manifest, full), None)
