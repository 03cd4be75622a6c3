"""Files quench writes by name in folders users can touch (output folders, sweep folders): never
through a symlink, since a link planted at `quench.log`'s name would have quench truncate and
fill a file outside the output folder. Logs and appended records are opened in place through
open_owned; whole files go through write_atomic (a temporary, then a rename)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Any


def owned_fd(path: Path, append: bool = False) -> int:
    """A write-only descriptor of `path`: a symlink at its name is removed first (the name is
    quench's), and O_NOFOLLOW refuses one planted in between."""
    if path.is_symlink():
        path.unlink()
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    flags |= os.O_APPEND if append else os.O_TRUNC
    return os.open(path, flags, 0o644)


def open_owned(path: Path, mode: str = "w") -> IO[Any]:
    """open() for writing ("w", "a", "wb" or "ab") that never follows a symlink at `path`."""
    if mode not in ("w", "a", "wb", "ab"):
        raise ValueError(f"open_owned: mode {mode!r}; allowed: w, a, wb, ab")
    fd = owned_fd(path, append=mode.startswith("a"))
    return os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8")


def write_atomic(path: Path, data: str | bytes) -> None:
    """Writes a file whole or not at all: a reader sees the old content or the new, never
    half; a failed write (a full disk) leaves neither a partial file nor its temporary."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open_owned(tmp, "wb") as fh:
            fh.write(data.encode() if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
