"""The console of one `quench run`: library output into <run>/quench.log, quench's on the terminal.

Libraries print through many routes: Python logging handlers, the loguru sink on sys.stdout
that llmcompressor installs when imported, warnings, tqdm bars, C code, child processes. All
of them end at file descriptors 1 and 2, so for the run both point at the log file; the stage
view writes to a copy of the terminal's stderr. With verbose, a thread echoes the log there.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import traceback
from pathlib import Path
from types import TracebackType
from typing import TextIO

from rich.console import Console
from rich.text import Text

from quench.errors import QuenchError
from quench.owned_files import owned_fd
from quench.redact import RedactingFormatter, redact, redact_file
from quench.runner.stage_view import Progress

LOG_NAME = "quench.log"
TAIL_LINES = 15
MAX_LINE = 240  # a tail line longer than this is cut (the log has it whole)
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
STAGE_MARK = " INFO quench: stage "  # the stage boundaries Progress logs


def collapse(line: str) -> str:
    """A line as a terminal would leave it: for a tqdm bar (\\r updates), its last state."""
    parts = [p for p in line.rstrip("\r").split("\r") if p.strip()]
    return parts[-1] if parts else ""


def log_tail(path: Path, lines: int = TAIL_LINES, since: str | None = None) -> list[str]:
    """The log's last non-empty lines (bars collapsed, long lines cut), after the last line
    containing `since` when one does, without quench's own stage lines."""
    try:
        raw = path.read_bytes().decode(errors="replace")  # not read_text: it turns \r into \n
        text = [collapse(x) for x in raw.split("\n")]
    except OSError:
        return []
    if since is not None:
        starts = [i for i, x in enumerate(text) if since in x]
        text = text[starts[-1] + 1:] if starts else text
    kept = [x if len(x) <= MAX_LINE else x[: MAX_LINE - 1] + "…" for x in text
            if x.strip() and STAGE_MARK not in x]
    return kept[-lines:]


class _CurrentStderr(logging.StreamHandler):  # type: ignore[type-arg]
    """A handler writing to sys.stderr as it is when a record comes, not when it was made."""

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


class _Echo:
    """With -v: a thread that copies what reaches the log to the terminal, line by line."""

    def __init__(self, path: Path, console: Console) -> None:
        self._file = path.open("rb")
        self._console = console
        self._partial = b""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="quench-log-echo", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(0.2):
            self.drain()

    def drain(self, final: bool = False) -> None:
        """Prints every complete new line (and, when final, the unfinished last one)."""
        with self._lock:
            *lines, self._partial = (self._partial + self._file.read()).split(b"\n")
            if final and self._partial:
                lines, self._partial = [*lines, self._partial], b""
            for raw in lines:
                text = redact(collapse(raw.decode(errors="replace")))
                if (text or not raw) and STAGE_MARK not in text:  # stage lines: shown already
                    self._console.print(Text(text, style="dim"), soft_wrap=True)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.drain(final=True)
        self._file.close()


class RunConsole:
    """Routes a run's library output to its log file and shows the stage view on the terminal.

    On an exception it writes the traceback to the log and, when a stage failed, prints the
    log's path and last lines to stderr; the caller prints the error itself.
    """

    def __init__(self, log_path: Path, verbose: bool = False) -> None:
        self.log_path = log_path
        self.verbose = verbose
        self.progress = Progress()
        self._saved: tuple[int, int] | None = None
        self._terminal: TextIO | None = None
        self._echo: _Echo | None = None
        self._handler: logging.Handler | None = None
        self._root_level = logging.WARNING

    def __enter__(self) -> RunConsole:
        try:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            log = owned_fd(self.log_path, append=True)
            os.ftruncate(log, 0)
        except OSError as exc:
            raise QuenchError(f"output.dir: cannot write {self.log_path} ({exc.strerror})") \
                from None
        _flush()
        self._saved = (os.dup(1), os.dup(2))
        self._terminal = os.fdopen(os.dup(self._saved[1]), "w", buffering=1,
                                   encoding=sys.stderr.encoding or "utf-8", errors="replace")
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        if hasattr(sys.stdout, "reconfigure"):  # library prints reach the log as they happen
            sys.stdout.reconfigure(line_buffering=True)
        console = Console(file=self._terminal)
        self._echo = _Echo(self.log_path, console) if self.verbose else None
        self.progress = Progress(console, before_print=self.flush)
        self._capture_logging()
        logging.getLogger("quench").info("quench %s (pid %d)", " ".join(sys.argv[1:]), os.getpid())
        return self

    def _capture_logging(self) -> None:
        """Root logger at INFO and warnings as log records, onto stderr (the log, unless a stage
        sends its library's output to a file of its own, as lm_eval does)."""
        root = logging.getLogger()
        self._handler = _CurrentStderr()
        self._handler.setFormatter(RedactingFormatter(LOG_FORMAT))
        root.addHandler(self._handler)
        self._root_level = root.level
        root.setLevel(logging.INFO)
        logging.captureWarnings(True)

    def flush(self) -> None:
        """Pushes buffered library output into the log (and, with verbose, to the terminal)."""
        _flush()
        if self._echo is not None:
            self._echo.drain()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        failed = self.progress.failed
        tail: list[str] = []
        try:  # the log may be on a full disk: the terminal must still get the error and path
            _flush()
            tail = log_tail(self.log_path, since=f"quench: stage {failed}: started") \
                if failed else []
            if exc is not None:
                print(f"quench: {type(exc).__name__} (stage {failed or '-'}):", file=sys.stderr)
                print(redact("".join(traceback.format_exception(exc_type, exc, tb))),
                      file=sys.stderr, end="")
                sys.stderr.flush()
        except OSError:
            pass
        finally:
            self._restore()
        with contextlib.suppress(OSError):
            redact_file(self.log_path)  # what libraries printed straight to the file, too
        if failed and tail:
            print(f"{failed} failed; its last log lines ({self.log_path}):", file=sys.stderr)
            print("\n".join(f"  | {line}" for line in tail), file=sys.stderr)
        elif failed:
            print(f"{failed} failed; it logged nothing (log: {self.log_path})", file=sys.stderr)

    def _restore(self) -> None:
        """Logging, file descriptors 1 and 2 and the echo back as they were."""
        _flush()
        if self._echo is not None:
            self._echo.close()
        logging.captureWarnings(False)
        root = logging.getLogger()
        if self._handler is not None:
            root.removeHandler(self._handler)
        root.setLevel(self._root_level)
        if self._saved is not None:
            for fd, saved in zip((1, 2), self._saved, strict=True):
                os.dup2(saved, fd)
                os.close(saved)
            self._saved = None
        if self._terminal is not None:
            self._terminal.close()
            self._terminal = None


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, OSError, ValueError):  # None, closed, gone
            stream.flush()
