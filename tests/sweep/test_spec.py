"""Bad sweep files end before any trial runs, with exit 2 and a message naming the key."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from quench.cli import main
from tests.sweep.conftest import write_sweep


def _sweep(capsys: pytest.CaptureFixture[str], path: Path, *flags: str) -> tuple[int, str]:
    code = main(["sweep", str(path), *flags])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.mark.parametrize(("fields", "expected"), [
    ({"axez": {}}, "axez"),
    ({"axes": {"quantization.options.group_size": []}}, "at least one value"),
    ({"axes": {"tracking.experiment": ["x"]}}, "the sweep sets this key itself"),
    ({"objective": {"minimize": "speed"}}, "unknown metric 'speed'"),
    ({"objective": {"minimize": "output_tokens_per_s"}}, "use maximize"),
    ({"objective": {"minimize": "size_bytes", "maximize": "output_tokens_per_s"}},
     "exactly one of"),
    ({"strategy": {"kind": "gird"}}, "did you mean `grid`"),
    ({"executor": {"kind": "slurm"}}, "allowed: local, ray"),
    ({"executor": {"kind": "local", "options": {"max_concurrent": 999}}},
     f"machine with {os.cpu_count()} cores"),
    ({"strategy": {"kind": "optuna", "options": {"startup": 3}}}, "startup_trials"),
    ({"constraints": {"gate": {"max_kl": 0.1}}}, "max_kl"),
    ({"constraints": {"gate": {"max_perplexity_increase_pct": None,
                               "max_kl_divergence": None, "max_accuracy_drop": None}}},
     "every threshold is null"),
])
def test_bad_sweep_file_is_exit_2_naming_the_key(sweep_folder: Path, capsys, fields,
                                                 expected: str) -> None:
    code, text = _sweep(capsys, write_sweep(sweep_folder, **fields), "--dry-run")
    assert code == 2, text
    assert "sweep.yaml" in text and expected in text, text
    assert not (sweep_folder / "artifacts" / "sweeps").exists()  # nothing was written


def test_an_impossible_trial_is_named_with_its_point(sweep_folder: Path, capsys) -> None:
    path = write_sweep(sweep_folder, axes={"quantization.scheme": ["W4A16", "W9A16"]})
    code, text = _sweep(capsys, path, "--dry-run")
    assert code == 2
    assert "trial scheme=\"W9A16\"" in text and "quantization.scheme" in text, text


def test_a_grid_larger_than_the_budget_is_refused(sweep_folder: Path, capsys) -> None:
    path = write_sweep(sweep_folder, axes={"quantization.options.group_size": [32, 64, 128]},
                       budget={"max_trials": 2})
    code, text = _sweep(capsys, path, "--dry-run")
    assert code == 2 and "the grid has 3 points" in text and "budget.max_trials" in text


def test_a_missing_baseline_recipe_is_named(sweep_folder: Path, capsys) -> None:
    path = write_sweep(sweep_folder)
    path.write_text(path.read_text().replace("baseline.yaml", "gone.yaml"))
    code, text = _sweep(capsys, path, "--dry-run")
    assert code == 2 and "constraints.baseline" in text and "gone.yaml" in text


def test_dry_run_writes_runnable_trial_recipes(sweep_folder: Path, capsys) -> None:
    from quench.recipe import load_recipe

    path = write_sweep(sweep_folder, variants=[
        {"quantization.method": "rtn"},
        {"quantization.method": "gptq", "quantization.options": {"actorder": "static"}}],
        axes={"quantization.options.group_size": [32, 64]})
    code, text = _sweep(capsys, path, "--dry-run")
    assert code == 0, text
    files = sorted((sweep_folder / "artifacts" / "sweeps" / "tiny" / "trials").glob("*.yaml"))
    recipes = [load_recipe(f) for f in files]
    assert len(recipes) == 4
    combos = {(r.quantization.method, r.quantization.options.group_size) for r in recipes}
    assert combos == {("rtn", 32), ("rtn", 64), ("gptq", 32), ("gptq", 64)}
    gptq = [r for r in recipes if r.quantization.method == "gptq"]
    assert all(r.quantization.options.actorder == "static" for r in gptq)  # variant kept
    assert all(r.tracking.tags["quench.sweep"] == "tiny" for r in recipes)
    assert all(r.name.startswith("tiny-") and r.output.dir.endswith("artifacts")
               for r in recipes)


def test_dry_run_of_a_result_driven_strategy_lists_nothing(sweep_folder: Path, capsys) -> None:
    path = write_sweep(sweep_folder, strategy={"kind": "sensitivity"}, budget={"max_trials": 4})
    code, text = _sweep(capsys, path, "--dry-run")
    assert code == 0 and "picks its trials from measured results" in text, text
    assert not (sweep_folder / "artifacts" / "sweeps" / "tiny" / "trials").exists()
    small = write_sweep(sweep_folder, strategy={"kind": "sensitivity"}, budget={"max_trials": 3})
    code, text = _sweep(capsys, small, "--dry-run")
    assert code == 2 and "budget.max_trials" in text and "needs 4" in text, text
