"""Naming rules ("the model name must begin with Llama"), compared the way people write names:
`-`, `_` and spaces are one separator; a difference of case or of separators only is a near
miss (worth a warning, not a silent pass); anything else misses the rule."""

from __future__ import annotations

import re
from typing import Literal

Match = Literal["match", "near", "miss"]
SEPARATORS = re.compile(r"[-_\s]+")


def _spaced(text: str) -> str:
    return SEPARATORS.sub(" ", text.strip())


def _squashed(text: str) -> str:
    return SEPARATORS.sub("", text).casefold()


def name_matches(name: str, prefix: str) -> Match:
    """`Llama-3-8B` matches "Llama 3"; `llama3.1-8b` is near "Llama"; `Acme-8B` misses it."""
    spaced_name, spaced_prefix = _spaced(name), _spaced(prefix)
    if spaced_name.startswith(spaced_prefix):
        rest = spaced_name[len(spaced_prefix):]
        if not rest or not (spaced_prefix[-1:].isdigit() and rest[:1].isdigit()):
            return "match"  # "Llama 3" is not matched by "Llama 30B"
    if _squashed(name).startswith(_squashed(prefix)):
        return "near"
    return "miss"
