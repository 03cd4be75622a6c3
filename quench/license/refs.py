"""`base_model` references as model cards write them, made hub ids before any look-up: hub URLs
(with `/tree/<rev>` and other suffixes), stray whitespace, lists and comma-separated strings.
Without this a parent given as a URL is never found and `license.declared` never applies."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

HUB_URL = re.compile(r"^(?:https?://)?(?:www\.)?(?:huggingface\.co|hf\.co)/(?P<path>.+)$", re.I)
REVISION_PARTS = ("tree", "blob", "resolve", "commit")


@dataclass(frozen=True)
class ModelRef:
    """A hub id (or a local path, as written) and the revision a URL named."""

    repo_id: str
    revision: str | None = None

    def __str__(self) -> str:  # hub ids hold no "@": the revision stays recoverable
        return f"{self.repo_id}@{self.revision}" if self.revision else self.repo_id


def parse_ref(raw: str) -> ModelRef:
    """`https://huggingface.co/org/name/tree/v1` -> org/name at v1; anything else as given."""
    text = raw.strip()
    url = HUB_URL.match(text)
    if url is None:
        repo, sep, rev = text.partition("@")
        return ModelRef(repo, rev or None) if sep and "/" in repo and "/" not in rev else \
            ModelRef(text)
    parts = [p for p in re.split(r"[?#]", url.group("path"))[0].split("/") if p]
    if parts and parts[0] == "models":  # huggingface.co/models/org/name
        parts = parts[1:]
    revision = parts[3] if len(parts) > 3 and parts[2] in REVISION_PARTS else None
    return ModelRef("/".join(parts[:2]), revision)


def parse_refs(value: Any) -> list[ModelRef]:
    """Every reference a `base_model` value holds, normalized, in order, without repeats."""
    items = value if isinstance(value, list) else [] if value is None else [value]
    found: list[ModelRef] = []
    for item in items:
        for piece in re.split(r"[,\n]", str(item)):
            if piece.strip() and (ref := parse_ref(piece)) not in found:
                found.append(ref)
    return found


def normalized_keys(declared: dict[str, str]) -> dict[str, str]:
    """`license.declared` keyed by normalized references (a URL key works like its hub id)."""
    return {str(parse_ref(key)): value for key, value in declared.items()}


def declared_for(declared: dict[str, str], ref: str) -> str | None:
    """The declaration for a reference: exact (with its revision), else for its hub id."""
    parsed = parse_ref(ref)
    return declared.get(str(parsed)) or declared.get(parsed.repo_id)
