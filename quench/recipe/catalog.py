"""What `quench recipes` and `quench recipes copy NAME [DEST]` do: start from a bundled recipe.

Like torchtune's `tune ls` / `tune cp`: the list shows every bundled recipe, GPU example and
sweep with one line each; `copy` writes one to edit. A copy keeps its `extends:` line, which
still resolves to the bundled parent, so it runs from any folder.
"""

from __future__ import annotations

import difflib
import shutil
from pathlib import Path

from quench.errors import RecipeError
from quench.recipe.find import BundledFile, bundled_file, bundled_files

GROUP_TITLES = {"recipes": "recipes (run on a CPU)", "examples": "examples (GPU hosts)",
                "sweeps": "sweeps (quench sweep NAME)"}
LINE_WIDTH = 110


def render_list(files: list[BundledFile]) -> str:
    """One line per file, grouped, names aligned."""
    width = max(len(f.name) for f in files)
    room = max(LINE_WIDTH - width - 4, 20)
    blocks = []
    for group, title in GROUP_TITLES.items():
        members = [f"  {f.name:<{width}}  {_clip(f.description, room)}"
                   for f in files if f.group == group]
        if members:
            blocks.append("\n".join([f"{title}:", *members]))
    blocks.append("quench recipes copy NAME [DEST] writes one to edit; "
                  "quench run NAME runs it as it is.")
    return "\n\n".join(blocks)


def _clip(text: str, room: int) -> str:
    return text if len(text) <= room else text[: room - 1].rstrip(" ,;(") + "…"


def copy_bundled(name: str, dest: str | None, force: bool = False) -> Path:
    """Copies bundled recipe or sweep `name` to `dest`; an existing file needs `force`."""
    source = bundled_file(name) or bundled_file(name, "sweeps")
    if source is None:
        close = difflib.get_close_matches(name, [f.name for f in bundled_files()], n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise RecipeError(f"recipes copy: no bundled recipe or sweep named {name!r}{hint} "
                          "(`quench recipes` lists them)")
    target = Path(dest).expanduser() if dest else Path(source.name)
    if target.is_dir():
        target = target / source.name
    if target.exists() and not force:
        raise RecipeError(f"recipes copy: {target} exists; pass --force to overwrite it")
    if not target.parent.is_dir():
        raise RecipeError(f"recipes copy: {target.parent} is not a folder")
    partial = target.with_name(f".{target.name}.partial")
    shutil.copyfile(source, partial)
    partial.replace(target)
    return target
