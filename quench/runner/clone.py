"""Published files that share no bytes on disk with the cache: a reflink, else a copy.

A hard link would make the published model and the cache entry one inode, so damage to either
(a truncating editor, `dd` into the file) would reach the other. A reflink (FICLONE, on btrfs,
XFS and other copy-on-write file systems) copies nothing until one side is written, then only
the blocks written; elsewhere the file is copied in the kernel (shutil uses sendfile).
"""

from __future__ import annotations

import fcntl
import os
import shutil
from pathlib import Path

from quench.runner.verify import edges_digest

FICLONE = 0x40049409  # _IOW(0x94, 9, int), linux/fs.h


def reflink(source: Path, target: Path) -> bool:
    """Clones source into a new file target (True), or False where the file system cannot."""
    with source.open("rb") as src, target.open("wb") as dst:
        try:
            fcntl.ioctl(dst.fileno(), FICLONE, src.fileno())
        except OSError:
            return False
    return True


def clone_file(source: Path, target: Path) -> None:
    """A copy of source (reflinked where possible) with its mode and times, never a hard link."""
    if not reflink(source, target):
        shutil.copyfile(source, target)
    shutil.copystat(source, target)


def same_copy(source: Path, copy: Path) -> bool:
    """True when `copy` still looks like the copy of `source` made earlier: same size and
    mtime_ns (clone_file keeps them) and the same first and last MiB."""
    try:
        a, b = source.stat(), copy.stat()
        if (a.st_size, a.st_mtime_ns) != (b.st_size, b.st_mtime_ns) or a.st_ino == b.st_ino:
            return False
        return edges_digest(source, a.st_size) == edges_digest(copy, b.st_size)
    except OSError:
        return False


def publish_file(source: Path, target: Path, previous: Path) -> None:
    """Puts a copy of source at target: the previous published copy (hard-linked, so no bytes
    move) when it is still intact, else a fresh clone of the source."""
    if same_copy(source, previous):
        os.link(previous, target)
    else:
        clone_file(source, target)
