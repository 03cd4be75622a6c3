"""A rich progress view: a spinner while a stage runs, one line per stage when it ends."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.table import Table

_STYLE = {"ran": "green", "cached": "cyan", "failed": "red"}


class Progress:
    """Shows each stage as it runs (ran / cached / skipped, elapsed) and a closing table."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.rows: list[tuple[str, str, float]] = []

    @contextmanager
    def stage(self, node: str) -> Iterator[None]:
        start = time.perf_counter()
        with self.console.status(f"[bold]{node}[/bold] running ..."):
            try:
                yield
            except BaseException:
                self.done(node, "failed", time.perf_counter() - start)
                raise

    def done(self, node: str, status: str, elapsed: float) -> None:
        self.rows.append((node, status, elapsed))
        style = _STYLE.get(status, "yellow")
        self.console.print(f"  [{style}]{status:<8}[/{style}] {node:<14} {elapsed:7.2f}s")

    def summary(self, title: str) -> None:
        table = Table(title=title)
        for column in ("stage", "status", "seconds"):
            table.add_column(column)
        for node, status, elapsed in self.rows:
            table.add_row(node, status, f"{elapsed:.2f}")
        self.console.print(table)
