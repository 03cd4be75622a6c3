"""`quench run --until STAGE` stops after that stage, with nothing later computed or tracked."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import DEFAULT_RECIPE, run_quench, small_run_args


def test_run_until_license_stops_before_calibration(tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run_quench("run", "--until", "license", str(DEFAULT_RECIPE), *small_run_args(out))
    assert result.returncode == 0, result.stderr
    assert "stopped after license" in result.stdout
    cache = out / "cache"
    assert sorted(p.name for p in cache.iterdir() if p.is_dir() and not p.name.startswith(".")
                   and any(p.iterdir())) == [
        "license", "resolve"]
    run = json.loads((out / "tinystories-rtn-w4a16" / "run.json").read_text())
    assert list(run["nodes"]) == ["resolve", "license"]
    assert not (out / "mlflow.db").exists()  # a partial run is not tracked


def test_run_until_an_unknown_stage_is_bad_input(tiny_model: Path, tmp_path: Path) -> None:
    result = run_quench("run", "--until", "licence", str(DEFAULT_RECIPE),
                        *small_run_args(tmp_path / "out"))
    assert result.returncode == 2
    assert "--until: unknown stage 'licence'" in result.stderr
