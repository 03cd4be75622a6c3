"""The license knowledge base (kb.yaml): what each license allows and requires, with citations."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field

from quench.strict import StrictModel

KB_FILE = Path(__file__).with_name("kb.yaml")
TEXTS = Path(__file__).with_name("texts")


class Obligation(StrictModel):
    text: str
    cite: str
    when: Literal["use", "distribution"]


class NamePrefix(StrictModel):
    prefix: str
    cite: str


class UserLimit(StrictModel):
    monthly_active_users: int
    cite: str


class License(StrictModel):
    """One kb.yaml entry; see the field list at the top of kb.yaml."""

    id: str
    name: str
    spdx: str | None = None
    url: str | None = None
    on_hub: bool = True  # a license id Hugging Face model cards accept
    aliases: list[str] = Field(default_factory=list)
    markers: list[list[str]] = Field(default_factory=list)
    supersedes: list[str] = Field(default_factory=list)  # base licenses an addendum contains
    link_prefixes: list[str] = Field(default_factory=list)  # other license_link URLs naming it
    use: Literal["any", "non-commercial", "research-only"]
    use_cite: str
    redistribution: bool
    share_derivatives: bool
    redistribution_cite: str
    share_alike: bool = False
    share_alike_cite: str | None = None
    no_added_restrictions: bool = False
    adds_restrictions: bool = False
    name_prefix: NamePrefix | None = None
    user_limit: UserLimit | None = None
    notices: list[str] = Field(default_factory=list)
    obligations: list[Obligation] = Field(default_factory=list)

    @property
    def commercial_ok(self) -> bool:
        return self.use == "any"

    def full_text(self) -> str | None:
        """The license's full text when the package ships it (texts/<id>.txt)."""
        path = TEXTS / f"{self.id}.txt"
        return path.read_text() if path.is_file() else None


@cache
def knowledge_base() -> dict[str, License]:
    """Every license in kb.yaml, by id, in file order (the order text markers are tried in)."""
    raw = yaml.safe_load(KB_FILE.read_text())
    return {key: License.model_validate({"id": key, **entry}) for key, entry in raw.items()}


def _squash(value: str) -> str:
    return re.sub(r"[\s_]+", " ", value.strip().lower())


def normalize(value: str | None) -> str | None:
    """A card's license string (id, SPDX id, alias or name) -> a kb id, or None if unknown."""
    if not value:
        return None
    wanted = _squash(value)
    for lic in knowledge_base().values():
        names = [lic.id, lic.name, *(lic.aliases), *([lic.spdx] if lic.spdx else [])]
        if wanted in {_squash(n) for n in names}:
            return lic.id
    return None


def identify_text(text: str) -> str | None:
    """The kb id whose markers all appear in a license text (case-sensitive), or None."""
    text = re.sub(r"\s+", " ", text)  # phrases may be broken across lines
    for lic in knowledge_base().values():
        if any(all(m in text for m in group) for group in lic.markers):
            return lic.id
    return None


def _bare(url: str) -> str:
    return url.lower().rstrip("/").removeprefix("https://").removeprefix("http://") \
        .removeprefix("www.")


def by_link(link: str | None) -> str | None:
    """A kb id whose url (or one of its link_prefixes) a card's license_link starts with."""
    if not link:
        return None
    wanted = _bare(link)
    for lic in knowledge_base().values():
        for url in (_bare(u) for u in [lic.url or "", *lic.link_prefixes]):
            if url and wanted.startswith(url):
                return lic.id
    return None
