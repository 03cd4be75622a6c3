"""The baseline's stored distribution on disk: .npy files written and read a window at a time.

A baseline writes, as it scores, per position its top-k float16 log-probabilities, int32 ids
and float32 rest log-mass, and the float16 full distribution of the first N positions (see
metrics.kl). With k = 1024 that is 6 KB per token, so neither side holds the arrays whole: rows
are appended to plain .npy files and read back by range with seek + read, which keeps resident
memory O(window) (a memory map would count every page it touched in the process's RSS).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from quench.metrics.kl import encode_exact, topk_arrays


class NpyAppender:
    """An .npy file of a known shape, written block of rows by block of rows, in order."""

    def __init__(self, path: Path, shape: tuple[int, ...], dtype: Any) -> None:
        self.path, self.shape, self.dtype, self.rows = path, shape, np.dtype(dtype), 0
        self.file = open(path, "wb")  # noqa: SIM115 - closed by close()
        header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False,
                  "shape": shape}
        np.lib.format.write_array_header_1_0(self.file, header)

    def write(self, block: np.ndarray) -> None:
        """Appends rows; their dtype and trailing shape must be the file's."""
        if block.dtype != self.dtype or block.shape[1:] != self.shape[1:]:
            raise ValueError(f"{self.path.name}: got {block.dtype}{block.shape}, "
                             f"expected {self.dtype} rows of {self.shape[1:]}")
        self.file.write(np.ascontiguousarray(block).tobytes())
        self.rows += len(block)

    def close(self) -> None:
        """Closes the file; fewer or more rows than declared is an error, not a short file."""
        self.file.close()
        if self.rows != self.shape[0]:
            raise ValueError(f"{self.path.name}: wrote {self.rows} rows, declared {self.shape[0]}")


class NpyRows:
    """Row ranges of an .npy file, read on demand without loading or mapping the rest."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                    else np.lib.format.read_array_header_2_0)
            self.shape, fortran, self.dtype = read(f)
            self.offset = f.tell()
        if fortran:
            raise ValueError(f"{path}: Fortran-ordered arrays are not supported")
        self.row_items = int(np.prod(self.shape[1:], dtype=np.int64))

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows: slice) -> np.ndarray:
        start, stop, _ = rows.indices(len(self))
        count = max(0, stop - start)
        with open(self.path, "rb") as f:
            f.seek(self.offset + start * self.row_items * self.dtype.itemsize)
            data = np.fromfile(f, self.dtype, count * self.row_items)
        return data.reshape((count, *self.shape[1:]))


@dataclass
class Reference:
    """What the baseline stored, over the same scored positions in order."""

    logprobs: NpyRows  # [P, k] float16 top-k log-probabilities
    ids: NpyRows  # [P, k] int32 token ids
    rest: NpyRows  # [P] float32 log of the mass outside the top-k
    exact: NpyRows  # [N, V] float16 full-vocabulary log-probabilities of positions 0..N-1


def open_reference(folder: Path) -> Reference:
    """The arrays a ReferenceWriter left in `folder`."""
    return Reference(*(NpyRows(folder / f"{name}.npy") for name in
                       ("logprobs", "ids", "rest", "exact")))


class ReferenceWriter:
    """Streams a baseline's top-k (and its first `exact_tokens` full distributions) to disk."""

    def __init__(self, folder: Path, positions: int, top_k: int, exact_tokens: int) -> None:
        self.folder, self.positions, self.top_k = folder, positions, top_k
        self.exact_tokens = min(exact_tokens, positions)
        self.position = 0
        self.files: dict[str, NpyAppender] = {}

    def add(self, logp: Any) -> None:
        """One window's scored positions: float32 log-probabilities [n, V]."""
        if not self.files:
            self._open(logp.shape[-1])
        values, ids, rest = topk_arrays(logp, self.top_k)
        for name, block in (("logprobs", values), ("ids", ids), ("rest", rest)):
            self.files[name].write(block)
        keep = min(len(logp), self.exact_tokens - self.position)
        if keep > 0:
            self.files["exact"].write(encode_exact(logp[:keep]))
        self.position += len(logp)

    def _open(self, vocab: int) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        k, p = min(self.top_k, vocab), self.positions
        for name, shape, dtype in (("logprobs", (p, k), np.float16), ("ids", (p, k), np.int32),
                                   ("rest", (p,), np.float32),
                                   ("exact", (self.exact_tokens, vocab), np.float16)):
            self.files[name] = NpyAppender(self.folder / f"{name}.npy", shape, dtype)

    def close(self) -> int:
        """Closes every file (each must be complete); returns the exact subset's length."""
        for appender in self.files.values():
            appender.close()
        return self.exact_tokens
