"""What a model's name and tags say about its family: `TheBloke/Llama-2-7B-GGUF` is a Llama 2
repackage whatever its card's `license:` label says. Names only ever cross-check a license
the card declares (they never decide one on their own), and only families whose license
is unambiguous are listed: a Mistral or Qwen name says nothing about which of their licenses."""

from __future__ import annotations

import re
from collections.abc import Iterable

# most specific first: "Llama-3.1" must not read as Llama 3
FAMILIES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), license_id) for pattern, license_id in (
        (r"llama[-_ ]?2(?![\d.])", "llama2"),
        (r"llama[-_ ]?3[._-]1(?!\d)", "llama3.1"),
        (r"llama[-_ ]?3[._-]2(?!\d)", "llama3.2"),
        (r"llama[-_ ]?3[._-]3(?!\d)", "llama3.3"),
        (r"llama[-_ ]?3(?![\d.])", "llama3"),
        (r"llama[-_ ]?4(?![\d.])", "llama4"),
        (r"gemma", "gemma"),
        (r"c4ai-command", "c4ai-cc-by-nc-4.0-aup"),  # Cohere's Command R/R+/A releases
    ))
REPACKAGING = re.compile(
    r"(?<![a-z0-9])(gguf|ggml|gptq|awq|exl2|bnb|mlx|4bit|8bit|int4|int8|fp8|quantized|"
    r"merge|merged|imatrix)(?![a-z0-9])", re.IGNORECASE)


def family_of(texts: Iterable[str]) -> tuple[str, str] | None:
    """(license id, the text that names the family) for the first text naming one."""
    for text in texts:
        for pattern, license_id in FAMILIES:
            if pattern.search(text):
                return license_id, text
    return None


def repackaging_markers(texts: Iterable[str]) -> list[str]:
    """gguf, gptq, awq, merge, ... as found in the names and tags (lower case, in order)."""
    found: list[str] = []
    for text in texts:
        for match in REPACKAGING.finditer(text):
            if match.group(1).lower() not in found:
                found.append(match.group(1).lower())
    return found
