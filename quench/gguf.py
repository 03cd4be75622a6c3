"""GGUF files as a model input: read and check the metadata, dequantize once to a checkpoint.

transformers' own GGUF loader does the dequantizing (through the `gguf` package); this module
checks a file before that expensive step, so a bad file is a clear error naming it, and it
turns the metadata into the facts later stages need (shape, license, base models).
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from quench.errors import QuenchError
from quench.user_cache import read_cached, user_cache_dir, write_cached

METADATA_FILE = "gguf_metadata.json"  # written beside the dense checkpoint by `resolve`
SUFFIX = ".gguf"
CACHE_VERSION = 1  # bump when GgufInfo or what fills it changes


class GgufError(QuenchError):
    """A GGUF file that cannot be used (not GGUF, truncated, unsupported); names file and why."""


@dataclass
class GgufInfo:
    """What a GGUF file says about itself; everything here comes from its header."""

    file: str
    architecture: str
    name: str | None
    license: str | None
    license_name: str | None
    license_link: str | None
    base_models: list[str]
    tensor_count: int
    tensor_types: dict[str, int]  # GGML type -> number of tensors
    special_tokens: dict[str, int]  # bos/eos/pad -> token id, as the file names them
    tensors: dict[str, str] = field(repr=False)  # tensor name -> GGML type
    config: dict[str, Any] = field(repr=False)  # transformers config keys (hidden_size, ...)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def is_gguf(path: Path) -> bool:
    return path.suffix.lower() == SUFFIX


def read_gguf(path: Path) -> GgufInfo:
    """Reads and checks a GGUF file's header and tensor table; raises GgufError naming it."""
    if not path.is_file():
        raise GgufError(f"model.id: {path} is not a file")
    stat = path.stat()
    return _read_gguf(path.resolve(), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _read_gguf(path: Path, size: int, mtime_ns: int) -> GgufInfo:
    """Cached by path, size and mtime, in memory and on disk: pre-flight, plan and the stages
    of every later command ask for the same file, and parsing a header takes ~10 s (the
    tokenizer's arrays); a file that changes gets a new entry."""
    key = hashlib.sha256(f"{path}|{size}|{mtime_ns}|{CACHE_VERSION}".encode()).hexdigest()[:24]
    cache = user_cache_dir() / "gguf" / f"{key}.json"
    cached = read_cached(cache)
    if isinstance(cached, dict):
        try:
            return GgufInfo(**cached)
        except TypeError:  # written by another version of this class
            pass
    info = _parse_gguf(path)
    write_cached(cache, info.to_json())
    return info


def _parse_gguf(path: Path) -> GgufInfo:
    """Reads the header with the `gguf` package and transformers' config mapping."""
    from gguf import GGUFReader
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    try:
        reader = GGUFReader(path)
    except (ValueError, IndexError, OSError) as exc:
        raise GgufError(f"model.id: {path} is not a readable GGUF file "
                        f"(truncated or corrupt: {type(exc).__name__}: {exc})") from None
    fields = {k: _value(f) for k, f in reader.fields.items()
              if not k.startswith("tokenizer.") or k.endswith("_token_id")}
    tensors = {t.name: t.tensor_type.name for t in reader.tensors}
    _check_tensor_types(path, reader)
    try:
        parsed = load_gguf_checkpoint(str(path), return_tensors=False)
    except (ValueError, KeyError, NotImplementedError) as exc:
        raise GgufError(f"model.id: {path}: transformers cannot load it ({exc})") from None
    return GgufInfo(
        file=str(path),
        architecture=str(fields.get("general.architecture")),
        name=fields.get("general.name"),
        license=fields.get("general.license"),
        license_name=fields.get("general.license.name"),
        license_link=fields.get("general.license.link"),
        base_models=_base_models(fields),
        tensor_count=len(tensors),
        tensor_types=dict(Counter(tensors.values()).most_common()),
        special_tokens={role: int(fields[f"tokenizer.ggml.{key}_token_id"])
                        for role, key in (("bos", "bos"), ("eos", "eos"), ("pad", "padding"))
                        if fields.get(f"tokenizer.ggml.{key}_token_id") is not None},
        tensors=tensors,
        config=_plain(parsed["config"]),
    )


def _fix_special_tokens(tokenizer: Any, ids: dict[str, int]) -> None:
    """Sets eos/pad/bos to the ids the GGUF names (transformers 5.17 can take eos for bos)."""
    for role, token_id in ids.items():
        if getattr(tokenizer, f"{role}_token_id") != token_id:
            setattr(tokenizer, f"{role}_token", tokenizer.convert_ids_to_tokens(token_id))


def _value(f: Any) -> Any:
    """A field's value: a scalar or string, or a list for arrays."""
    try:
        return f.contents()
    except (ValueError, IndexError, TypeError):
        return None


def _check_tensor_types(path: Path, reader: Any) -> None:
    """Dequantizes one row of each tensor type: a type the library cannot read fails here."""
    from gguf import dequantize

    seen: set[str] = set()
    for tensor in reader.tensors:
        kind = tensor.tensor_type.name
        if kind in seen:
            continue
        seen.add(kind)
        try:
            dequantize(tensor.data[:1], tensor.tensor_type)
        except NotImplementedError:
            raise GgufError(f"model.id: {path}: tensor {tensor.name} has GGML type {kind}, "
                            "which the gguf package cannot dequantize") from None


def _base_models(fields: dict[str, Any]) -> list[str]:
    """general.base_model.N.{repo_url,organization,name} as hub ids (or URLs)."""
    count = fields.get("general.base_model.count") or 0
    found = []
    for i in range(int(count)):
        prefix = f"general.base_model.{i}."
        url, org, name = (fields.get(prefix + k) for k in ("repo_url", "organization", "name"))
        if url and "huggingface.co/" in str(url):
            found.append(str(url).split("huggingface.co/", 1)[1].strip("/"))
        elif org and name:
            found.append(f"{org}/{name}")
        elif url or name:
            found.append(str(url or name))
    return found


def _plain(config: dict[str, Any]) -> dict[str, Any]:
    """JSON-safe copy (numpy scalars become Python numbers)."""
    return json.loads(json.dumps(config, default=lambda v: v.item() if hasattr(v, "item")
                                 else str(v)))


def dequantize_to_checkpoint(path: Path, out: Path, dtype: str, max_shard_size: str = "5GB"
                             ) -> GgufInfo:
    """Loads the GGUF with transformers (dequantizing), saves a dense safetensors checkpoint."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    info = read_gguf(path)
    kwargs = {"gguf_file": path.name}
    try:
        model = AutoModelForCausalLM.from_pretrained(path.parent, dtype=getattr(torch, dtype),
                                                     **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(path.parent, **kwargs)
    except (ValueError, KeyError, NotImplementedError, OSError) as exc:
        raise GgufError(f"model.id: {path}: transformers cannot load it "
                        f"({type(exc).__name__}: {exc})") from None
    _fix_special_tokens(tokenizer, info.special_tokens)
    # The weights are dense now; without this, save_pretrained refuses a "GGUF-quantized" model.
    del model.config.quantization_config
    model.hf_quantizer = None
    model.config.name_or_path = str(path)
    model.save_pretrained(out, max_shard_size=max_shard_size)
    tokenizer.save_pretrained(out)
    del model
    (out / METADATA_FILE).write_text(json.dumps(info.to_json(), indent=2))
    return info
