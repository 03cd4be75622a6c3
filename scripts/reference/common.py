"""Markdown helpers the reference pages share: escaping, tables, anchors, docstrings, page frame."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
NOTE = "<!-- Generated from {source} by `scripts/gen_reference.py`; do not edit by hand. -->"


CODE_SPAN = re.compile(r"(`+)(.+?)\1")
URL = re.compile(r"https?://[^\s<>\"]+")


def md(text: str | None) -> str:
    """Plain text as Markdown: whitespace collapsed; outside code spans `<`, `*` and `|` escaped
    (a `<model>` would be an HTML tag, `*mlp*` emphasis), bare URLs made links."""
    text = " ".join((text or "").split())
    out, pos = [], 0
    for match in CODE_SPAN.finditer(text):
        out.append(_escape(text[pos:match.start()]))
        out.append(match.group(0))
        pos = match.end()
    out.append(_escape(text[pos:]))
    return "".join(out)


def _escape(text: str) -> str:
    parts, pos = [], 0
    for match in URL.finditer(text):
        url = match.group(0).rstrip(".,;)")
        parts.append(_escape_plain(text[pos:match.start()]))
        parts.append(f"<{url}>")
        pos = match.start() + len(url)
    parts.append(_escape_plain(text[pos:]))
    return "".join(parts)


def _escape_plain(text: str) -> str:
    text = text.replace("\\", "\\\\").replace("<", "&lt;").replace("*", "\\*")
    return text.replace("|", "\\|")


def table(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub table; cells are Markdown already."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(c.replace("\n", " ") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def anchor(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def code(value: Any) -> str:
    return f"`{value}`"


def first_paragraph(doc: str | None) -> str:
    """The first paragraph of a docstring, on one line."""
    if not doc:
        return ""
    return " ".join(inspect.cleandoc(doc).split("\n\n")[0].split())


def module_doc(obj: Any) -> str:
    """The first paragraph of the docstring of the module defining `obj`."""
    return first_paragraph(inspect.getmodule(obj).__doc__)


def own_doc(model: type) -> str:
    """The model class's own docstring (not an inherited one), first paragraph."""
    return first_paragraph(model.__dict__.get("__doc__"))


def page(title: str, source: str, body: list[str]) -> str:
    parts = [NOTE.format(source=source), "", f"# {title}", ""]
    for block in body:
        if block:
            parts += [block.rstrip("\n"), ""]
    return "\n".join(parts).rstrip("\n") + "\n"



def bundled_block(groups: tuple[str, ...], intro: str) -> list[str]:
    from quench.recipe.find import bundled_files

    body = [intro] if intro else []
    titles = {"recipes": "Recipes (run on a CPU)", "examples": "Examples (GPU hosts)",
              "sweeps": "Sweeps"}
    for group in groups:
        files = [f for f in bundled_files() if f.group == group]
        if not files:
            continue
        if len(groups) > 1:
            body.append(f"### {titles[group]} {{#bundled-{group}}}")
        body.append(table(["name", "description"],
                          [[code(f.name), md(f.description)] for f in files]))
    return body
