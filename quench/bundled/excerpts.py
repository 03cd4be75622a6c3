"""The data excerpts quench ships (bundled/data/), so default runs work with no mirror and no hub.

`bundled/data/index.yaml`, written by scripts/build_bundled_data.py, lists each excerpt: its
gzip file, record count, sha256, license and upstream source. Readers go through this module.
"""

from __future__ import annotations

import gzip
import shutil
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

from quench.bundled import bundled_dir

INDEX_NAME = "index.yaml"


@dataclass(frozen=True)
class Excerpt:
    """One bundled excerpt as index.yaml describes it."""

    name: str
    path: Path  # the .gz file inside the package
    records: int
    sha256: str
    license: str
    source: str  # the upstream dataset and split it was taken from
    format: str  # "lines" (one text record a line) or "jsonl" (one lm-eval document a line)

    def describe(self) -> dict[str, str | int]:
        """What a report or lineage says about it."""
        return {"bundled": self.name, "records": self.records, "license": self.license,
                "upstream": self.source, "sha256": self.sha256}


def data_dir() -> Path:
    return bundled_dir("data")


@cache
def excerpts(folder: Path | None = None) -> dict[str, Excerpt]:
    """Every excerpt in the index (none when the index is absent, e.g. a stripped install)."""
    folder = folder or data_dir()
    index = folder / INDEX_NAME
    if not index.is_file():
        return {}
    data = yaml.safe_load(index.read_text(encoding="utf-8")) or {}
    return {name: Excerpt(name, folder / e["file"], int(e["records"]), e["sha256"],
                          e["license"], e["source"], e["format"])
            for name, e in (data.get("datasets") or {}).items()}


def find_excerpt(name: str) -> Excerpt | None:
    """The excerpt bundled under `name`, if its file is in the package."""
    found = excerpts().get(name)
    return found if found is not None and found.path.is_file() else None


def decompress(excerpt: Excerpt, dest: Path) -> Path:
    """Writes the excerpt's uncompressed content to `dest` (e.g. for lm-eval, which reads it)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(excerpt.path, "rb") as src, dest.open("wb") as out:
        shutil.copyfileobj(src, out)
    return dest
