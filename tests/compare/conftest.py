"""Two real pipeline runs of the tiny model in one MLflow store: the fp32 baseline (no lm-eval)
and W4A16 RTN with one small lm-eval task, so compare sees a measured section and an absent one."""

from __future__ import annotations

from pathlib import Path

import pytest

from ..conftest import REPO, run_id_of, run_quench, small_run_args

EXPERIMENT = "quench-tinystories"  # recipes/base/tinystories.yaml
LM_EVAL = "evaluation.lm_eval={tasks: [arc_easy], limit: 20}"


def small(out: Path) -> list[str]:
    return small_run_args(out, max_windows=8)


@pytest.fixture(scope="session")
def two_runs(mirror, tmp_path_factory) -> dict[str, object]:
    out = tmp_path_factory.mktemp("compare")
    ids: dict[str, object] = {"out": out, "uri": f"sqlite:///{out}/mlflow.db"}
    for name, extra in (("tinystories-none", []), ("tinystories-rtn-w4a16", [LM_EVAL])):
        result = run_quench("run", str(REPO / "recipes" / f"{name}.yaml"), *small(out), *extra)
        assert result.returncode == 0, result.stderr[-3000:]
        ids[name] = run_id_of(result)
    return ids


@pytest.fixture
def cli(capsys):
    """The `quench` entry point in this process (one MLflow import for all calls)."""
    from quench.cli import main

    def call(*args: str) -> tuple[int, str, str]:
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return call
