"""quench's lm-eval task definitions (bundled `evals/`) and the adapters they name.

A YAML under `evals/` is an lm-eval task config. Those that mirror a built-in task carry a
`quench:` block naming an adapter (`<module>.<function>` in this package) and the mirror
files it reads (relative to $QUENCH_MIRROR), and may name the excerpt quench bundles for it
(`bundled:`, used when the mirror lacks the files); quench/evals/render.py turns them into plain
lm-eval YAMLs with absolute paths at run time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from quench.bundled import bundled_dir

EVALS_DIR = bundled_dir("evals")


class FunctionRef(str):
    """An lm-eval `!function module.name` value, kept as written so it can be dumped again."""


class _Loader(yaml.SafeLoader):
    pass


class _Dumper(yaml.SafeDumper):
    pass


_Loader.add_constructor("!function", lambda ld, node: FunctionRef(ld.construct_scalar(node)))
_Dumper.add_representer(FunctionRef, lambda dumper, v: dumper.represent_scalar("!function", v))


def load_task_yaml(path: Path) -> dict[str, Any]:
    """An lm-eval task YAML as data, `!function` tags kept; not a mapping is a ValueError."""
    data = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)  # noqa: S506
    if not isinstance(data, dict):
        raise ValueError(f"{path}: an lm-eval task YAML must be a mapping")
    return data


def dump_task_yaml(data: dict[str, Any]) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True)


@dataclass(frozen=True)
class LocalTask:
    """One YAML under evals/: the names it defines and, if it mirrors a built-in, how."""

    path: Path
    names: tuple[str, ...]
    adapter: str | None = None
    sources: tuple[str, ...] = field(default_factory=tuple)
    bundled: str | None = None  # the excerpt quench ships for it (bundled/data/index.yaml)


def local_tasks(evals_dir: Path = EVALS_DIR) -> list[LocalTask]:
    """Every task YAML under evals_dir (none when the folder is absent)."""
    if not evals_dir.is_dir():
        return []
    found = []
    for path in sorted(evals_dir.rglob("*.yaml")):
        data = load_task_yaml(path)
        names = [data[k] for k in ("task", "group") if isinstance(data.get(k), str)]
        tags = data.get("tag") or []
        names += [tags] if isinstance(tags, str) else list(tags)
        quench = data.get("quench") or {}
        found.append(LocalTask(path, tuple(names), quench.get("adapter"),
                               tuple(quench.get("sources", ())), quench.get("bundled")))
    return found


def local_task_names(evals_dir: Path = EVALS_DIR) -> set[str]:
    return {name for task in local_tasks(evals_dir) for name in task.names}
