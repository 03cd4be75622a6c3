"""Offline-first resolution: a model reference becomes a local path or a hub download.

Order: an existing local path; else the mirror folder named by $QUENCH_MIRROR (laid out as
`models/<org>/<name>` and `data/<folder>`); else a bundled model's short name, the file
`quench setup models` fetched into the quench home; else the Hugging Face hub, unless
HF_HUB_OFFLINE is set. Datasets resolve in the same order in quench/text_sources.py.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from quench import home
from quench.errors import NotSetUp, OfflineMiss, QuenchError
from quench.gguf import is_gguf, read_gguf

MIRROR_ENV = "QUENCH_MIRROR"
HASH_LIMIT_BYTES = 256 * 1024 * 1024  # files above this are fingerprinted by size+mtime only


def is_offline() -> bool:
    """True when the user asked the Hugging Face libraries to stay offline."""
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def mirror_dir() -> Path | None:
    """The local mirror folder, if $QUENCH_MIRROR names an existing one."""
    value = os.environ.get(MIRROR_ENV)
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_dir():
        raise QuenchError(f"${MIRROR_ENV}={value} is not a directory")
    return path.resolve()


def looks_like_path(ref: str) -> bool:
    """A reference written as a path (./x, /x, ~/x) is never taken for a hub id."""
    return ref.startswith((".", "/", "~"))


def find_model_in_mirror(ref: str, gguf_file: str | None = None) -> Path | None:
    """Looks a hub id up in the mirror: models/<org>/<name>, models/<org>--<name>, models/<name>.

    A folder counts when it holds config.json, or the named GGUF file. A folder named by the
    bare <name> counts only when its SOURCE.md names the hub id: `other-org/<name>` is another
    model, and taking its card would check the wrong license.
    """
    mirror = mirror_dir()
    if mirror is None or not (mirror / "models").is_dir():
        return None
    marker = gguf_file or "config.json"
    org, _, name = ref.rpartition("/")
    exact = mirror / "models" / ref
    if (exact / marker).is_file():
        return exact
    for child in sorted((mirror / "models").iterdir()):
        if not (child / marker).is_file():
            continue
        if child.name.lower() in {f"{org}--{name}".lower(), ref.lower()}:
            return child
        if child.name.lower() == name.lower() and _provenance_names(child, ref):
            return child
    return None


def _provenance_names(folder: Path, ref: str) -> bool:
    """Whether the folder's SOURCE.md provenance note names hub id `ref` (case-insensitive)."""
    source = folder / "SOURCE.md"
    if "/" not in ref or not source.is_file():
        return False
    return ref.lower() in source.read_text(encoding="utf-8", errors="replace").lower()


@dataclass(frozen=True)
class BundledModel:
    """A short model name: a file `quench setup models` fetches into the quench home."""

    folder: str  # under $QUENCH_HOME/models/
    file: str  # the model file in it (a GGUF file)
    setup: str = home.setup_command("models")

    @property
    def path(self) -> Path:
        return home.model_dir(self.folder) / self.file


BUNDLED_MODELS: dict[str, BundledModel] = {
    "smollm2-135m-instruct": BundledModel("smollm2-135m-instruct",
                                          "SmolLM2-135M-Instruct.Q4_1.gguf"),
}


@dataclass(frozen=True)
class ResolvedModel:
    path: Path  # the checkpoint folder (for a GGUF input: the folder holding the file)
    origin: str  # "local", "mirror", "bundled" or "hub"
    gguf_file: Path | None = None  # a GGUF input, dequantized by the resolve stage

    @property
    def source(self) -> Path:
        """What the model was read from: the GGUF file, else the checkpoint folder."""
        return self.gguf_file or self.path


def resolve_model(
    ref: str, revision: str | None = None, download: bool = True, gguf_file: str | None = None
) -> ResolvedModel:
    """Finds a model's local folder (or GGUF file); downloads from the hub when online.

    `ref` may name a checkpoint folder, a local `.gguf` file, or a hub id; `gguf_file` names a
    GGUF file inside the folder or hub repo `ref` (as transformers' `gguf_file=` does).
    """
    local = Path(ref).expanduser()
    if local.exists() or looks_like_path(ref) or is_gguf(local):
        return _resolve_local(ref, local, gguf_file)
    mirrored = find_model_in_mirror(ref, gguf_file)
    if mirrored is not None:
        return ResolvedModel(mirrored, "mirror", mirrored / gguf_file if gguf_file else None)
    if ref in BUNDLED_MODELS:
        return _resolve_bundled(ref, gguf_file)
    if is_offline():
        where = f"${MIRROR_ENV}={os.environ.get(MIRROR_ENV)}" if mirror_dir() else f"${MIRROR_ENV}"
        raise OfflineMiss(
            f"model.id: {ref!r} is neither a local folder nor in the mirror ({where}), "
            "and HF_HUB_OFFLINE is set"
        )
    if not download:
        return ResolvedModel(Path(ref), "hub", Path(gguf_file) if gguf_file else None)
    return _download(ref, revision, gguf_file)


