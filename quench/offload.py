"""Disk offload for models bigger than the host's RAM: compressed-tensors' offloaded loading.

With `compute.offload_folder` set, a stage loads its model through compressed-tensors'
`load_offloaded_model` (llm-compressor's documented way for models larger than host RAM): up
to `compute.max_cpu_memory` of weights stay in RAM and the rest on disk, as meta tensors
read back one module at a time when a forward pass (or llm-compressor's sequential pipeline)
reaches them. Each stage gets its own sub-folder, removed when the stage ends: offloaded
weights that a method updates are written there, and nothing in it outlives the stage.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from quench.units import parse_size

# transformers gathers a whole shard of an offloaded model in RAM before writing it: while
# offloading, quantized checkpoints are written in shards of at most this size
OFFLOAD_SHARD_SIZE = "500MB"


@dataclass(frozen=True)
class Offload:
    """Where one stage offloads its model, and how much of it may stay in host RAM."""

    folder: Path
    max_cpu_bytes: int | None  # None: compressed-tensors' default (available RAM - 5 GB)

    def load_kwargs(self, device: str, accelerator_bytes: int | None = None) -> dict[str, Any]:
        """from_pretrained's placement: CPU then disk (`auto_offload`), or on a CUDA device the
        accelerator first, then CPU, then disk (`auto` with every tier's budget)."""
        kwargs: dict[str, Any] = {"offload_folder": str(self.folder)}
        if device == "cpu":
            kwargs["device_map"] = "auto_offload"
            if self.max_cpu_bytes is not None:
                kwargs["max_memory"] = {"cpu": self.max_cpu_bytes}
            return kwargs
        kwargs["device_map"] = "auto"
        if self.max_cpu_bytes is not None:
            index = int(device.partition(":")[2] or 0)
            if accelerator_bytes is None:
                import torch

                accelerator_bytes = int(torch.cuda.mem_get_info(index)[0])
            kwargs["max_memory"] = {index: accelerator_bytes, "cpu": self.max_cpu_bytes}
        return kwargs


class OffloadSettings(Protocol):
    """A recipe's `compute` section, as far as offloading goes."""

    offload_folder: str | None
    max_cpu_memory: str | None


@contextlib.contextmanager
def stage_offload(settings: OffloadSettings, stage: str) -> Iterator[Offload | None]:
    """The stage's own offload sub-folder (None when offloading is off), removed afterwards."""
    if not settings.offload_folder:
        yield None
        return
    folder = Path(settings.offload_folder).resolve() / f"{stage}-{os.getpid()}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    budget = parse_size(settings.max_cpu_memory) if settings.max_cpu_memory else None
    try:
        yield Offload(folder, budget)
    finally:
        shutil.rmtree(folder, ignore_errors=True)

def offloaded_bytes(model: Any) -> int:
    """Bytes of the model's weights that live on disk (0 when nothing was offloaded)."""
    from compressed_tensors.offload import get_offloaded_device
    from compressed_tensors.offload.utils import module_size

    return sum(module_size(m, recurse=False) for m in model.modules()
               if get_offloaded_device(m, None) == "disk")
