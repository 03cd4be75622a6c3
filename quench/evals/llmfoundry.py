"""llm-foundry's ICL files -> the original fields each built-in lm-eval task's templates read.

ARC, OpenBookQA and BoolQ come as {query, choices, gold}; WinoGrande as {context_options,
continuation, gold}. Each function rebuilds the fields of the Hugging Face dataset the
built-in task was written for, so the task's own prompt templates apply unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from quench.evals.io import read_jsonl, require, write_jsonl

LETTERS = "ABCDEFGHIJ"


def _rows(source: Path, *fields: str) -> list[dict[str, Any]]:
    rows = read_jsonl(source)
    for i, row in enumerate(rows):
        require(source, row, i, *fields)
        if "gold" in fields and not 0 <= row["gold"] < len(row.get("choices", [0, 0])):
            raise ValueError(f"{source}: record {i}: gold {row['gold']} is out of range")
    return rows


def _choices(row: dict[str, Any]) -> dict[str, list[str]]:
    return {"text": row["choices"], "label": list(LETTERS[: len(row["choices"])])}


def arc(sources: list[Path], dest: Path) -> int:
    """allenai/ai2_arc rows: question, choices{text,label}, answerKey ("Question: " dropped)."""
    rows = _rows(sources[0], "query", "choices", "gold")
    out = [{"question": r["query"].removeprefix("Question: "), "choices": _choices(r),
            "answerKey": LETTERS[r["gold"]]} for r in rows]
    return write_jsonl(dest, out)


def openbookqa(sources: list[Path], dest: Path) -> int:
    """allenai/openbookqa rows: question_stem, choices{text,label}, answerKey."""
    rows = _rows(sources[0], "query", "choices", "gold")
    out = [{"question_stem": r["query"], "choices": _choices(r), "answerKey": LETTERS[r["gold"]]}
           for r in rows]
    return write_jsonl(dest, out)


def boolq(sources: list[Path], dest: Path) -> int:
    """super_glue/boolq rows: passage, question (no "?", the template adds it), label 0=no."""
    source = sources[0]
    out = []
    for i, r in enumerate(_rows(source, "query", "choices", "gold")):
        passage, sep, question = r["query"].rpartition("\nQuestion: ")
        if not sep or r["choices"] != ["no", "yes"]:
            raise ValueError(f"{source}: record {i} is not a BoolQ 'Passage: ...\\nQuestion: "
                             "...' query with choices [no, yes]")
        out.append({"passage": passage.removeprefix("Passage: "),
                    "question": question.removesuffix("?"), "label": r["gold"]})
    return write_jsonl(dest, out)


def winogrande(sources: list[Path], dest: Path) -> int:
    """allenai/winogrande rows: sentence with "_", option1, option2, answer ("1"/"2").

    The blank sits where the two filled-in prefixes start to differ (at a word start), so
    the task's partial scoring sees exactly the prefixes and continuation of the source file.
    """
    source = sources[0]
    out = []
    for i, r in enumerate(_rows(source, "context_options", "continuation", "gold")):
        first, second = r["context_options"]
        cut = _word_start(first, second)
        if "_" in first[:cut]:
            raise ValueError(f"{source}: record {i}: the shared prefix contains '_'")
        out.append({"sentence": f"{first[:cut]}_ {r['continuation']}",
                    "option1": first[cut:], "option2": second[cut:],
                    "answer": str(r["gold"] + 1)})
    return write_jsonl(dest, out)


def _word_start(a: str, b: str) -> int:
    """Length of the common prefix of a and b, moved back to the start of a word."""
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    while n > 0 and not a[n - 1].isspace():
        n -= 1
    return n