def _resolve_bundled(ref: str, gguf_file: str | None) -> ResolvedModel:
    """A bundled model's file in the quench home; not fetched yet is an exit-2 error."""
    bundled = BUNDLED_MODELS[ref]
    if gguf_file and gguf_file != bundled.file:
        raise QuenchError(f"model.gguf_file: {gguf_file!r}, but the bundled model {ref!r} is "
                          f"the file {bundled.file}; leave model.gguf_file out")
    path = bundled.path
    if not path.is_file():
        raise NotSetUp(f"model.id: {ref!r} is a bundled model that is not fetched yet "
                       f"(expected {path}): run `{bundled.setup}`")
    return ResolvedModel(path.parent, "bundled", path)


def _download(ref: str, revision: str | None, gguf_file: str | None) -> ResolvedModel:
    """Fetches from the Hub; an unreachable Hub or an unknown id is a clear exit-2 error."""
    from huggingface_hub import hf_hub_download, snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        if gguf_file:
            file = Path(hf_hub_download(ref, gguf_file, revision=revision))
            return ResolvedModel(file.parent, "hub", file)
        return ResolvedModel(Path(snapshot_download(ref, revision=revision)), "hub")
    except (LocalEntryNotFoundError, HfHubHTTPError) as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        where = f" (revision {revision})" if revision else ""
        raise OfflineMiss(
            f"model.id: {ref!r}{where} could not be fetched from the Hugging Face Hub "
            f"({type(exc).__name__}: {first}); check the id and the network, or point model.id "
            f"at a local folder or ${MIRROR_ENV} at a mirror") from None


class ModelRef(Protocol):
    """What names a model in a recipe (`model:`): id, revision, gguf_file."""

    id: str
    revision: str | None
    gguf_file: str | None


def resolve_spec(model: ModelRef, download: bool = True) -> ResolvedModel:
    """resolve_model for a recipe's `model:` section."""
    return resolve_model(model.id, model.revision, download, model.gguf_file)


def names_gguf(model: ModelRef) -> bool:
    """Whether a recipe's `model:` names a GGUF input (read without resolving it)."""
    bundled = BUNDLED_MODELS.get(model.id)
    return bool(model.gguf_file) or model.id.lower().endswith(".gguf") or (
        bundled is not None and bundled.file.lower().endswith(".gguf"))


def model_config(resolved: ResolvedModel) -> dict[str, Any]:
    """The model's transformers config: config.json, or what a GGUF file's metadata says.

    Invalid JSON, or a known field of the wrong type, is a QuenchError naming file and field.
    """
    if resolved.gguf_file is not None:
        return read_gguf(resolved.gguf_file).config
    from quench.textfiles import check_config_types, read_json_object

    path = resolved.path / "config.json"
    return check_config_types(read_json_object(path), path)


def _resolve_local(ref: str, local: Path, gguf_file: str | None) -> ResolvedModel:
    if local.is_dir() and gguf_file:
        local = local / gguf_file
    if is_gguf(local):
        if not local.is_file():
            raise QuenchError(f"model.id: {local} does not exist{_bundled_hint(local)}")
        local = local.resolve()
        return ResolvedModel(local.parent, "local", local)
    if not (local / "config.json").is_file():
        raise QuenchError(f"model.id: {ref} is not a model folder (no config.json in it) "
                          "and not a .gguf file")
    return ResolvedModel(local.resolve(), "local")


def _bundled_hint(missing: Path) -> str:
    """For a missing file that a bundled model provides: the short name to use instead."""
    for name, bundled in BUNDLED_MODELS.items():
        if missing.name == bundled.file:
            return (f" (the bundled model is `model.id: {name}`, fetched into the quench home by "
                    f"`{bundled.setup}`)")
    return ""


def fingerprint_path(path: Path) -> dict[str, Any]:
    """A content fingerprint of a file or folder, cheap enough to compute on every run."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    out = {}
    for f in files:
        rel = f.name if f == path else str(f.relative_to(path))
        if rel.startswith(".cache") or "/.cache/" in rel:
            continue
        stat = f.stat()
        if stat.st_size <= HASH_LIMIT_BYTES:
            out[rel] = file_sha256(f)
        else:
            out[rel] = f"size={stat.st_size},mtime={stat.st_mtime_ns}"
    return out


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
