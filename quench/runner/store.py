"""The content-addressed stage store: cache keys and atomic stage directories.

Layout: `<root>/<stage>/<key>/manifest.json`. A stage writes into a temporary sibling folder
and renames it into place only when complete, so a killed run never leaves a folder that a
later run would take for a finished stage. The manifest records every file the folder holds
(quench/runner/verify.py), so a damaged entry is found and re-run rather than reused.
Locks live in `<root>/.locks/`: two runs of one recipe take turns as a whole
(`run-<name digest>`); processes sharing a store take turns per entry (`<stage>-<key>`: runs
of different recipes share the baseline entries); each run holds `runs` shared, which
`quench cache gc` needs exclusively.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

from quench import __version__
from quench.contract.locks import Lease, file_lock
from quench.contract.manifest import MANIFEST, Manifest
from quench.contract.processes import pid_alive
from quench.runner.verify import FILES, entry_damage, record_files

TMP_PREFIX = ".tmp-"
LOCKS, RUNS_LOCK = ".locks", "runs"
KEY_LENGTH = 24


def library_versions(names: tuple[str, ...]) -> dict[str, str]:
    """Installed versions of the named distributions ("absent" when not installed)."""
    versions = {"quench": __version__}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def code_digest(files: list[Path]) -> str:
    """A digest of source files, so editing a stage's code invalidates its cached outputs."""
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def cache_key(parts: dict[str, Any]) -> str:
    """A stable hash of JSON-serialisable parts (config, input manifests, versions)."""
    blob = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:KEY_LENGTH]



class Store:
    """Finds finished stage directories by key and writes new ones atomically."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._held: list[Lease] = []

    def hold(self, run: str, on_wait: Callable[[], None] | None = None) -> None:
        """Waits until no other process is running `run` on this store, then holds that run's
        lock and the store's run lease for as long as this Store object lives."""
        if not self._held:
            self._held = [Lease(self._run_lock(run), shared=False, on_wait=on_wait),
                          self.lease()]

    def wait_turn(self, run: str, on_wait: Callable[[], None] | None = None) -> None:
        """Waits until no other process is running `run`, without holding it: the CLI calls it
        before it truncates the run's log, which the running process is still writing."""
        Lease(self._run_lock(run), shared=False, on_wait=on_wait).close()

    def _run_lock(self, run: str) -> Path:
        return self.lock_path(f"run-{hashlib.sha256(run.encode()).hexdigest()[:16]}")

    def final_dir(self, stage: str, key: str) -> Path:
        return self.root / stage / key

    def load(self, stage: str, key: str) -> Manifest | None:
        """The finished output for (stage, key), or None."""
        found = Manifest.read(self.final_dir(stage, key))
        return found if found is not None and found.data.get("key") == key else None

    def lookup(self, stage: str, key: str) -> tuple[Manifest | None, str | None]:
        """A reusable entry for (stage, key), else None and why a present one is not reusable."""
        found = self.load(stage, key)
        damage = None if found is None else entry_damage(found)
        return (found, None) if damage is None else (None, damage)

    def lock_path(self, name: str) -> Path:
        return self.root / LOCKS / name

    def entry_lock(self, stage: str, key: str, on_wait: Callable[[], None] | None = None,
                   blocking: bool = True) -> AbstractContextManager[None]:
        """The lock a process holds while it looks up and (re)writes the entry (stage, key)."""
        return file_lock(self.lock_path(f"{stage}-{key}"), on_wait=on_wait, blocking=blocking)

    def lease(self) -> Lease:
        """A shared lock, held for a run, that stops `quench cache gc` deleting under it."""
        return Lease(self.lock_path(RUNS_LOCK))

    def remove_stale_temporaries(self) -> list[Path]:
        """Deletes temporary folders left by runs that died (their process is gone)."""
        removed = []
        for tmp in self.root.glob(f"*/{TMP_PREFIX}*"):
            pid = tmp.name.rsplit("-", 1)[-1]
            if pid.isdigit() and not pid_alive(int(pid)):
                shutil.rmtree(tmp, ignore_errors=True)
                removed.append(tmp)
        return removed

    @contextmanager
    def writing(self, stage: str, key: str) -> Iterator[Path]:
        """Yields a temporary folder; on success it becomes the stage's final folder."""
        final = self.final_dir(stage, key)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.parent / f"{TMP_PREFIX}{key}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            yield tmp
            if not (tmp / MANIFEST).is_file():
                raise RuntimeError(f"stage {stage} wrote no {MANIFEST}")
            _replace_dir(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def write_manifest(self, directory: Path, data: dict[str, Any]) -> None:
        """Writes manifest.json last (fsynced), the marker that a stage folder is complete, with
        the size and digests of every file the folder holds."""
        path = directory / MANIFEST
        record = {**data, FILES: record_files(directory)}
        with path.open("w") as fh:
            json.dump(record, fh, indent=2, sort_keys=True, default=str)
            fh.flush()
            os.fsync(fh.fileno())


def _replace_dir(tmp: Path, final: Path) -> None:
    """Moves tmp to final; an existing final folder (a --force re-run) is swapped out first."""
    if final.exists():
        old = final.parent / f"{TMP_PREFIX}old-{final.name}-{os.getpid()}"
        os.rename(final, old)
        os.rename(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, final)
