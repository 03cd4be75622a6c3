"""Pre-flight checks of `evaluation.lm_eval.tasks`: known names, data reachable offline."""

from __future__ import annotations

import difflib
import functools
from importlib import metadata
from pathlib import Path

from quench.errors import OfflineMiss, QuenchError
from quench.evals.render import adapter, builtin_tasks_dir, bundled_for, mirror_sources
from quench.evals.tasks import LocalTask, local_tasks
from quench.sources import MIRROR_ENV, is_offline, mirror_dir
from quench.strict import shorten
from quench.user_cache import read_cached, user_cache_dir, write_cached

KEY = "evaluation.lm_eval.tasks"


def index_file() -> Path:
    """Where the names of lm-eval's built-in tasks are kept, per lm-eval version and install."""
    return user_cache_dir() / f"lm-eval-{metadata.version('lm_eval')}-{_install_tag()}-tasks.json"


def _install_tag() -> str:
    """A short stable tag of lm-eval's task folder (two installs of one version differ)."""
    import hashlib

    return hashlib.sha256(str(builtin_tasks_dir()).encode()).hexdigest()[:12]


@functools.cache
def builtin_task_names() -> frozenset[str]:
    """Every task, group and tag lm-eval ships. Indexing them with lm-eval's TaskManager takes
    ~13 s on a small CPU, so the names are kept in a cache file after the first time: later
    checks (an unknown name included) take milliseconds."""
    path = index_file()
    cached = read_cached(path)
    if isinstance(cached, list):
        return frozenset(cached)
    from lm_eval.tasks import TaskManager

    names = frozenset(TaskManager().all_tasks)
    write_cached(path, sorted(names))
    return names


def check_tasks(tasks: list[str]) -> None:
    """Unknown names (with close matches), broken adapters, and downloads needed offline."""
    local: dict[str, LocalTask] = {n: t for t in local_tasks() for n in t.names}
    unknown = [t for t in tasks if t not in local]
    known = set(local) | (builtin_task_names() if unknown else set())
    problems = [_unknown(t, known) for t in unknown if t not in known]
    if problems:
        raise QuenchError(f"{KEY}: unknown task {', '.join(problems)}; a task is one of "
                          "lm-eval's built-in ones (`lm-eval ls tasks`) or a YAML under evals/")
    mirror = mirror_dir()
    downloads = []
    for name in tasks:
        task = local.get(name)
        if task is None or (task.adapter and mirror_sources(task, mirror) is None
                            and bundled_for(task, mirror) is None):
            downloads.append(name)
        elif task.adapter:
            try:
                adapter(task.adapter, task.path)
            except ValueError as exc:
                raise QuenchError(f"{KEY}: {name}: {exc}") from None
    if downloads and is_offline():
        raise OfflineMiss(
            f"{KEY}: {', '.join(downloads)} would be downloaded from the hub (no YAML under "
            f"evals/ with its data in the mirror ${MIRROR_ENV} or bundled with quench), and "
            "HF_HUB_OFFLINE is set"
        )


def _unknown(name: str, known: set[str]) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=3, cutoff=0.6)
    return shorten(name) + (f" (did you mean {' or '.join(close)}?)" if close else "")
