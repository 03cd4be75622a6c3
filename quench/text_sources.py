"""Offline-first resolution of text datasets: calibration and perplexity text.

Order: an existing local file; for a short name (`wikitext2`, `wikitext2-valid`) the mirror's
copy under $QUENCH_MIRROR, then the excerpt bundled with quench (quench/bundled/data/); else the
Hugging Face hub (`org/name`), unless HF_HUB_OFFLINE is set.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quench.bundled.excerpts import Excerpt, find_excerpt
from quench.errors import OfflineMiss, QuenchError
from quench.sources import MIRROR_ENV, is_offline, looks_like_path, mirror_dir


@dataclass(frozen=True)
class BuiltinDataset:
    """A short dataset name: a file in the mirror, the excerpt bundled under the same name
    (quench/bundled/data/index.yaml), and the hub dataset it stands for."""

    mirror_file: str
    hub_path: str
    hub_config: str
    hub_split: str
    hub_field: str = "text"


BUILTIN_DATASETS: dict[str, BuiltinDataset] = {
    "wikitext2": BuiltinDataset(
        "data/wikitext2_raw_test/wiki.test.raw", "Salesforce/wikitext", "wikitext-2-raw-v1", "test"
    ),
    "wikitext2-valid": BuiltinDataset(
        "data/wikitext2_valid_calibration/valid.txt",
        "Salesforce/wikitext",
        "wikitext-2-v1",
        "validation",
    ),
}


@dataclass(frozen=True)
class TextSource:
    """Where text comes from: a file (local, in the mirror, or bundled with quench) or the hub."""

    kind: str  # "file" or "hub"
    path: Path | None = None
    hub_path: str | None = None
    hub_config: str | None = None
    hub_split: str | None = None
    field: str = "text"
    origin: str = "local"  # "local", "mirror", "bundled" or "hub"
    excerpt: Excerpt | None = None  # the bundled excerpt, when origin is "bundled"

    def describe(self) -> dict[str, Any]:
        """The lineage a report, a stage fingerprint and MLflow record."""
        if self.kind == "hub":
            return {"kind": "hub", "origin": "hub", "path": self.hub_path,
                    "config": self.hub_config, "split": self.hub_split, "field": self.field}
        out: dict[str, Any] = {"kind": "file", "origin": self.origin, "path": str(self.path),
                               "field": self.field}
        if self.excerpt is not None:
            out.update(self.excerpt.describe())
        return out


def dataset_names() -> list[str]:
    """The short dataset names quench knows (each bundled, and in the mirror's layout)."""
    return list(BUILTIN_DATASETS)


def check_dataset_name(ref: str, key: str) -> None:
    """A reference that is no path, no known short name and no `org/name` is a typo: say so."""
    if "/" in ref or ref in BUILTIN_DATASETS or Path(ref).expanduser().exists():
        return
    raise QuenchError(
        f"{key}: {ref!r} is not a local file nor a dataset name quench knows "
        f"(bundled: {', '.join(dataset_names())}); a hub dataset is written org/name, "
        "e.g. Salesforce/wikitext")


def resolve_text_source(
    ref: str, config_name: str | None, split: str, field: str, key: str
) -> TextSource:
    """Resolves a dataset reference; `key` names the recipe field in errors.

    Order: a local file; for a short name, the mirror's copy, then the excerpt bundled with
    quench; else the hub (`org/name`), unless HF_HUB_OFFLINE is set.
    """
    local = Path(ref).expanduser()
    if local.exists() or looks_like_path(ref):
        if not local.is_file():
            raise QuenchError(f"{key}: {ref} is not a file")
        return TextSource("file", path=local.resolve(), field=field)
    check_dataset_name(ref, key)
    builtin = BUILTIN_DATASETS.get(ref)
    if builtin is not None:
        found = _builtin_file(ref, builtin)
        if found is not None:
            return found
        ref, config_name, split, field = (
            builtin.hub_path, builtin.hub_config, builtin.hub_split, builtin.hub_field
        )
    if is_offline():
        raise OfflineMiss(
            f"{key}: {ref!r} is not a local file, not found in the mirror (${MIRROR_ENV}), "
            f"and HF_HUB_OFFLINE is set; bundled names: {', '.join(dataset_names())}"
        )
    return TextSource("hub", hub_path=ref, hub_config=config_name, hub_split=split, field=field,
                      origin="hub")


def _builtin_file(name: str, builtin: BuiltinDataset) -> TextSource | None:
    """A short name's file: the mirror's copy, else quench's bundled excerpt, else None."""
    mirror = mirror_dir()
    if mirror is not None and (mirror / builtin.mirror_file).is_file():
        return TextSource("file", path=mirror / builtin.mirror_file, field=builtin.hub_field,
                          origin="mirror")
    excerpt = find_excerpt(name)
    if excerpt is not None:
        return TextSource("file", path=excerpt.path, field=builtin.hub_field, origin="bundled",
                          excerpt=excerpt)
    return None


def load_texts(source: TextSource, key: str = "") -> list[str]:
    """The non-empty text records of a source (lines of a text file, rows of a dataset);
    an unreadable file is a QuenchError naming `key` (the recipe field), file and line."""
    if source.kind == "hub":
        import datasets

        rows = datasets.load_dataset(source.hub_path, source.hub_config, split=source.hub_split)
        texts = [str(r) for r in rows[source.field]]
    else:
        from quench.textfiles import read_file_texts

        texts = read_file_texts(source.path, source.field, key)
    return [t.strip("\r\n") for t in texts if t.strip()]
