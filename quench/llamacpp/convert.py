"""An HF checkpoint to a GGUF with the build's own convert_hf_to_gguf.py.

The converter reads a folder; quench hands it a staging folder of links to the checkpoint's
files, with two repairs the converter cannot make itself:
- a byte-level BPE tokenizer.json (pre-tokenizer ByteLevel) that declares `byte_fallback`
  with a `Sequence` decoder (what transformers writes for a GGUF it dequantized) is taken by
  the converter for a SentencePiece-style vocabulary, and llama.cpp then fails on the file
  (`unordered_map::at`); the staged copy drops `byte_fallback`, so the converter writes the
  GPT-2 BPE vocabulary the tokenizer is;
- a tied model that stores only `lm_head.weight` (TinyStories) would give a GGUF without
  token embeddings; the staged folder adds them as one more shard.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from quench.llamacpp import tools

EMBED, HEAD = "model.embed_tokens.weight", "lm_head.weight"
EXTRA_SHARD = "model-tied-embeddings.safetensors"


def convert(source: Path, out: Path, outtype: str, work: Path, log: Path,
            metadata: dict[str, Any] | None = None) -> Path:
    """Writes `out` (a GGUF of `outtype`: f32, f16 or bf16) from the checkpoint `source`;
    metadata: GGUF keys the converter's --metadata file sets (license, base models, name)."""
    staged = stage(source, work / "hf")
    args: list[str | Path] = [tools.converter_path(), staged, "--outfile", out,
                              "--outtype", outtype]
    if metadata:
        meta = work / "metadata.json"
        meta.write_text(json.dumps(metadata, indent=2))
        args += ["--metadata", meta]
    tools.run(args, log, f"convert_hf_to_gguf.py {source}", python=True)
    return out


def stage(source: Path, folder: Path) -> Path:
    """The converter's view of `source`: links to its files, repaired as the module says."""
    folder.mkdir(parents=True, exist_ok=True)
    for item in source.iterdir():
        if item.is_file() and item.name != "tokenizer.json":
            os.symlink(item.resolve(), folder / item.name)
    tokenizer = source / "tokenizer.json"
    if tokenizer.is_file():
        (folder / "tokenizer.json").write_text(json.dumps(byte_level_repaired(
            json.loads(tokenizer.read_text())), ensure_ascii=False))
    _add_tied_embeddings(source, folder)
    return folder


def byte_level_repaired(tokenizer: dict[str, Any]) -> dict[str, Any]:
    """A byte-level BPE's tokenizer.json without the byte_fallback flag it cannot use."""
    model = tokenizer.get("model") or {}
    if model.get("type") == "BPE" and model.get("byte_fallback") and _byte_level(tokenizer):
        tokenizer = {**tokenizer, "model": {**model, "byte_fallback": False},
                     "decoder": {"type": "ByteLevel", "add_prefix_space": True,
                                 "trim_offsets": True, "use_regex": True}}
    return tokenizer


def _byte_level(tokenizer: dict[str, Any]) -> bool:
    pre = tokenizer.get("pre_tokenizer") or {}
    parts = pre.get("pretokenizers", [pre]) if pre.get("type") == "Sequence" else [pre]
    return any(p.get("type") == "ByteLevel" for p in parts)


def _add_tied_embeddings(source: Path, folder: Path) -> None:
    """A tied model storing only lm_head.weight gets model.embed_tokens.weight (a copy)."""
    config = json.loads((source / "config.json").read_text())
    if not config.get("tie_word_embeddings"):
        return
    from safetensors import safe_open
    from safetensors.torch import save_file

    names = {}
    for shard in sorted(source.glob("*.safetensors")):
        with safe_open(shard, "pt") as f:
            names.update(dict.fromkeys(f.keys(), shard))
    if EMBED in names or HEAD not in names:
        return
    with safe_open(names[HEAD], "pt") as f:
        save_file({EMBED: f.get_tensor(HEAD)}, folder / EXTRA_SHARD)
    index = source / "model.safetensors.index.json"
    if index.is_file():  # the converter lists shards from the index when there is one
        data = json.loads(index.read_text())
        data["weight_map"][EMBED] = EXTRA_SHARD
        (folder / index.name).unlink()
        (folder / index.name).write_text(json.dumps(data, indent=2))
