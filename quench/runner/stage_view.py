"""The stage view: a spinner while a stage runs, a bar with ETA per long step, a line per stage."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, ProgressColumn, SpinnerColumn, Task, TaskID, TextColumn
from rich.progress import Progress as Bars
from rich.text import Text

from quench import progress as reporting

_STYLE = {"ran": "green", "cached": "cyan", "failed": "red", "interrupted": "red"}
log = logging.getLogger("quench")  # stage boundaries in quench.log, between library lines


def clock(seconds: float) -> str:
    """12.3s, 4m05s, 1h02m: short enough for a stage line."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


class _StepBar(BarColumn):
    """The bar of a step; a stage's own row has none (its spinner and clock say enough)."""

    def render(self, task: Task) -> Text:
        return Text("") if task.fields.get("stage") else super().render(task)


class _Count(ProgressColumn):
    """'12/24 eta 3.0s' for a step with a total, '12' for one without, nothing for a stage."""

    def render(self, task: Task) -> Text:
        if task.fields.get("stage") or (task.total is None and not task.completed):
            return Text("")
        if task.total is None:
            return Text(f"{task.completed:.0f}")
        eta = task.time_remaining
        return Text(f"{task.completed:.0f}/{task.total:.0f}"
                    + ("" if eta is None else f" eta {clock(eta)}"), style="cyan")


class _Elapsed(ProgressColumn):
    """How long the stage or step has been running."""

    def render(self, task: Task) -> Text:
        return Text(clock(task.elapsed or 0.0), style="yellow")


class Progress:
    """Shows each stage as it runs (ran / cached / skipped / failed, elapsed, headline).

    While a stage runs it is the reporter of quench.progress: the steps it starts
    (windows, layers, requests, a server start-up) get a bar under the stage's spinner.
    """

    def __init__(self, console: Console | None = None,
                 before_print: Callable[[], None] | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.failed: str | None = None  # the node that raised (not for Ctrl-C), if one did
        self._before_print = before_print
        self._bars = Bars(SpinnerColumn(), TextColumn("{task.description}"), _StepBar(30),
                          _Count(), _Elapsed(), console=self.console, transient=True,
                          redirect_stdout=False, redirect_stderr=False,
                          # a file or pipe gets the stage lines only (rich would add blanks)
                          disable=not self.console.is_interactive)
        self._steps: list[TaskID] = []

    @contextmanager
    def stage(self, node: str) -> Iterator[None]:
        start = time.perf_counter()
        log.info("stage %s: started", node)
        self._bars.add_task(f"[bold]{node}[/bold]", total=None, stage=True)
        self._bars.start()
        previous = reporting.attach(self)
        try:
            yield
        except BaseException as exc:
            self._close(previous)
            stopped = isinstance(exc, KeyboardInterrupt)
            self.failed = None if stopped else node
            self.done(node, "interrupted" if stopped else "failed", time.perf_counter() - start)
            raise
        self._close(previous)

    def _close(self, previous: reporting.Reporter | None) -> None:
        reporting.attach(previous)
        self._bars.stop()
        for task_id in list(self._bars.task_ids):
            self._bars.remove_task(task_id)
        self._steps.clear()

    def start(self, description: str, total: float | None) -> None:
        self._steps.append(self._bars.add_task(f"  {description}", total=total))

    def advance(self, amount: float) -> None:
        if self._steps:
            self._bars.advance(self._steps[-1], amount)

    def stop(self) -> None:
        if self._steps:
            self._bars.remove_task(self._steps.pop())

    def done(self, node: str, status: str, elapsed: float, detail: str = "") -> None:
        log.info("stage %s: %s in %.2fs%s", node, status, elapsed, f" ({detail})" if detail else "")
        if self._before_print is not None:
            self._before_print()
        style = _STYLE.get(status, "yellow")
        line = f"  [{style}]{status:<8}[/{style}] {node:<16} {clock(elapsed):>7}"
        self.console.print(line + (f"  {escape(detail)}" if detail else ""), highlight=False,
                           soft_wrap=True)  # one line, however narrow the console
