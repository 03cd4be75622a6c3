"""Reading a run's artifacts back from MLflow (compare and gate read reports and samples)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def download_artifact(client: Any, run_id: str, path: str, tmp: Path) -> Path | None:
    """The run's artifact `path` (file or folder) downloaded under `tmp/<run_id>`, or None when
    the run does not have it or the store cannot hand it over."""
    from mlflow.exceptions import MlflowException

    dest = tmp / run_id
    dest.mkdir(parents=True, exist_ok=True)
    try:
        found = Path(client.download_artifacts(run_id, path, str(dest)))
    except (MlflowException, OSError):
        return None
    return found if found.exists() else None
