"""Tensors by name from a checkpoint folder, one at a time, whether it is one file or sharded."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from quench.errors import StageError
from quench.models import check_safetensors

INDEX = "model.safetensors.index.json"


# safetensors dtype names -> torch dtype names
DTYPES = {"BF16": "bfloat16", "F16": "float16", "F32": "float32", "F64": "float64",
          "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8",
          "BOOL": "bool", "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2"}


class Shards:
    """A read-only view of a folder's safetensors: names, shapes, and tensors read on demand.

    Tensors are read with plain file reads, not a memory map: a mapped shard's pages stay
    resident (and count in RSS) until it is closed, so reading a 70B checkpoint tensor by
    tensor through a map would grow to the checkpoint's size. This costs one tensor of RAM.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._headers: dict[str, tuple[int, dict[str, Any]]] = {}
        self._by_module: dict[str, list[str]] | None = None
        self._where = self._weight_map()

    def _weight_map(self) -> dict[str, str]:
        index = self.folder / INDEX
        if index.is_file():
            try:
                return dict(json.loads(index.read_text())["weight_map"])
            except (ValueError, KeyError, TypeError):
                raise StageError(f"{index}: not a safetensors index (no weight_map)") from None
        where: dict[str, str] = {}
        for shard in sorted(self.folder.glob("*.safetensors")):
            where.update(dict.fromkeys(self._header(shard.name)[1], shard.name))
        return where

    def __enter__(self) -> Shards:
        return self

    def __exit__(self, *exc: object) -> None:
        self._headers.clear()

    def names(self) -> list[str]:
        return list(self._where)

    def __contains__(self, name: str) -> bool:
        return name in self._where

    def _header(self, shard: str) -> tuple[int, dict[str, Any]]:
        """(offset of the data section, tensor table) of one shard, read once."""
        if shard not in self._headers:
            path = self.folder / shard
            if not path.is_file():
                raise StageError(f"{self.folder / INDEX} names {shard}, which is missing")
            check_safetensors(path)
            with path.open("rb") as fh:
                (length,) = struct.unpack("<Q", fh.read(8))
                table = json.loads(fh.read(length))
            table.pop("__metadata__", None)
            self._headers[shard] = (8 + length, table)
        return self._headers[shard]

    def get(self, name: str) -> Any:
        """The tensor `name`, read from its shard into RAM."""
        import torch

        shard = self._where[name]
        base, table = self._header(shard)
        entry = table[name]
        begin, end = entry["data_offsets"]
        with (self.folder / shard).open("rb") as fh:
            fh.seek(base + begin)
            raw = bytearray(fh.read(end - begin))
        dtype = getattr(torch, DTYPES[entry["dtype"]])
        flat = torch.frombuffer(raw, dtype=dtype) if raw else torch.empty(0, dtype=dtype)
        return flat.reshape(entry["shape"])

    def shape(self, name: str) -> list[int]:
        return list(self._header(self._where[name])[1][name]["shape"])
    def module_tensors(self, module: str) -> Iterator[tuple[str, Any]]:
        """Every tensor directly under `module` (e.g. its weight_packed, weight_scale)."""
        if self._by_module is None:
            self._by_module = {}
            for name in self._where:
                self._by_module.setdefault(name.rpartition(".")[0], []).append(name)
        for name in self._by_module.get(module, []):
            yield name, self.get(name)
