"""LAMBADA (OpenAI's jsonl) -> lm-eval's `lambada_openai` rows: the same {"text"} records."""

from __future__ import annotations

from pathlib import Path

from quench.evals.io import read_jsonl, require, write_jsonl


def convert(sources: list[Path], dest: Path) -> int:
    """Checks every record has a text whose last word is the target, and writes them as is."""
    rows = read_jsonl(sources[0])
    for i, row in enumerate(rows):
        require(sources[0], row, i, "text")
        if " " not in row["text"].strip():
            raise ValueError(f"{sources[0]}: record {i}: text has no context before its last word")
    return write_jsonl(dest, [{"text": r["text"]} for r in rows])
