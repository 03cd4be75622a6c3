"""The console of `quench run` through the real CLI: a line per stage, library logs in quench.log.

One GPTQ run (its METRIC lines are llmcompressor's loguru output) is shared; the other runs
reuse its cache folder, so only the stages they change run again.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from quench.runner.graph import node_names

from ..conftest import REPO, run_quench, small_run_args

pytestmark = pytest.mark.e2e
RECIPE = REPO / "recipes" / "tinystories-gptq-w4a16.yaml"
NAME = "tinystories-gptq-w4a16"
STAGE_LINE = re.compile(r"^  (ran|cached|skipped|failed|interrupted) +(\w+) +[\dmhs.]+(  .+)?$")
NOISE = ("METRIC", "alembic", "No accelerator", "mlflow.store", "Traceback", "it/s", "Warning")


def stage_lines(text: str) -> dict[str, str]:
    """node -> its console line, for every stage line in `text`."""
    found = {}
    for line in text.splitlines():
        match = STAGE_LINE.match(line)
        if match:
            assert match[2] not in found, f"two lines for {match[2]}:\n{text}"
            found[match[2]] = line
    return found


@pytest.fixture(scope="module")
def gptq_run(mirror, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    out = tmp_path_factory.mktemp("console")
    result = run_quench("run", str(RECIPE), *small_run_args(out))
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result


def test_default_console_is_one_line_per_stage(gptq_run):
    out, result = gptq_run
    lines = [x for x in result.stderr.splitlines() if x.strip()]
    assert all(STAGE_LINE.match(x) for x in lines), result.stderr  # nothing but stage lines
    shown = stage_lines(result.stderr)
    assert list(shown) == node_names()
    for noise in NOISE:
        assert noise not in result.stderr + result.stdout, noise
    assert result.stdout.splitlines() == [
        f"report: {out / NAME / 'report.md'}",
        next(x for x in result.stdout.splitlines() if x.startswith("mlflow: sqlite:///")),
        next(x for x in result.stdout.splitlines() if x.startswith(
            "mlflow ui: http://127.0.0.1:5000/#/experiments/")),
    ]
    assert re.search(r"^  ran +quantize .*  size [\d.]+ [kM]B, quantized in [\d.]+s$",
                     shown["quantize"])
    assert re.search(r"  perplexity [\d.]+, KL [\d.e-]+, top-1 [\d.]+%$", shown["evaluate"])
    assert re.search(r"  perplexity [\d.]+$", shown["baseline_eval"])
    assert re.search(r"  64 samples, [\d,]+ tokens$", shown["calibrate"])
    assert shown["lm_eval"].startswith("  skipped") and shown["lm_eval"].endswith(
        "  evaluation.lm_eval is not set")


def test_library_logs_go_to_the_run_folder_log(gptq_run):
    out, _ = gptq_run
    log = (out / NAME / "quench.log").read_text()
    assert re.search(r"\| GPTQ \| METRIC - error [\d.]+", log)  # loguru (llmcompressor)
    assert "No accelerator available" in log
    assert "INFO mlflow.store.db.utils: Creating initial MLflow database tables" in log
    assert "UserWarning" in log  # warnings, through logging.captureWarnings
    assert "INFO quench: stage quantize: started" in log
    assert "INFO quench: stage evaluate: ran in " in log


def test_verbose_also_shows_library_logs(gptq_run):
    out, _ = gptq_run
    result = run_quench("-v", "run", str(RECIPE), *small_run_args(out), "--force", "quantize")
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(r"\| GPTQ \| METRIC - error [\d.]+", result.stderr)
    assert "No accelerator available" in result.stderr
    assert list(stage_lines(result.stderr)) == node_names()
    quantize = result.stderr.index("\n  ran      quantize ")
    assert result.stderr.index("METRIC - error") < quantize  # in the order they happened
    assert "METRIC - error" in (out / NAME / "quench.log").read_text()


def test_failing_stage_prints_the_log_path_and_its_tail(gptq_run):
    out, _ = gptq_run
    short = out / "short.txt"  # an empty one is refused before any stage (by validate)
    short.write_text("Once upon a time.\n")
    result = run_quench("run", str(RECIPE), *small_run_args(out),
                        f"evaluation.perplexity.dataset={short}")
    assert result.returncode == 2, result.stderr[-3000:]
    log = out / NAME / "quench.log"
    shown = stage_lines(result.stderr)
    assert list(shown)[-1] == "baseline_eval" and shown["baseline_eval"].startswith("  failed")
    after = result.stderr.split(shown["baseline_eval"], 1)[1].strip().splitlines()
    assert after[0] in (f"baseline_eval failed; its last log lines ({log}):",
                        f"baseline_eval failed; it logged nothing (log: {log})")
    assert all(x.startswith("  | ") for x in after[1:-1]) and len(after) <= 2 + 15
    assert after[-1] == ("error: evaluation.perplexity: the corpus has 6 tokens, fewer than one "
                         "window (256)")
    assert "Traceback" not in result.stderr
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and "StageError: evaluation" in text


def test_unexpected_library_error_is_short_on_the_console(gptq_run):
    """llmcompressor raises ValueError when no module matches: exit 1, tail, traceback in log."""
    out, _ = gptq_run
    result = run_quench("run", str(RECIPE), *small_run_args(out),
                        "quantization.options.targets=[NoSuchModule]")
    assert result.returncode == 1, result.stderr[-3000:]
    log = out / NAME / "quench.log"
    assert "Traceback" not in result.stderr
    assert f"quantize failed; its last log lines ({log}):\n" in result.stderr
    tail = [x for x in result.stderr.splitlines() if x.startswith("  | ")]
    assert 0 < len(tail) <= 15
    assert any("Could not match `NoSuchModule`" in x for x in tail)
    assert result.stderr.rstrip().endswith(
        f"error: unexpected ValueError: GPTQModifier was unable to find any modules to quantize."
        f" Please check quantization `config_groups` and `targets` in recipe\n"
        f"the traceback is in {log}")
    assert "ValueError: GPTQModifier was unable" in log.read_text().split("Traceback", 1)[1]


def test_ctrl_c_is_one_line_and_exit_130(gptq_run):
    out, _ = gptq_run
    cmd = [sys.executable, "-m", "quench", "run", str(RECIPE), *small_run_args(out),
           "--force", "quantize"]
    (out / NAME / "quench.log").unlink(missing_ok=True)  # wait for this run's line, not the last
    proc = subprocess.Popen(  # SIGINT as a terminal delivers it (not ignored, as in `cmd &`)
        cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    log = out / NAME / "quench.log"
    deadline = time.monotonic() + 300
    while "stage quantize: started" not in (log.read_text() if log.is_file() else ""):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "quantize never started"
        time.sleep(0.05)
    time.sleep(1)  # inside the stage: importing or loading
    os.kill(proc.pid, signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    # 130, or killed by SIGINT (a shell shows 130 for both): under `python -m`, CPython 3.11 ends
    # with SIGINT when the interrupt landed inside exec() of a string (dataclasses do that)
    assert proc.returncode in (130, -signal.SIGINT), stderr[-3000:]
    lines = [x for x in stderr.splitlines() if x.strip()]
    assert lines[-1] == f"interrupted; log: {log}"
    assert all(STAGE_LINE.match(x) for x in lines[:-1]), stderr
    assert re.match(r"  interrupted quantize ", lines[-2]), stderr
    assert "Traceback" not in stderr and stdout == ""
    assert "Interrupted: SIGINT" in log.read_text()  # the traceback, in the log only
