"""trust_remote_code: a model with its own code is refused before any stage unless the recipe
allows it, and, allowed, reaches every library that loads it (llm-compressor's oneshot too)."""

from __future__ import annotations

import pytest

from quench.cli import main

from ..conftest import DEFAULT_RECIPE, run_quench, small_run_args
from .custom_code import custom_code_copy


@pytest.fixture
def custom_model(tiny_model, tmp_path):
    return custom_code_copy(tiny_model, tmp_path / "custom-model")


def test_run_refuses_untrusted_code_before_any_stage(custom_model, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["run", str(DEFAULT_RECIPE), *small_run_args(out), f"model.id={custom_model}"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "ships its own Python code" in err and "model.trust_remote_code: true" in err
    assert not out.exists()


@pytest.mark.e2e
def test_trusted_custom_code_runs_end_to_end(custom_model, tmp_path):
    """Before the fix, oneshot's own AutoConfig load refused the model (exit 1)."""
    out = tmp_path / "out"
    result = run_quench("run", str(DEFAULT_RECIPE), *small_run_args(out, max_windows=4),
                        f"model.id={custom_model}", "model.trust_remote_code=true")
    assert result.returncode == 0, result.stderr[-3000:]
    assert (out / "tinystories-rtn-w4a16" / "report.md").is_file()
