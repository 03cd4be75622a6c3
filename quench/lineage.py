"""Content digests of a base model's weights and tokenizer, so that two runs can be proven to
quantize the same model (the gate refuses to compare runs of different ones) whatever they
called it: a renamed folder has the same digest, a different model behind the same name not.

Files up to HASH_LIMIT_BYTES are hashed whole. Larger ones (the shards of an 8B-70B model) are
named by the Hugging Face cache's blob (its file name is the content's sha256) when they come
from it, else sampled: their size, the safetensors header and SAMPLES evenly spaced 1 MiB
blocks, which any two different models (or fine-tunes) differ in.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from quench.sources import HASH_LIMIT_BYTES, file_sha256

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".pth")
# what decides the token ids a text becomes (tokenizer.json alone for fast tokenizers)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json",
                   "merges.txt", "vocab.txt", "special_tokens_map.json", "added_tokens.json")
SAMPLES = 16
BLOCK = 1 << 20
HUB_BLOB = re.compile(r"^[0-9a-f]{64}$")


def file_digest(path: Path) -> tuple[str, str]:
    """(sha256, method): "full", "hub-blob" (the cache's content address) or "sampled"."""
    size = path.stat().st_size
    if size <= HASH_LIMIT_BYTES:
        return file_sha256(path), "full"
    target = path.resolve()
    if path.is_symlink() and HUB_BLOB.match(target.name) and target.parent.name == "blobs":
        return target.name, "hub-blob"
    digest = hashlib.sha256(f"size={size};".encode())
    with path.open("rb") as fh:
        digest.update(fh.read(min(size, BLOCK)))  # the safetensors header: names and shapes
        for i in range(SAMPLES):
            fh.seek((size - BLOCK) * (i + 1) // SAMPLES)
            digest.update(fh.read(BLOCK))
    return digest.hexdigest(), "sampled"


def _combined(folder: Path, names: list[str]) -> tuple[str | None, set[str]]:
    if not names:
        return None, set()
    digest, methods = hashlib.sha256(), set()
    for name in sorted(names):
        sha, method = file_digest(folder / name)
        digest.update(f"{name}\0{sha}\n".encode())
        methods.add(method)
    return digest.hexdigest(), methods


def model_digests(folder: Path, source_file: Path | None = None) -> dict[str, Any]:
    """The digests of a checkpoint folder's weights (+ config.json) and its tokenizer files;
    `source_file`: the file the folder was made from (a GGUF), digested instead of weights."""
    if source_file is not None:
        weights, methods = _combined(source_file.parent, [source_file.name])
    else:
        names = [p.name for p in folder.iterdir() if p.name.endswith(WEIGHT_SUFFIXES)]
        names += ["config.json"] if (folder / "config.json").is_file() else []
        weights, methods = _combined(folder, names)
    tokenizer, _ = _combined(folder, [n for n in TOKENIZER_FILES if (folder / n).is_file()])
    return {"weights_sha256": weights, "tokenizer_sha256": tokenizer,
            "method": "+".join(sorted(methods))}
