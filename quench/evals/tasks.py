"""quench's own lm-eval task folders: their YAML, read and written with `!function` kept."""


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
