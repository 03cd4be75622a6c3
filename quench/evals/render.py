"""Renders evals/ into a folder lm-eval can index: absolute paths, adapted data, no `quench:`.

lm-eval resolves a relative `data_files` path against the working directory and an
`include:` against the YAML's folder, so every path in a rendered YAML is absolute. The
placeholders a YAML under evals/ may use:

- `${LM_EVAL_TASKS}`: lm-eval's built-in task folder (to `include:` a built-in task);
- `${ADAPTED}`: the file the YAML's adapter wrote (mirrored tasks only);
- `${DATASETS_CACHE}`: a `datasets` cache folder inside the run's output;
- `${QUENCH_MIRROR}`: the offline mirror; `${EVALS}`: the evals/ folder itself.

A mirrored task whose files are not in the mirror reads the excerpt quench bundles for it
(`quench: {bundled: <name>}`, decompressed into the render's data folder) when there is one;
else it is left out, so lm-eval falls back to its built-in task of the same name (downloaded
from the hub when online).
"""

from __future__ import annotations

import importlib
import re
import shutil
from pathlib import Path
from typing import Any

from quench.bundled.excerpts import Excerpt, decompress, find_excerpt
from quench.evals.tasks import EVALS_DIR, LocalTask, dump_task_yaml, load_task_yaml, local_tasks

PLACEHOLDER = re.compile(r"\$\{([A-Za-z_]+)\}")


def builtin_tasks_dir() -> Path:
    """lm-eval's task folder, found without importing lm-eval (that takes ~2 s)."""
    import importlib.util

    spec = importlib.util.find_spec("lm_eval")
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError("lm_eval is not installed")
    return Path(spec.origin).parent / "tasks"


def mirror_sources(task: LocalTask, mirror: Path | None) -> list[Path] | None:
    """The mirror files a mirrored task reads, or None when one of them is missing."""
    if mirror is None or not task.sources:
        return None
    paths = [mirror / s for s in task.sources]
    return paths if all(p.is_file() for p in paths) else None


def adapter(name: str, where: Path) -> Any:
    """The function `<module>.<function>` of quench.evals that `where` names."""
    module, _, function = name.rpartition(".")
    try:
        return getattr(importlib.import_module(f"quench.evals.{module}"), function)
    except (ImportError, AttributeError, ValueError):
        raise ValueError(f"{where}: quench.adapter {name!r} is not a function of a module in "
                         "quench/evals/ (expected <module>.<function>)") from None


def bundled_for(task: LocalTask, mirror: Path | None) -> Excerpt | None:
    """The bundled excerpt a mirrored task reads: when the mirror lacks its files."""
    if not task.adapter or not task.bundled or mirror_sources(task, mirror) is not None:
        return None
    return find_excerpt(task.bundled)


def task_data(task: LocalTask, mirror: Path | None, adapted: Path) -> dict[str, Any]:
    """Writes a mirrored task's documents to `adapted`: the mirror's files through the task's
    adapter, else the excerpt bundled for it; says which (or that lm-eval's own task is used)."""
    assert task.adapter is not None
    sources = mirror_sources(task, mirror)
    if sources is not None:
        records = adapter(task.adapter, task.path)(sources, adapted)
        return {"source": "mirror", "files": list(task.sources), "adapter": task.adapter,
                "records": records}
    excerpt = bundled_for(task, mirror)
    if excerpt is not None:
        decompress(excerpt, adapted)
        return {"source": "bundled", "bundled": excerpt.name, "file": str(excerpt.path),
                "records": excerpt.records, "license": excerpt.license,
                "upstream": excerpt.source}
    return {"source": "built-in task (no copy in the mirror, none bundled)"}


def render(dest: Path, mirror: Path | None, evals_dir: Path = EVALS_DIR,
           wanted: set[str] | None = None) -> dict[str, Any]:
    """Writes evals_dir's tasks into dest/tasks (data into dest/data); says where each came from.

    With `wanted`, mirrored tasks not named in it are left out (their data is not converted).
    """
    tasks_dir = dest / "tasks"
    tasks_dir.mkdir(parents=True, exist_ok=True)
    values: dict[str, Path | None] = {
        "LM_EVAL_TASKS": builtin_tasks_dir(), "DATASETS_CACHE": dest / ".datasets-cache",
        "QUENCH_MIRROR": mirror, "EVALS": evals_dir,
    }
    origins: dict[str, Any] = {}
    for task in local_tasks(evals_dir):
        rel = task.path.relative_to(evals_dir)
        name = task.names[0] if task.names else str(rel)
        local = dict(values, ADAPTED=None)
        if task.adapter and wanted is not None and not wanted & set(task.names):
            continue
        if task.adapter:
            local["ADAPTED"] = dest / "data" / rel.with_suffix(".jsonl")
            origin = task_data(task, mirror, local["ADAPTED"])
            origins[name] = origin
            if origin["source"] not in ("mirror", "bundled"):
                continue
        else:
            origins[name] = {"source": f"evals/{rel}"}
        data = load_task_yaml(task.path)
        data.pop("quench", None)
        (tasks_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        (tasks_dir / rel).write_text(dump_task_yaml(_substitute(data, local, task.path)))
    for extra in evals_dir.rglob("*.py") if evals_dir.is_dir() else ():
        target = tasks_dir / extra.relative_to(evals_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(extra, target)
    return origins


def _substitute(data: Any, values: dict[str, Path | None], where: Path) -> Any:
    """Replaces ${NAME} in every string of a YAML tree; an unknown or unset name is an error."""
    if isinstance(data, dict):
        return {k: _substitute(v, values, where) for k, v in data.items()}
    if isinstance(data, list):
        return [_substitute(v, values, where) for v in data]
    if not isinstance(data, str):
        return data

    def one(match: re.Match[str]) -> str:
        value = values.get(match.group(1))
        if value is None:
            known = ", ".join(k for k, v in values.items() if v is not None)
            raise ValueError(f"{where}: ${{{match.group(1)}}} is not available here "
                             f"(available: {known})")
        return str(value)

    out = PLACEHOLDER.sub(one, data)
    return type(data)(out) if type(data) is not str else out
