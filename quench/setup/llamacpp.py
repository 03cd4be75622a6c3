"""`quench setup llama.cpp`: llama.cpp's CPU tools built from the registry's pinned sources.

The registry has no llama.cpp binaries; the `llama-cpp-python` source distribution vendors the
whole llama.cpp tree (tools, `convert_hf_to_gguf.py`, `gguf-py`). quench downloads that sdist,
checks its sha256, builds four tools with CMake and keeps them with the converter that matches
them in `$QUENCH_HOME/envs/llama.cpp/`. A build is tied to the CPU it was made on
(`GGML_NATIVE`): its marker records the CPU's flags, and another CPU rebuilds.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from quench import home
from quench.errors import QuenchError
from quench.llamacpp.tools import ENGINE, TOOLS, tool_path
from quench.owned_files import write_atomic
from quench.setup.envs import read_marker
from quench.setup.steps import Steps, build_once

SDIST = "llama-cpp-python==0.3.36"  # vendors llama.cpp 0c1e5709 and gguf-py 0.19.0
SDIST_SHA256 = "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
KEPT = ("convert_hf_to_gguf.py", "conversion", "gguf-py", "LICENSE", "requirements")
CMAKE_FLAGS = ("-DCMAKE_BUILD_TYPE=Release", "-DGGML_NATIVE=ON", "-DLLAMA_CURL=OFF",
               "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF",
               "-DBUILD_SHARED_LIBS=OFF")
CUDA_FLAGS = ("-DGGML_CUDA=ON",)  # a GPU host with the CUDA toolkit (nvcc) on PATH
# The CPU flags GGML_NATIVE compiles for: another set on the same home means another build.
CPU_FLAGS = ("avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
             "avx512_bf16", "amx_tile", "asimd", "sve")


def host_cpu_flags() -> tuple[str, ...]:
    """The flags of CPU_FLAGS this CPU has (from /proc/cpuinfo; empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return ()
    found: set[str] = set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            found.update(line.split(":", 1)[1].split())
    return tuple(f for f in CPU_FLAGS if f in found)


@dataclass(frozen=True)
class LlamaCppSpec:
    """What a llama.cpp build is made of; recorded in its marker and compared next time."""

    sdist: str = SDIST
    sha256: str = SDIST_SHA256
    tools: tuple[str, ...] = TOOLS
    cmake_flags: tuple[str, ...] = CMAKE_FLAGS
    cpu_flags: tuple[str, ...] = field(default_factory=host_cpu_flags)

    def recorded(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def llamacpp_spec(cuda: bool = False) -> LlamaCppSpec:
    return LlamaCppSpec(cmake_flags=CMAKE_FLAGS + (CUDA_FLAGS if cuda else ()))


def llamacpp_state(env: Path, spec: LlamaCppSpec | None = None) -> str:
    """missing, incomplete (no marker), present, or other-spec (another version, flags or CPU)."""
    if not env.exists():
        return "missing"
    marker = read_marker(env)  # the same marker file and reading as the engine venvs'
    if marker is None:
        return "incomplete"
    if spec is None or marker.get("spec") == spec.recorded():
        return "present"
    return "other-spec"


def setup_llamacpp(spec: LlamaCppSpec, env: Path, force: bool = False) -> Path:
    """The tools built (or left alone when present with this spec); returns env."""

    def build(state: str) -> None:
        _clear(env, state)
        steps = Steps(home.setup_command(ENGINE), home.logs_dir() / f"setup-{ENGINE}.log", 6)
        print(f"{ENGINE}: building {env} ({state}); tool output: {steps.log}")
        env.mkdir(parents=True)
        with tempfile.TemporaryDirectory(prefix=".build-", dir=env) as work:
            _build(spec, env, Path(work), steps)

    return build_once(ENGINE, env, lambda: llamacpp_state(env, spec), build, force)


def _clear(env: Path, state: str) -> None:
    """Removes what a previous build left; refuses a link or a folder that is not a build."""
    if env.is_symlink():
        raise QuenchError(f"{env} is a link to {env.resolve()} ({state}); quench does not "
                          "rebuild through a link: remove the link")
    if state == "missing":
        return
    known = {"bin", "src", home.ENV_MARKER}
    strangers = [p.name for p in env.iterdir() if p.name not in known
                 and not p.name.startswith(".build-")]
    if strangers:
        raise QuenchError(f"{env} holds {sorted(strangers)[:5]}, which no llama.cpp build of "
                          "quench made; not replaced (move it away)")
    shutil.rmtree(env)


def _build(spec: LlamaCppSpec, env: Path, work: Path, steps: Steps) -> None:
    steps.run(f"download {spec.sdist} (sources)",
              [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
               "--progress-bar", "off", "-d", str(work / "dl"), spec.sdist])
    start = steps.announce("check its sha256 and unpack vendor/llama.cpp")
    unpacked = _unpack(_checked(work / "dl", spec.sha256), work / "src")
    source = unpacked / "vendor" / "llama.cpp"
    steps.finish(start)
    build = work / "build"
    steps.run("configure (cmake)", ["cmake", "-S", str(source), "-B", str(build),
                                    *(["-G", "Ninja"] if shutil.which("ninja") else []),
                                    *spec.cmake_flags])
    steps.run(f"build {', '.join(spec.tools)} (a few minutes)",
              ["cmake", "--build", str(build), "--parallel", str(os.cpu_count() or 1),
               "--target", *spec.tools])
    start = steps.announce("keep the tools and the converter")
    _keep(spec, source, build, env)
    steps.finish(start)
    start = steps.announce("check the tools run and record what was built")
    record = {"spec": spec.recorded(), "command": home.setup_command(ENGINE),
              "commit": _vendored_commit(unpacked), "version": tools_version(env)}
    write_atomic(home.env_marker(env), json.dumps(record, indent=2, sort_keys=True))
    steps.finish(start)


def _checked(folder: Path, sha256: str) -> Path:
    """The one archive pip downloaded, if its sha256 is the pinned one."""
    [archive] = list(folder.iterdir())
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    if digest != sha256:
        raise QuenchError(f"{archive.name}: sha256 {digest}, expected {sha256} (the pinned "
                          "sources); nothing was built")
    return archive


def _unpack(archive: Path, dest: Path) -> Path:
    """The sdist unpacked into dest (tar's data filter: no links out); its top folder."""
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="data")
    [top] = list(dest.iterdir())
    return top


def _keep(spec: LlamaCppSpec, source: Path, build: Path, env: Path) -> None:
    """bin/<tool> and src/<converter, gguf-py, LICENSE> moved into env."""
    (env / "bin").mkdir()
    for tool in spec.tools:
        shutil.move(build / "bin" / tool, tool_path(tool, env))
    (env / "src").mkdir()
    for name in KEPT:
        shutil.move(source / name, env / "src" / name)


def _vendored_commit(unpacked: Path) -> str | None:
    """The llama.cpp commit the sdist vendors (its git metadata), if it says."""
    head = unpacked / ".git" / "modules" / "vendor" / "llama.cpp" / "HEAD"
    return head.read_text().strip() if head.is_file() else None


def tools_version(env: Path) -> str:
    """`llama-server --version`'s first line (the build number and commit); fails if it fails."""
    done = subprocess.run([str(tool_path("llama-server", env)), "--version"],
                          capture_output=True, text=True, timeout=60)
    lines = (done.stdout + done.stderr).strip().splitlines()
    if done.returncode != 0:
        raise QuenchError(f"{tool_path('llama-server', env)} --version failed (exit "
                          f"{done.returncode}): {' '.join(lines[-5:])}")
    return lines[0] if lines else ""
