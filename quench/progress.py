"""Progress of long steps (windows, layers, requests, a server start-up), free of heavy imports.

Stages and metrics call `task(...)` and `advance()`; whoever shows progress (the run's console,
quench/runner/stage_view.py) attaches a Reporter. Nothing is attached: both are no-ops.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol


class Reporter(Protocol):
    """What a progress display implements; tasks nest, advance() counts on the innermost."""

    def start(self, description: str, total: float | None) -> None: ...

    def advance(self, amount: float) -> None: ...

    def stop(self) -> None: ...


_reporter: Reporter | None = None


def attach(reporter: Reporter | None) -> Reporter | None:
    """Makes `reporter` receive every task (None: none); returns the one it replaces."""
    global _reporter
    previous, _reporter = _reporter, reporter
    return previous


@contextmanager
def task(description: str, total: float | None = None) -> Iterator[None]:
    """A step with `total` units (None: unknown, shown as a spinner with its elapsed time)."""
    reporter = _reporter
    if reporter is None:
        yield
        return
    reporter.start(description, total)
    try:
        yield
    finally:
        reporter.stop()


def advance(amount: float = 1) -> None:
    """`amount` more units of the innermost running task are done."""
    if _reporter is not None:
        _reporter.advance(amount)


def human_bytes(n: float) -> str:
    """Bytes in the largest unit that keeps the number below 1000 (950 B, 1.2 MB, 3.4 GB)."""
    units, i = ("B", "kB", "MB", "GB", "TB"), 0
    while n >= 1000 and i < len(units) - 1:
        n, i = n / 1000, i + 1
    return f"{n:.0f} B" if i == 0 else f"{n:.1f} {units[i]}"
