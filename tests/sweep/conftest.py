"""Sweep files over tiny TinyStories recipes (4 perplexity windows, 8 calibration samples),
written into a temporary folder with their own output folder and MLflow store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO

TINY = {"evaluation": {"perplexity": {"max_windows": 4}},
        "calibration": {"num_samples": 8}}


def tiny_recipe(folder: Path, name: str, extends: str, **extra: Any) -> Path:
    """A recipe extending a bundled one, writing to `folder`/artifacts."""
    data = {"extends": str(REPO / "recipes" / extends), "name": name,
            "output": {"dir": str(folder / "artifacts")}, **TINY, **extra}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def write_sweep(folder: Path, **fields: Any) -> Path:
    """A sweep file over the tiny RTN recipe with the tiny `none` recipe as the baseline."""
    base = tiny_recipe(folder, "base", "tinystories-rtn-w4a16.yaml")
    baseline = tiny_recipe(folder, "baseline", "tinystories-none.yaml")
    data = {"name": "tiny", "base": base.name, "constraints": {"baseline": baseline.name},
            **fields}
    path = folder / "sweep.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture
def sweep_folder(tmp_path: Path, mirror: Path) -> Path:
    return tmp_path
