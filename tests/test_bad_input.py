"""Bad input through the real CLI: exit code 2, a message naming the problem, nothing left."""

from __future__ import annotations

import shutil

import pytest
from mlflow.tracking import MlflowClient

from .conftest import DEFAULT_RECIPE, run_quench, small_run_args


def test_unknown_key_exits_2_and_writes_nothing(tmp_path):
    result = run_quench("run", str(DEFAULT_RECIPE), *small_run_args(tmp_path / "out"),
                        "quantization.shceme=W4A16")
    assert result.returncode == 2
    assert "quantization.shceme: unknown key" in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("override", "message"), [
    ("compute.max_cpu_memory=1GiB",
     "compute.max_cpu_memory: '1GiB' needs offload_folder"),
    ("compute.max_cpu_memory=lots",
     "compute.max_cpu_memory: String should match pattern"),
])
def test_offload_budget_errors_exit_2_and_write_nothing(override, message, tmp_path):
    result = run_quench("run", str(DEFAULT_RECIPE), *small_run_args(tmp_path / "out"),
                        override)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr, result.stderr
    assert not (tmp_path / "out").exists()


def test_missing_model_path_exits_2(mirror, tmp_path):
    result = run_quench("run", str(DEFAULT_RECIPE), *small_run_args(tmp_path / "out"),
                        f"model.id={tmp_path}/no-model")
    assert result.returncode == 2
    assert f"model.id: {tmp_path}/no-model is not a model folder" in result.stderr
    assert not (tmp_path / "out").exists()


def test_unwritable_output_dir_exits_2(mirror, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = run_quench("validate", str(DEFAULT_RECIPE), f"output.dir={blocker}/out")
    assert result.returncode == 2 and f"output.dir: {blocker}/out is not writable" in result.stderr


@pytest.fixture
def truncated_model(tiny_model, tmp_path):
    """A copy of the tiny model (in the test's temp folder) with its weights cut in half."""
    broken = tmp_path / "broken-model"
    shutil.copytree(tiny_model, broken)
    weights = broken / "model.safetensors"
    data = weights.read_bytes()
    weights.chmod(0o644)
    weights.write_bytes(data[: len(data) // 2])
    return broken


def test_truncated_safetensors_fails_the_run_cleanly(truncated_model, tmp_path):
    out = tmp_path / "out"
    result = run_quench("run", str(DEFAULT_RECIPE), *small_run_args(out),
                        f"model.id={truncated_model}")
    assert result.returncode == 2, result.stderr[-2000:]
    assert "model.safetensors: truncated safetensors file" in result.stderr
    assert "Traceback" not in result.stderr
    # no stage folder, finished or temporary (the lock files under .locks are not entries)
    assert not [p for p in (out / "cache").glob("*/*") if p.parent.name != ".locks"]
    client = MlflowClient(f"sqlite:///{out}/mlflow.db")
    experiment = client.get_experiment_by_name("quench-tinystories")
    runs = client.search_runs([experiment.experiment_id])
    assert [r.info.status for r in runs] == ["FAILED"]
    assert "truncated safetensors" in runs[0].data.tags["quench.error"]


def test_a_hub_id_the_hub_cannot_serve_is_exit_2(tmp_path):
    """Online mode (no mirror, no HF_HUB_OFFLINE), an id that does not exist: whether the Hub is
    unreachable (this machine) or answers 404, the run stops in resolve with a clear message."""
    import os
    import subprocess
    import sys

    from .conftest import REPO

    env = {k: v for k, v in os.environ.items()
           if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE",
                        "QUENCH_MIRROR")}
    env["HF_HOME"] = str(tmp_path / "hf")  # nothing cached
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "quench", "run", str(DEFAULT_RECIPE), *small_run_args(out),
         "model.id=quench-tests/no-such-model"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "model.id: 'quench-tests/no-such-model' could not be fetched from the Hugging Face " \
           "Hub" in result.stderr
    assert "Traceback" not in result.stderr and "unexpected" not in result.stderr
