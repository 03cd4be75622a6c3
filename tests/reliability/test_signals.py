"""SIGTERM and SIGHUP (docker stop, systemd, Kubernetes, CI time-outs) stop quench the way
Ctrl-C does: the `interrupted` line with the log's path, exit 128 + the signal, the MLflow
run KILLED at once, the log redacted, no temporary entry left; the next run resumes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from quench.shutdown import Interrupted, exit_code, reclaim_signals, shutdown_signals

from ..conftest import DEFAULT_RECIPE, REPO, run_quench, small_run_args

NAME = "tinystories-rtn-w4a16"
TOKEN = "hf_" + "Wq8rT2vLm9XkP4sWn7YbC3dF6gH1jK5aQz"  # the shape of a Hugging Face token


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143),
                                              (signal.SIGHUP, 129)])
def test_each_signal_raises_one_interrupt_with_the_shells_exit_code(signum, code):
    before = signal.getsignal(signum)
    with pytest.raises(Interrupted) as caught, shutdown_signals():
        os.kill(os.getpid(), signum)
        time.sleep(5)  # the handler runs at the next bytecode: this sleep is cut short
    assert caught.value.signum == signum and exit_code(caught.value) == code
    assert signal.getsignal(signum) is before  # the previous handlers are back


def test_a_second_signal_does_not_cut_the_cleanup_short():
    cleaned = False
    with pytest.raises(Interrupted), shutdown_signals():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        finally:
            os.kill(os.getpid(), signal.SIGTERM)  # ignored: the shutdown is under way
            time.sleep(0.05)
            cleaned = True
    assert cleaned


def test_a_signal_quench_was_started_ignoring_stays_ignored():
    """`nohup quench run ...` must survive the terminal's hangup."""
    before = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with shutdown_signals():
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGHUP)
            time.sleep(0.05)
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, before)


def test_quench_takes_its_handlers_back_from_a_library():
    with shutdown_signals():
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(15))  # what ray.init does
        reclaim_signals()
        with pytest.raises(Interrupted):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)


def _log(out: Path) -> Path:
    return out / NAME / "quench.log"


@pytest.mark.e2e
def test_sigterm_mid_run_marks_the_run_killed_and_the_next_run_resumes(mirror, tmp_path):
    args = [*small_run_args(tmp_path), f"description=HF token {TOKEN} pasted by mistake"]
    proc = subprocess.Popen([sys.executable, "-m", "quench", "run", str(DEFAULT_RECIPE), *args],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while "stage quantize: started" not in (_log(tmp_path).read_text(errors="replace")
                                            if _log(tmp_path).is_file() else ""):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "quantize did not start in 300 s"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)

    assert proc.returncode == 143, stderr
    assert f"interrupted (SIGTERM); log: {_log(tmp_path)}" in stderr
    assert "Traceback" not in stderr
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.get_experiment_by_name("quench-tinystories").experiment_id
    [parent] = client.search_runs([experiment], "tags.`quench.recipe` = '" + NAME + "'")
    assert parent.info.status == "KILLED"  # at once, not when the next run finds it
    assert not list((tmp_path / "cache").glob("*/.tmp-*"))
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p.suffix != ".db"]
    assert [p for p in written if TOKEN in p.read_text(errors="replace")] == []

    resumed = run_quench("run", str(DEFAULT_RECIPE), *args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
