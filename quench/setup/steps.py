"""A setup's steps run one after another: one progress line each, the tools' output in a log."""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from quench import home
from quench.contract.locks import file_lock
from quench.errors import QuenchError

TAIL_LINES = 15


class SetupFailed(QuenchError):
    """A step of `quench setup` failed; the message names the step and the log to read."""


class Steps:
    """Numbered steps of one setup; commands append their output to `log`."""

    def __init__(self, what: str, log: Path, total: int) -> None:
        self.what, self.log, self.total, self.done = what, log, total, 0
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a") as fh:
            fh.write(f"\n##### {what} ({time.strftime('%Y-%m-%d %H:%M:%S')})\n")

    def announce(self, title: str) -> float:
        """Prints the next step's line; its start time."""
        self.done += 1
        print(f"[{self.done}/{self.total}] {title} ...", end="", flush=True)
        with self.log.open("a") as fh:
            fh.write(f"\n### [{self.done}/{self.total}] {title}\n")
        return time.monotonic()

    @staticmethod
    def finish(start: float) -> None:
        print(f" {time.monotonic() - start:.0f} s", flush=True)

    def run(self, title: str, cmd: list[str], env: Mapping[str, str] | None = None) -> None:
        """Runs cmd as the next step; SetupFailed with the log's last lines when it fails."""
        start = self.announce(title)
        with self.log.open("a") as fh:
            fh.write(f"$ {shlex.join(cmd)}\n")
            fh.flush()
            code = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=fh,
                                  stderr=subprocess.STDOUT, env=quiet_env(env)).returncode
        if code != 0:
            print(" failed", flush=True)
            raise SetupFailed(f"{self.what}: {title} failed (exit {code}); the full output is in "
                              f"{self.log}; its last lines:\n{tail(self.log)}")
        self.finish(start)


def quiet_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without pip's version nag and with unbuffered output."""
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PYTHONUNBUFFERED": "1"}
    env.update(extra or {})
    return env


def tail(log: Path, lines: int = TAIL_LINES) -> str:
    """The log's last lines, indented."""
    text = log.read_text(errors="replace").splitlines()[-lines:]
    return "\n".join(f"  {line}" for line in text)


def build_once(target: str, env: Path, state: Callable[[], str],
               build: Callable[[str], None], force: bool) -> Path:
    """Under env's lock: leaves a present env alone (unless force), else build(state); env.

    Every home target works this way, so two setups of one target never build at once."""
    command = home.setup_command(target)
    with file_lock(env.parent / f".lock-{env.name}",
                   on_wait=lambda: print(f"another `{command}` is building {env}; waiting")):
        found = state()
        if found == "present" and not force:
            print(f"{target}: present ({env})")
            return env
        build(found)
    print(f"{target}: ready ({env})")
    return env
