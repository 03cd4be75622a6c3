"""Where stages compute: the resolved device and dtype, and each stage's peak memory.

`compute.device: auto` means CUDA when torch sees a device, else the CPU; `model.dtype: auto`
means the checkpoint's own `torch_dtype`. Both are resolved once per stage from what is on
this machine and on disk, and the resolved values (not "auto") enter the cache keys.
"""

from __future__ import annotations

import contextlib
import json
import resource
from pathlib import Path
from typing import Any

from quench.errors import QuenchError
from quench.gpu import cuda_device_count

DTYPES = ("float32", "bfloat16", "float16")
GGUF_AUTO_DTYPE = "bfloat16"  # a GGUF file records no torch dtype; its sources mostly are bf16


class DeviceUnavailable(QuenchError):
    """The recipe asks for a CUDA device this machine lacks: an error for `run`, a warning for
    `validate` (the recipe may be meant for a GPU host)."""


def resolve_device(setting: str) -> str:
    """`auto` -> "cuda:0" when torch sees a CUDA device, else "cpu"; cuda -> cuda:0."""
    if setting == "cpu":
        return "cpu"
    count = cuda_device_count()
    if setting == "auto":
        return "cuda:0" if count else "cpu"
    index = int(setting.partition(":")[2] or 0)
    if index >= count:
        raise DeviceUnavailable(f"compute.device: {setting!r} but this machine has {count} CUDA "
                          "device(s); allowed: auto, cpu" + (", cuda:0.." if count else ""))
    return f"cuda:{index}"




def checkpoint_dtype(config: dict[str, Any]) -> str:
    """The dtype a config.json records (`torch_dtype`, or `dtype` in transformers 5)."""
    value = str(config.get("torch_dtype") or config.get("dtype") or "float32")
    return value.removeprefix("torch.") if value.removeprefix("torch.") in DTYPES else "float32"


def resolve_dtype(setting: str, model_dir: Path | None = None,
                  config: dict[str, Any] | None = None) -> str:
    """`auto` -> the checkpoint's dtype (from `config`, or `model_dir`/config.json)."""
    if setting != "auto":
        return setting
    if config is None:
        try:
            config = json.loads((Path(model_dir) / "config.json").read_text())
        except (OSError, ValueError, TypeError):
            return "float32"
    return checkpoint_dtype(config)


# -- peak memory of one stage ------------------------------------------------------------------

def reset_peak_memory() -> None:
    """Starts a new peak: Linux's VmHWM (writing 5 to clear_refs) and torch's CUDA counter."""
    with contextlib.suppress(OSError):  # not Linux or not allowed: the process-wide peak
        Path("/proc/self/clear_refs").write_text("5")
    if cuda_device_count():
        import torch

        torch.cuda.reset_peak_memory_stats()


def peak_memory() -> dict[str, int | None]:
    """Host peak RSS since the last reset (bytes) and the CUDA allocator's peak (None: no GPU)."""
    rss = None
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                rss = int(line.split()[1]) * 1024
    except OSError:
        pass
    if rss is None:
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    accelerator = None
    if cuda_device_count():
        import torch

        accelerator = int(torch.cuda.max_memory_allocated())
    return {"peak_rss_bytes": rss, "accelerator_peak_bytes": accelerator}


PHASE_PEAK_PREFIX = "phase_peak_rss_mb_"  # a stage's metrics: the peak of each of its phases


class PhasePeaks:
    """The peak RSS of each phase of a stage (quantize: load, quantize, save, reload), so that
    the memory model can be checked phase by phase: end() reads the peak since the previous
    phase and starts a new one. The runner's stage_peak_rss_mb is the largest of them and of
    what came after the last phase."""

    def __init__(self) -> None:
        self.peaks_mb: dict[str, float] = {}

    def end(self, phase: str) -> None:
        self.peaks_mb[phase] = round(peak_memory()["peak_rss_bytes"] / 2**20, 1)
        reset_peak_memory()

    def metrics(self) -> dict[str, float]:
        return {PHASE_PEAK_PREFIX + phase: mb for phase, mb in self.peaks_mb.items()}


M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number
MMAP_THRESHOLD_BYTES = 1 << 20


def pin_mmap_threshold() -> None:
    """Serves every allocation of 1 MiB or more with its own mmap, returned to the OS when freed.

    glibc raises its mmap threshold each time a large mmapped block is freed (up to 32 MiB),
    after which tensors of that size come from the heap, whose freed holes it keeps: loading a
    compressed 2.2 GB checkpoint dense peaked at 3.1 or 4.1 GiB from run to run (4.1 GiB when
    decompression's temporaries left such holes), and 3.0 GiB every time with the threshold
    pinned (bench/scaling.py). Setting it disables the dynamic adjustment; not glibc: a no-op.
    """
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)


def release_memory() -> None:
    """Returns freed memory to the OS between stages: Python's garbage, torch's CUDA cache, and
    glibc's heap (after big frees glibc keeps pages, which would count against later stages)."""
    import ctypes
    import gc

    gc.collect()
    if cuda_device_count():
        import torch

        torch.cuda.empty_cache()
    with contextlib.suppress(OSError, AttributeError):  # not glibc
        ctypes.CDLL("libc.so.6").malloc_trim(0)
