"""WikiText-2 raw (wiki.test.raw) -> `wikitext` rows: one {"page"} per article.

EleutherAI/wikitext_document_level holds one row per article, an article starting at a
top-level heading line ` = Title = `. The mirror's copy has CRLF line ends and no blank
lines, so each page is its article's lines joined by "\\n" (close to, not byte-identical
with, the hub rows: those keep the blank lines).
"""

from __future__ import annotations

import re
from pathlib import Path

from quench.evals.io import write_jsonl

TITLE = re.compile(r"^ = [^=].* = $")


def convert(sources: list[Path], dest: Path) -> int:
    """Splits the text into articles at top-level headings."""
    lines = sources[0].read_text(encoding="utf-8").replace("\r\n", "\n").split("\n")
    pages: list[list[str]] = []
    for line in lines:
        if not line.strip():
            continue
        if TITLE.match(line) or not pages:
            pages.append([])
        pages[-1].append(line)
    if not pages:
        raise ValueError(f"{sources[0]}: no text")
    return write_jsonl(dest, [{"page": "\n".join(p) + "\n"} for p in pages])
