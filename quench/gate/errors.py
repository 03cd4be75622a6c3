"""The gate's one error: it cannot decide (exit 2), which is never a pass."""

from __future__ import annotations

from quench.errors import QuenchError


class GateError(QuenchError):
    """The gate cannot decide (missing baseline, metric or pairing, runs that are not
    comparable, an artifact changed after its run): exit 2, never a pass."""
