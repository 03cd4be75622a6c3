"""JSON-lines reading and writing shared by the adapters, with errors that name the file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The records of a .jsonl file; a bad line is a ValueError naming file and line."""
    rows = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except ValueError as exc:
            raise ValueError(f"{path}:{lineno}: not JSON ({exc})") from None
    return rows


def require(path: Path, row: dict[str, Any], index: int, *fields: str) -> None:
    """Raises a ValueError naming the record when one of `fields` is missing."""
    missing = [f for f in fields if f not in row]
    if missing:
        raise ValueError(f"{path}: record {index} has no {', '.join(missing)} "
                         f"(has {sorted(row)})")


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> int:
    """Writes rows as JSON lines; returns how many."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return len(rows)
