"""A forbidden recipe stops before calibration: in `quench validate`, `quench run` and the stage."""

from __future__ import annotations

from pathlib import Path

import pytest

from quench.errors import StageError
from quench.recipe import load_recipe
from quench.runner.run import run_pipeline

from ..conftest import DEFAULT_RECIPE, run_quench, small_run_args
from .conftest import write_card


@pytest.fixture
def nc_model(tiny_model: Path, tmp_path: Path) -> Path:
    """The tiny model's real files under a CC-BY-NC-4.0 model card (symlinks, nothing copied)."""
    folder = tmp_path / "nc-model"
    folder.mkdir()
    for f in tiny_model.iterdir():
        if f.name != "SOURCE.md":
            (folder / f.name).symlink_to(f)
    write_card(folder, {"license": "cc-by-nc-4.0"})
    assert (folder / "config.json").is_symlink()
    return folder


def test_validate_rejects_commercial_use_of_a_noncommercial_base(nc_model, tmp_path):
    result = run_quench("validate", str(DEFAULT_RECIPE), f"model.id={nc_model}",
                        f"output.dir={tmp_path / 'out'}")
    assert result.returncode == 2
    assert "cc-by-nc-4.0 allows non-commercial use only" in result.stderr
    assert "CC BY-NC 4.0 s.2(a)(1)" in result.stderr


def test_validate_passes_research_use_with_its_obligations(nc_model, tmp_path):
    result = run_quench("validate", str(DEFAULT_RECIPE), f"model.id={nc_model}",
                        "license.intended_use=research", f"output.dir={tmp_path / 'out'}")
    assert result.returncode == 0, result.stderr


def test_run_stops_before_calibration_and_writes_nothing(nc_model, tmp_path):
    out = tmp_path / "out"
    result = run_quench("run", str(DEFAULT_RECIPE), f"model.id={nc_model}", *small_run_args(out))
    assert result.returncode == 2 and "license" in result.stderr
    assert not (out / "cache").exists()


def test_license_stage_fails_the_pipeline_before_calibrate(nc_model, tmp_path):
    """Without the pre-flight (e.g. a hub card first seen after download), the stage stops it."""
    out = tmp_path / "out"
    recipe = load_recipe(str(DEFAULT_RECIPE), [f"model.id={nc_model}", *small_run_args(out)])
    with pytest.raises(StageError, match="non-commercial use only"):
        run_pipeline(recipe)
    cache = out / "cache"
    assert not (cache / "calibrate").exists() and not (cache / "quantize").exists()
    assert list((cache / "license").iterdir()) == []  # nothing half-written
