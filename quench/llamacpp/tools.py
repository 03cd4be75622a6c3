"""Where llama.cpp's tools are, whether they are usable, and one way to run them (output to a
log file, a failure named with the log's last lines)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from quench import home
from quench.errors import QuenchError

ENGINE = "llama.cpp"  # the quench home entry and `quench setup` target
TOOLS = ("llama-quantize", "llama-imatrix", "llama-perplexity", "llama-server")


class ToolFailed(QuenchError):
    """A llama.cpp tool exited non-zero; the message names it and ends with its log's tail."""


def env_dir() -> Path:
    """The build `quench setup llama.cpp` makes: bin/ (the tools) and src/ (the converter)."""
    return home.env_dir(ENGINE)


def tool_path(tool: str, env: Path | None = None) -> Path:
    return (env or env_dir()) / "bin" / tool


def converter_path(env: Path | None = None) -> Path:
    return (env or env_dir()) / "src" / "convert_hf_to_gguf.py"


def gguf_py_path(env: Path | None = None) -> Path:
    """The gguf-py the converter was released with (the converter imports it)."""
    return (env or env_dir()) / "src" / "gguf-py"


def unavailable_reason(env: Path | None = None) -> str | None:
    """Why the tools cannot run here ("... run `quench setup llama.cpp`"), or None."""
    env = env or env_dir()
    if not home.env_marker(env).is_file():
        state = "incomplete" if env.exists() else "missing"
        return f"llama.cpp tools {env} {state}: run `{home.setup_command(ENGINE)}`"
    missing = [t for t in TOOLS if not tool_path(t, env).is_file()]
    if missing or not converter_path(env).is_file():
        return (f"llama.cpp tools {env} lack {', '.join(missing) or 'the converter'}: run "
                f"`{home.setup_command(ENGINE)} --force`")
    return None


def build_version(env: Path | None = None) -> str:
    """The build's version line as its marker records it ("" when not built)."""
    marker = home.env_marker(env or env_dir())
    if not marker.is_file():
        return ""
    return str(json.loads(marker.read_text()).get("version", ""))


def run(args: list[str | Path], log: Path, what: str, timeout: float | None = None,
        python: bool = False) -> str:
    """Runs a tool (or, python=True, a script of the build with its gguf-py) with its output
    appended to `log`; returns that output; ToolFailed names `what` and the last lines."""
    command = [sys.executable, *map(str, args)] if python else [str(a) for a in args]
    env = {**os.environ}
    if python:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(gguf_py_path()),
                                                          env.get("PYTHONPATH")]))
    log.parent.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env,
                              errors="replace")
    except subprocess.TimeoutExpired:
        raise ToolFailed(f"{what}: still running after {timeout:.0f} s, stopped") from None
    output = done.stdout + done.stderr
    with log.open("a") as f:
        f.write(f"$ {' '.join(command)}\n{output}\n")
    if done.returncode != 0:
        tail = " | ".join(output.strip().splitlines()[-6:])
        raise ToolFailed(f"{what} failed (exit {done.returncode}; log {log}): {tail}")
    return output
