"""Advisory file locks (fcntl.flock) so that processes sharing an output folder take turns.

A lock is a small file that is never deleted (deleting one would let two processes hold
"the same" lock on different inodes); the kernel drops a lock when its holder dies, so a
kill -9 never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path

LOCK_PREFIX = ".lock-"


class Busy(Exception):
    """A non-blocking lock request found the lock held by another process."""


def _open(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)


@contextmanager
def file_lock(path: Path, *, shared: bool = False, blocking: bool = True,
              on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Holds an exclusive (or shared) lock on `path`; raises Busy when not blocking and taken.

    `on_wait` is called once, before blocking, when the lock is taken by someone else.
    """
    fd = _open(path)
    mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    try:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            if not blocking:
                raise Busy(str(path)) from None
            if on_wait is not None:
                on_wait()
            fcntl.flock(fd, mode)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


class Lease:
    """A lock held until close() (or the process ends), e.g. "a run is using this cache"."""

    def __init__(self, path: Path, *, shared: bool = True,
                 on_wait: Callable[[], None] | None = None) -> None:
        self._fd: int | None = _open(path)
        mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        try:
            fcntl.flock(self._fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait()
            fcntl.flock(self._fd, mode)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self) -> None:
        self.close()


def sqlite_path(uri: str) -> Path | None:
    """The database file of a `sqlite:///...` tracking URI, else None."""
    prefix = "sqlite:///"
    return Path(uri[len(prefix):]) if uri.startswith(prefix) else None


def store_creation_lock(uri: str) -> AbstractContextManager[None]:
    """For a SQLite tracking store, a lock on `<db>.lock` around creating it (MLflow's schema
    migrations race when two processes create one database); nothing for other stores."""
    db = sqlite_path(uri)
    if db is None or str(db) in ("", ":memory:"):
        return nullcontext()
    return file_lock(db.with_name(db.name + ".lock"))
