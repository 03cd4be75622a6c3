"""Writes a gate verdict back to MLflow: shared by `quench gate` and the sweep's judge."""

from __future__ import annotations

import sys
from typing import Any


def record_verdict(client: Any, result: Any, text: str) -> None:
    """Tags the candidate run with the verdict and keeps the Markdown as its artifact."""
    from mlflow.entities import RunTag

    run_id = result.candidate.run_id
    client.log_batch(run_id, tags=[RunTag("quench.gate", result.verdict),
                                   RunTag("quench.gate.baseline", result.baseline.run_id)])
    try:
        client.log_text(run_id, text, "gate.md")
    except Exception as exc:  # the verdict is printed either way  # noqa: BLE001
        print(f"warning: could not log gate.md to MLflow ({exc})", file=sys.stderr)
