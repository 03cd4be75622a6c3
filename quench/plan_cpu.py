"""`quench plan` for CPU and edge hosts: which GGUF type (llama.cpp) fits a host's RAM.

The brief's decision tree for hosts without a GPU: llama.cpp serves a GGUF, and decoding on a
CPU is bound by memory bandwidth, so a smaller type is also a faster one. The recommendation
is the type with the most bits that fits (Q8_0 first: nearly lossless; Q4_K_M, the usual
balance, when memory is tighter; 3- and 2-bit types only when nothing larger fits), sized from
the bits per weight of llama-quantize's own listing (quench/llamacpp/types.py).
"""

from __future__ import annotations

from typing import Any

from quench.geometry import Geometry
from quench.llamacpp.types import TYPES
from quench.stage_memory import GIB

HOSTS_GIB = (8, 16, 32, 64, 128)  # an edge box, a laptop, workstations, a CPU server
USABLE = 0.85  # of a host's RAM, the rest for the system
ORDER = ("Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "IQ4_XS", "Q3_K_M", "IQ2_XS")
KV_BYTES = 2  # llama.cpp's default KV cache type: f16


def gguf_bytes(shape: Geometry, gguf_type: str) -> float:
    """The GGUF file: every weight at the type's bits per weight."""
    return (shape.linear_params + shape.other_params) * TYPES[gguf_type].bits / 8


def cpu_hosts(shape: Geometry, batch: int, seq_len: int, margin: float) -> list[dict[str, Any]]:
    """For each host size: the recommended GGUF type, its file and total with the KV cache."""
    kv = batch * seq_len * shape.layers * 2 * shape.hidden * KV_BYTES / shape.gqa_factor
    rows = []
    for ram in HOSTS_GIB:
        room = ram * GIB * USABLE
        fits = [t for t in ORDER if (gguf_bytes(shape, t) + kv) * (1 + margin) <= room]
        best = fits[0] if fits else None
        rows.append({"ram_gib": ram, "recommended": best,
                     "file_gib": gguf_bytes(shape, best) / GIB if best else None,
                     "total_gib": (gguf_bytes(shape, best) + kv) * (1 + margin) / GIB
                     if best else None,
                     "needs_imatrix": bool(best and TYPES[best].needs_imatrix)})
    return rows


def render_cpu_hosts(rows: list[dict[str, Any]], batch: int, seq_len: int) -> list[str]:
    lines = ["", f"CPU / edge hosts (llama.cpp, GGUF; f16 KV cache for batch {batch} x "
             f"seq_len {seq_len}; {USABLE:.0%} of RAM usable):",
             f"{'RAM GiB':>7}  recommended"]
    for r in rows:
        if r["recommended"] is None:
            text = "nothing fits: a smaller batch or seq_len, or a GPU"
        else:
            text = (f"GGUF {r['recommended']} (file {r['file_gib']:.2f} GiB, with KV cache "
                    f"{r['total_gib']:.2f} GiB)"
                    + (": needs quantization.options.imatrix" if r["needs_imatrix"] else ""))
        lines.append(f"{r['ram_gib']:>7}  {text}")
    return lines
