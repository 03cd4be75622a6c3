"""Moving a memory-mapped checkpoint's weights into the process's own memory, page by page.

transformers loads safetensors weights as views of a private file mapping. A method that
replaces a weight tensor instead of writing into it (llm-compressor's AWQ assigns
`weight.data` during its scale search) leaves the old pages mapped and resident as long as any
other tensor of the same file lives: the model then costs twice its size. Copying each tensor
out of the mapping and dropping its mapped pages right away (MADV_DONTNEED: they are clean, a
later read would fault them in from the file again) keeps the peak at one copy.
"""

from __future__ import annotations

import ctypes
import mmap
import os
from pathlib import Path
from typing import Any

MADV_DONTNEED = 4
PAGE = mmap.PAGESIZE


def file_mappings(suffix: str = ".safetensors") -> list[tuple[int, int]]:
    """The address ranges of this process mapped from files named *suffix."""
    ranges = []
    for line in Path("/proc/self/maps").read_text().splitlines():
        parts = line.split(maxsplit=5)
        if len(parts) == 6 and parts[5].endswith(suffix):
            start, end = (int(x, 16) for x in parts[0].split("-"))
            ranges.append((start, end))
    return ranges


def own_mapped_weights(model: Any) -> int:
    """Copies every parameter and buffer that lives in a mapped .safetensors file into owned
    memory, dropping its mapped pages once copied; returns the bytes moved. Call it right after
    loading, while the mapped pages are clean. A no-op off Linux or when nothing is mapped
    (offloaded, or loaded with disable_mmap)."""
    if not Path("/proc/self/maps").is_file():
        return 0
    mapped = file_mappings()
    if not mapped:
        return 0
    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    moved = 0
    for module in model.modules():
        for store in (module._parameters, module._buffers):
            for tensor in store.values():
                if tensor is None or tensor.device.type != "cpu":
                    continue
                start = tensor.data_ptr()
                length = tensor.numel() * tensor.element_size()
                if not tensor.is_contiguous() or not any(lo <= start < hi for lo, hi in mapped):
                    continue
                old = tensor.data  # keeps the mapping alive until its pages are dropped
                tensor.data = old.clone()
                _drop_pages(libc, start, length)
                del old
                moved += length
    return moved


def _drop_pages(libc: Any, start: int, length: int) -> None:
    """madvise(DONTNEED) over the whole pages inside [start, start + length)."""
    first = -(-start // PAGE) * PAGE
    last = (start + length) // PAGE * PAGE
    if last > first and libc.madvise(first, last - first, MADV_DONTNEED) != 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
