"""Finds a recipe or sweep file by path or by bundled name, so recipes run from any folder.

A reference is tried as a path first (relative to the working directory, or to the file that
names it for `extends:` and a sweep's `base:`), then as a bundled recipe or sweep shipped in
the package: `smollm2-default`, `smollm2-default.yaml` and `recipes/smollm2-default.yaml` all
name `quench/bundled/recipes/smollm2-default.yaml`. `quench recipes` lists them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from quench.bundled import bundled_dir
from quench.errors import RecipeError

KINDS = ("recipes", "sweeps")
SUBFOLDERS = ("", "examples")  # where a bare name is looked for, in order


@dataclass(frozen=True)
class BundledFile:
    """One bundled recipe or sweep: its name, group and one-line description."""

    name: str
    group: str  # "recipes", "examples" or "sweeps"
    path: Path
    description: str


def find_file(ref: str | Path, beside: Path | None = None, kind: str = "recipes") -> Path:
    """The file `ref` names; a RecipeError that lists where it looked when there is none."""
    path = Path(ref).expanduser()
    local = beside / path if beside is not None and not path.is_absolute() else path
    if local.is_file():
        return local
    found = bundled_file(str(ref), kind)
    if found is not None:
        return found
    what = "recipe" if kind == "recipes" else "sweep"
    raise RecipeError(f"{what} file not found: {local} (nor a bundled {what} of that name; "
                      f"`quench recipes` lists them)")


def bundled_file(ref: str, kind: str = "recipes") -> Path | None:
    """The bundled file `ref` names (a name, name.yaml, or kind/name.yaml), else None."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")
    rel = ref.removeprefix(f"{kind}/")
    if Path(rel).is_absolute() or ".." in Path(rel).parts or not rel:
        return None
    if not rel.endswith((".yaml", ".yml")):
        rel += ".yaml"
    root = bundled_dir(kind)
    for sub in SUBFOLDERS:
        candidate = root / sub / rel
        if candidate.is_file():
            return candidate
    return None


def bundled_files() -> list[BundledFile]:
    """Every bundled recipe, example and sweep (base fragments are not runnable: left out)."""
    found = []
    for kind in KINDS:
        for sub in SUBFOLDERS:
            folder = bundled_dir(kind) / sub
            group = sub or kind
            if kind == "sweeps" and sub:
                continue
            found += [BundledFile(p.stem, group, p, _description(p))
                      for p in sorted(folder.glob("*.yaml"))]
    return found


def _description(path: Path) -> str:
    """The file's `description:`, else its leading comment, up to the first sentence's end."""
    text = path.read_text(encoding="utf-8")
    data = yaml.safe_load(text) or {}
    described = data.get("description") if isinstance(data, dict) else None
    if not isinstance(described, str) or not described.strip():
        lines = []
        for line in text.splitlines():
            if not line.startswith("#"):
                break
            lines.append(line.lstrip("# ").strip())
        described = " ".join(lines)
    return described.strip().split(". ")[0].rstrip(".")
