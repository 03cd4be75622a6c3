"""The per-user cache folder for facts that are slow to compute and never change for a file."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from quench.owned_files import write_atomic


def user_cache_dir() -> Path:
    """$XDG_CACHE_HOME/quench, else ~/.cache/quench."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "quench"


def read_cached(path: Path) -> Any | None:
    """The JSON in `path`, or None when it is absent or unreadable (then it is recomputed)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def write_cached(path: Path, data: Any) -> None:
    """Writes JSON atomically; a read-only home only costs speed, so errors are ignored."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(data))
    except OSError:
        pass
