"""Byte sizes as recipes write them (5GB, 500MB, 1.5GiB), the way transformers reads them."""

from __future__ import annotations

import re

SIZE_PATTERN = r"^[0-9]+(\.[0-9]+)?(B|KB|MB|GB|KiB|MiB|GiB)$"
UNITS = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9,
         "KiB": 2**10, "MiB": 2**20, "GiB": 2**30}


def parse_size(text: str) -> int:
    """Bytes of a size string matching SIZE_PATTERN (decimal KB/MB/GB, binary KiB/MiB/GiB)."""
    match = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)(B|KB|MB|GB|KiB|MiB|GiB)", text)
    if match is None:
        raise ValueError(f"{text!r} is not a size like 500MB or 1.5GiB")
    return int(float(match[1]) * UNITS[match[2]])
