"""The one GPU probe: how many CUDA devices there are, their names (NVML) and whether torch
sees any accelerator. Cheap on a CPU host: no torch import where no GPU driver is present."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any


def driver_present() -> bool:
    """An NVIDIA or ROCm kernel driver on this machine (no library loaded)."""
    dev = Path("/dev")
    return (Path("/proc/driver/nvidia").exists() or (dev / "kfd").exists()
            or any(dev.glob("nvidia[0-9]*")))


def cuda_device_count() -> int:
    """CUDA (or ROCm) devices torch sees (CUDA_VISIBLE_DEVICES applies); 0 without importing
    torch where no GPU driver is present, so the pre-flight stays fast on a CPU host."""
    if "torch" not in sys.modules and not driver_present():
        return 0
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def accelerator_present() -> bool:
    """torch sees any accelerator (CUDA, ROCm, XPU, MPS): where llm-compressor onloads to."""
    if "torch" not in sys.modules and not driver_present() and sys.platform != "darwin":
        return False
    import torch

    return torch.accelerator.is_available()


def nvml_handles() -> list[Any]:
    """NVML device handles, or [] where there is no NVIDIA driver."""
    if not driver_present():
        return []
    try:
        import pynvml

        pynvml.nvmlInit()
        return [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
    except Exception:  # no library, no driver, no device: NVML does not exist here
        return []


def gpu_names() -> list[str]:
    """The NVIDIA GPUs' names (NVML), [] on a machine without them."""
    handles = nvml_handles()
    if not handles:
        return []
    import pynvml

    return [str(pynvml.nvmlDeviceGetName(h)) for h in handles]
