"""The sampler on a real process tree: peaks per level, and no NVML here."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from quench.gpu import nvml_handles
from quench.serving.telemetry import Sampler, tree_memory


def test_tree_memory_counts_the_children():
    code = "import time; x = bytearray(64 * 2**20); time.sleep(30)"
    child = subprocess.Popen([sys.executable, "-c", code])
    try:
        time.sleep(1.0)
        alone = tree_memory(child.pid)
        assert alone["rss_mb"] > 64 and alone["pss_mb"] > 0
        assert tree_memory(os.getpid())["rss_mb"] > alone["rss_mb"]  # pytest + its child
    finally:
        child.kill()
        child.wait()


def test_level_peaks_then_a_new_level():
    with Sampler(os.getpid(), interval=0.05) as sampler:
        first = sampler.level_peak()
        assert first["rss_mb"] > 0 and set(first) >= {"rss_mb", "pss_mb"}
        if not nvml_handles():
            assert "gpu_memory_mb" not in first and "power_w_mean" not in first
    assert sampler.peak["rss_mb"] >= first["rss_mb"]


def test_gone_process_gives_nothing():
    proc = subprocess.Popen(["true"])
    proc.wait()
    assert tree_memory(proc.pid) == {}
