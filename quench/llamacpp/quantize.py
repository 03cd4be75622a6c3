"""llama-imatrix and llama-quantize: an importance matrix from calibration text, then the GGUF
of a type, with per-tensor overrides and metadata keys; what llama-quantize did, read back."""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path

from quench.llamacpp import tools

FALLBACK_LINE = re.compile(r"(\d+) of (\d+) tensor\(s\) required fallback quantization")


def threads() -> int:
    """The cores this process may use (llama.cpp's own default counts every core)."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
               else os.cpu_count() or 1)


def importance_matrix(model: Path, text: Path, out: Path, context: int, chunks: int,
                      log: Path) -> Path:
    """llama-imatrix over `chunks` windows of `context` tokens of `text` (no perplexity)."""
    tools.run([tools.tool_path("llama-imatrix"), "-m", model, "-f", text, "-o", out,
               "-c", str(context), "--chunks", str(chunks), "--no-ppl",
               "-t", str(threads())], log, "llama-imatrix")
    return out


def quantize(model: Path, out: Path, gguf_type: str, log: Path, imatrix: Path | None = None,
             tensor_types: dict[str, str] | None = None, output_type: str | None = None,
             embedding_type: str | None = None, metadata: dict[str, str | int] | None = None
             ) -> int:
    """llama-quantize `model` into `out` as `gguf_type`; returns how many tensors it gave a
    fallback type (rows not a whole number of the type's blocks)."""
    args: list[str | Path] = [tools.tool_path("llama-quantize")]
    if imatrix is not None:
        args += ["--imatrix", imatrix]
    for pattern, kind in (tensor_types or {}).items():
        args += ["--tensor-type", f"{pattern}={kind}"]
    if output_type:
        args += ["--output-tensor-type", output_type]
    if embedding_type:
        args += ["--token-embedding-type", embedding_type]
    for key, value in (metadata or {}).items():
        kind = "int" if isinstance(value, int) else "str"
        args += ["--override-kv", f"{key}={kind}:{value}"]
    args += [model, out, gguf_type, str(threads())]
    output = tools.run(args, log, f"llama-quantize {gguf_type}")
    found = FALLBACK_LINE.search(output)
    return int(found.group(1)) if found else 0


def tensor_types(path: Path) -> dict[str, int]:
    """GGML type -> number of tensors in a GGUF file, read from its header."""
    from gguf import GGUFReader

    return dict(Counter(t.tensor_type.name for t in GGUFReader(path).tensors).most_common())
