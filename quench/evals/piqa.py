"""PIQA's original release (valid.jsonl + valid-labels.lst) -> the rows lm-eval's `piqa` reads."""

from __future__ import annotations

from pathlib import Path

from quench.evals.io import read_jsonl, require, write_jsonl


def convert(sources: list[Path], dest: Path) -> int:
    """Joins each goal/sol1/sol2 record with its 0/1 label line (the files are line-aligned)."""
    questions, labels_file = sources
    rows = read_jsonl(questions)
    labels = [line.strip() for line in labels_file.read_text().splitlines() if line.strip()]
    if len(labels) != len(rows):
        raise ValueError(f"{labels_file}: {len(labels)} labels for {len(rows)} records in "
                         f"{questions}; the two files must be line-aligned")
    for i, (row, label) in enumerate(zip(rows, labels, strict=True)):
        require(questions, row, i, "goal", "sol1", "sol2")
        if label not in ("0", "1"):
            raise ValueError(f"{labels_file}: line {i + 1}: label {label!r} is not 0 or 1")
        row["label"] = int(label)
    return write_jsonl(dest, rows)
