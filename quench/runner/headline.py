"""The few words a stage's console line ends with: its skip reason or the stage's headline."""

from __future__ import annotations

from quench.contract.manifest import Manifest
from quench.contract.stage import Stage

MAX_REASON = 110  # a skip reason longer than this is cut (the report has it whole)


def headline(stage: Stage, manifest: Manifest) -> str:
    """A short summary of `manifest` for the console; '' when there is nothing worth a glance."""
    if manifest.skipped:
        reason = manifest.status.partition(":")[2].strip()
        return reason if len(reason) <= MAX_REASON else reason[: MAX_REASON - 1] + "…"
    return stage.headline(manifest)
