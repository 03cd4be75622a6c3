"""Publishing to <output>/<run>/ what stages declare (`Stage.publishes`): the report files and
the model folder; the runner names no node here, so a new stage publishes by declaring."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from quench.contract.manifest import Manifest
from quench.contract.processes import pid_alive
from quench.contract.stage import Publishes
from quench.owned_files import write_atomic
from quench.runner.clone import publish_file

TOKENIZER_FILES = ("tokenizer", "special_tokens_map", "generation_config", "chat_template")

Declared = tuple[Publishes | None, Manifest]  # a node's declaration and its manifest


def publish(run_dir: Path, nodes: Sequence[Declared]) -> None:
    """Publishes the declared files and the model folder of `nodes` (graph order)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    for declared, manifest in nodes:
        for name, output in (declared.files if declared else {}).items():
            if output in manifest.outputs:  # a skipped stage wrote nothing to publish
                write_atomic(run_dir / name, manifest.path(output).read_text())
    files = artifact_files(nodes)
    if files is not None:
        _publish_model(run_dir, files)


def artifact_files(nodes: Sequence[Declared]) -> dict[str, Path] | None:
    """The published model folder's files by name, each a path in a cache entry (None: no
    stage declares a model folder)."""
    folders = [(d.priority, i, m.path(d.model_dir)) for i, (d, m) in enumerate(nodes)
               if d is not None and d.model_dir is not None and not m.skipped
               and d.model_dir in m.outputs]
    if not folders:
        return None
    folders.sort()
    files = _files_of(folders[-1][2])
    if len(folders) > 1:  # an export holds weights and config: keep the tokenizer it replaces
        below = _files_of(folders[-2][2])
        files = {**{n: p for n, p in below.items() if n.startswith(TOKENIZER_FILES)}, **files}
    for _, manifest in nodes:
        extra = manifest.outputs.get("artifact_files", {})
        files.update({name: manifest.dir / rel for name, rel in extra.items()})
    return files


def _files_of(folder: Path) -> dict[str, Path]:
    return {p.name: p for p in sorted(folder.iterdir()) if p.is_file()}


def _publish_model(run_dir: Path, files: dict[str, Path]) -> None:
    """<output>/<run>/model: the checkpoint plus every stage's `artifact_files` (LICENSE, NOTICE,
    README.md model card), copied from the cache (reflinked where the file system can: never a
    hard link, so damage to one side cannot reach the other), replaced atomically. Runs of one
    recipe never publish at once: each holds the recipe's run lock (Store.hold)."""
    final = run_dir / "model"
    _remove_dead_leftovers(run_dir)
    tmp, old = (run_dir / f".model.{kind}-{os.getpid()}" for kind in ("tmp", "old"))
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name, source in files.items():
        publish_file(source, tmp / name, final / name)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def _remove_dead_leftovers(run_dir: Path) -> None:
    """Deletes model folders half-published by a process that died (kill -9 mid-publish)."""
    for left in run_dir.glob(".model.*-*"):
        pid = left.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(left, ignore_errors=True)

