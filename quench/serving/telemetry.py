"""What a server holds while it is measured: its process tree's RSS and PSS, and NVML memory
and power where an NVIDIA GPU is present, sampled in a thread every 0.25 s."""

from __future__ import annotations

import threading
from typing import Any

import psutil

from quench.gpu import nvml_handles

MB = 1024 * 1024


class Sampler:
    """Samples the server's process tree (RSS, PSS) and NVML (memory, power) every 0.25 s."""

    def __init__(self, pid: int, interval: float = 0.25) -> None:
        self.pid, self.interval = pid, interval
        self.peak: dict[str, float] = {}
        self.level: dict[str, float] = {}
        self.power: list[float] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._nvml = nvml_handles()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> Sampler:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def level_peak(self) -> dict[str, float]:
        """Peaks since the previous call (and average power), then a new level starts."""
        self._sample()
        with self._lock:
            out = dict(self.level)
            if self.power:
                out["power_w_mean"] = sum(self.power) / len(self.power)
            self.level, self.power = {}, []
        return out

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def _sample(self) -> None:
        values = tree_memory(self.pid)
        if self._nvml:
            values.update(nvml_sample(self._nvml))
        with self._lock:
            for key, value in values.items():
                if key == "power_w":
                    self.power.append(value)
                for store in (self.peak, self.level):
                    store[key] = max(store.get(key, 0.0), value)


def tree_memory(pid: int) -> dict[str, float]:
    """RSS and PSS (shared pages split between the processes) of pid and its descendants, MB."""
    rss = pss = 0.0
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return {}
    for proc in procs:
        try:
            info = proc.memory_full_info()
        except psutil.Error:
            continue
        rss += info.rss / MB
        pss += getattr(info, "pss", info.rss) / MB
    return {"rss_mb": rss, "pss_mb": pss}


def nvml_sample(handles: list[Any]) -> dict[str, float]:
    """Memory used (MB) and power (W) summed over the GPUs."""
    import pynvml

    return {
        "gpu_memory_mb": sum(pynvml.nvmlDeviceGetMemoryInfo(h).used for h in handles) / MB,
        "power_w": sum(pynvml.nvmlDeviceGetPowerUsage(h) for h in handles) / 1000,
    }
