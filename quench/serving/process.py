"""A server's or client's process life, in one place: a free port on 127.0.0.1, a new session
that dies with quench (PR_SET_PDEATHSIG), a log that starts with the command line, a wait for
`/health` (another port when the first was taken), the log's tail for errors, and the stop of
the whole process group on every way out."""

from __future__ import annotations

import ctypes
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import psutil

from quench import progress
from quench.errors import StageError
from quench.owned_files import open_owned

HOST = "127.0.0.1"
PORT_IN_USE = "Address already in use"


@dataclass(frozen=True)
class Server:
    """A running OpenAI-compatible server: where to reach it and where its log is."""

    base_url: str  # e.g. "http://127.0.0.1:8123" (no trailing /v1)
    model: str  # the served model name, as clients must send it
    pid: int
    log_path: Path


def pick_port(preferred: int | None = None) -> int:
    """`preferred` when it is free on 127.0.0.1, else a free port the kernel chooses."""
    for port in ([int(preferred)] if preferred else []) + [0]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((HOST, port))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise StageError(f"no free TCP port on {HOST}")


def venv_environ(env_dir: Path, **extra: str) -> dict[str, str]:
    """This process's variables for a tool of another venv: its bin/ first, offline, unbuffered."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    env.update(PATH=f"{env_dir / 'bin'}{os.pathsep}{env.get('PATH', '')}",
               VIRTUAL_ENV=str(env_dir), PYTHONUNBUFFERED="1",
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")  # a local folder: nothing to fetch
    env.update(extra)
    return env


def start(cmd: list[str], cwd: Path, env: Mapping[str, str] | None, log_path: Path
          ) -> subprocess.Popen[bytes]:
    """cmd in a new session (its pid is the group id), output to log_path after `$ cmd`."""
    with open_owned(log_path, "wb") as log:
        log.write(("$ " + shlex.join(cmd) + "\n").encode())
        log.flush()
        return subprocess.Popen(cmd, cwd=cwd, env=None if env is None else dict(env),
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, preexec_fn=_die_with_parent)


@contextmanager
def running(cmd: list[str], cwd: Path, env: Mapping[str, str] | None,
            log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """start(), and the whole process group stopped however the block ends."""
    proc = start(cmd, cwd, env, log_path)
    try:
        yield proc
    finally:
        stop_process_group(proc)


def run_logged(cmd: list[str], cwd: Path, env: Mapping[str, str] | None, log_path: Path,
               what: str, timeout: float | None = None) -> int:
    """Runs cmd to its end (StageError after timeout s); its exit code. Nothing is left."""
    with running(cmd, cwd, env, log_path) as proc:
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise StageError(f"{what} took over {timeout:.0f} s; log {log_path}") from None


def check_logged(cmd: list[str], cwd: Path, env: Mapping[str, str] | None, log_path: Path,
                 what: str, timeout: float | None = None) -> None:
    """run_logged(), and a StageError with the log's tail when it fails."""
    code = run_logged(cmd, cwd, env, log_path, what, timeout)
    if code != 0:
        raise StageError(f"{what} failed (exit {code}); last lines of {log_path}:\n"
                         f"{log_tail(log_path)}")


@contextmanager
def serving(command: Callable[[int], list[str]], what: str, cwd: Path,
            env: Mapping[str, str] | None, log_path: Path, timeout: float,
            preferred_port: int | None = None, attempts: int = 3,
            poll: float = 0.5) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """command(port) started and healthy (a new port when another process took it first);
    yields (process, port); the process group is stopped however the block ends."""
    proc: subprocess.Popen[bytes] | None = None
    try:
        for _attempt in range(attempts):
            port = pick_port(preferred_port)
            proc = start(command(port), cwd, env, log_path)
            with progress.task(f"{what} starting"):
                if wait_healthy(proc, port, timeout, log_path, what, poll):
                    break
            stop_process_group(proc)
        else:
            raise StageError(f"{what}: no free port after {attempts} attempts; log {log_path}")
        yield proc, port
    finally:
        if proc is not None:
            stop_process_group(proc)


def wait_healthy(proc: subprocess.Popen[bytes], port: int, timeout: float, log_path: Path,
                 what: str = "server", poll: float = 0.5) -> bool:
    """True once /health answers 200; False if the port was taken; StageError otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = proc.poll()
        if code is not None:
            if PORT_IN_USE in log_path.read_text(errors="replace"):
                return False
            raise StageError(f"{what} exited with code {code} during start-up; last lines of "
                             f"{log_path}:\n{log_tail(log_path)}")
        if healthy(f"http://{HOST}:{port}"):
            return True
        time.sleep(poll)
    raise StageError(f"{what} not healthy after {timeout:.0f} s (target.options."
                     f"startup_timeout_s); last lines of {log_path}:\n{log_tail(log_path)}")


def healthy(base_url: str) -> bool:
    """True when the server's /health answers 200."""
    try:
        with urllib.request.urlopen(f"{base_url}/health", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def alive(server: Server) -> bool:
    """The server's leader is running (not a zombie) and answers /health."""
    try:
        up = psutil.Process(server.pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        up = False
    return up and healthy(server.base_url)


def group_processes(pgid: int) -> list[psutil.Process]:
    """Live (not zombie) processes in process group pgid."""
    found = []
    for proc in psutil.process_iter(["status"]):
        with suppress(psutil.Error, OSError):
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                found.append(proc)
    return found


def stop_process_group(proc: subprocess.Popen[bytes], grace: float = 20) -> None:
    """SIGTERM to the process group, SIGKILL after `grace` s; returns when none is left."""
    pgid = proc.pid  # the leader of its own session (start_new_session=True)
    strays: list[psutil.Process] = []
    with suppress(psutil.Error):  # descendants, in case one left the group
        strays = psutil.Process(proc.pid).children(recursive=True)
    if not _signal_and_wait(proc, pgid, signal.SIGTERM, grace):
        _signal_and_wait(proc, pgid, signal.SIGKILL, 30)
    for stray in strays:
        with suppress(psutil.Error):
            stray.kill()
    psutil.wait_procs(strays, timeout=10)


def _signal_and_wait(proc: subprocess.Popen[bytes], pgid: int, sig: int, timeout: float) -> bool:
    """Signals the group; True once the leader is reaped and no live member remains."""
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
    deadline = time.monotonic() + timeout
    while True:
        with suppress(subprocess.TimeoutExpired):
            proc.wait(0.2)
        if proc.returncode is not None and not group_processes(pgid):
            return True
        if time.monotonic() > deadline:
            return False


def log_tail(path: Path, lines: int = 25) -> str:
    """The log's last lines, without the interpreter's shutdown noise; the error line first."""
    text = path.read_text(errors="replace").splitlines() if path.is_file() else []
    kept = [x for x in text if "leaked" not in x and not x.lstrip().startswith("- ")]
    errors = [x for x in kept if "Error:" in x or "Error(" in x]
    tail = kept[-lines:]
    head = [f"  error: {errors[-1].strip()}"] if errors and errors[-1] not in tail else []
    return "\n".join(head + ["  " + x for x in tail])


if sys.platform == "linux":
    _PRCTL = ctypes.CDLL(None, use_errno=True).prctl  # looked up before any fork

    def _die_with_parent() -> None:
        """In the child: SIGTERM when quench dies, even by SIGKILL (PR_SET_PDEATHSIG)."""
        _PRCTL(1, signal.SIGTERM)
else:  # pragma: no cover
    _die_with_parent = None  # type: ignore[assignment]
