"""One way out for SIGINT, SIGTERM and SIGHUP, so that `docker stop`, systemd, Kubernetes and CI
time-outs get the cleanup Ctrl-C gets: each signal raises `Interrupted` (a KeyboardInterrupt),
which every `except KeyboardInterrupt` and `finally` on the way out already handles (MLflow
run marked KILLED, log redacted, temporaries removed, trials and engine servers stopped)."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
EXIT_SIGINT = 128 + signal.SIGINT  # what a shell reports for a job Ctrl-C stopped: 130
# quench's exit codes when a signal stopped it (a child stopped by one is interrupted, not failed)
SIGNAL_EXIT_CODES = frozenset({128 + s for s in SIGNALS} | {-s for s in SIGNALS})


class Interrupted(KeyboardInterrupt):
    """quench was asked to stop by a signal; its exit code is the shell's 128 + the signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name


def exit_code(exc: KeyboardInterrupt) -> int:
    """128 + the signal that stopped quench (130 for a plain KeyboardInterrupt)."""
    return 128 + exc.signum if isinstance(exc, Interrupted) else EXIT_SIGINT


def describe(exc: KeyboardInterrupt) -> str:
    """`interrupted` plus the signal when it was not Ctrl-C: the line quench prints."""
    if isinstance(exc, Interrupted) and exc.signum != signal.SIGINT:
        return f"interrupted ({exc.signal_name})"
    return "interrupted"


_active: list[Callable[[int, FrameType | None], None]] = []  # the handler of the open block


@contextlib.contextmanager
def shutdown_signals() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP raise Interrupted in the main thread while the block runs.

    The first signal starts the shutdown; later ones are ignored so that the cleanup it started
    (bounded: trials get a grace period, tracking calls a time-out) is not cut short. SIGKILL
    still stops quench at once; the next run resumes from the cache. A signal quench was
    started ignoring stays ignored (`nohup` ignores SIGHUP, a shell's `cmd &` SIGINT). Outside
    the main thread (quench called as a library from a worker thread) nothing changes.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    stopping = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        if stopping.is_set():
            return
        stopping.set()
        raise Interrupted(signum)

    caught = [s for s in SIGNALS if signal.getsignal(s) is not signal.SIG_IGN]
    previous = {s: signal.signal(s, handler) for s in caught}
    _active.append(handler)
    try:
        yield
    finally:
        _active.remove(handler)
        for s, old in previous.items():
            signal.signal(s, old)


def reclaim_signals() -> None:
    """Re-installs quench's handlers after a library replaced them (ray.init makes SIGTERM
    `sys.exit(15)`, which would skip the cleanup)."""
    if _active and threading.current_thread() is threading.main_thread():
        for s in SIGNALS:
            if signal.getsignal(s) is not signal.SIG_IGN:
                signal.signal(s, _active[-1])
