"""One trial as a job any executor can run: an ordinary `quench run` of a written recipe file,
in its own process group, with a timeout, a log and what it produced read back from disk."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from quench.serving.process import log_tail, running
from quench.shutdown import SIGNAL_EXIT_CODES

FINISHED, FAILED, TIMEOUT, INTERRUPTED = "finished", "failed", "timeout", "interrupted"


@dataclass(frozen=True)
class TrialJob:
    """What an executor needs to run a trial; plain data, so it pickles to a Ray worker."""

    trial_id: str  # "t003"
    run_name: str  # the trial recipe's name (its run folder and MLflow run name)
    recipe_path: str  # the written trial recipe, absolute
    run_dir: str  # <output.dir>/<run_name>, absolute: report.json and run.json land there
    log_path: str  # the trial's console and library log, absolute
    cwd: str  # where relative paths in the recipe resolve (the sweep's working directory)
    timeout_s: float | None = None
    env: dict[str, str] = field(default_factory=dict)  # extra variables for the trial process


@dataclass
class TrialOutcome:
    """How a trial ended and what it left: the report and run record are collected back."""

    trial_id: str
    status: str  # finished, failed, timeout or interrupted
    exit_code: int | None
    seconds: float
    error: str | None = None
    report: dict[str, Any] | None = None  # report.json
    run_info: dict[str, Any] | None = None  # run.json (the cache folder of every node)
    tracking: dict[str, Any] = field(default_factory=dict)  # the track stage's outputs
    host: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def trial_command(job: TrialJob) -> list[str]:
    """The command a trial runs: the same `quench run` a user would type for that recipe."""
    return [sys.executable, "-m", "quench", "run", job.recipe_path]


def run_trial(job: TrialJob,
              on_start: Callable[[subprocess.Popen[bytes]], None] | None = None) -> TrialOutcome:
    """Runs the trial to its end or its timeout; never raises for a failing trial.
    `on_start` gets the process (a parallel executor stops it on Ctrl-C)."""
    env = {**os.environ, **job.env, "PYTHONUNBUFFERED": "1"}
    log = Path(job.log_path)
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    status, code, error = FINISHED, None, None
    with running(trial_command(job), Path(job.cwd), env, log) as proc:
        if on_start is not None:
            on_start(proc)
        try:
            code = proc.wait(job.timeout_s)
        except subprocess.TimeoutExpired:
            status, error = TIMEOUT, f"timed out after {job.timeout_s:.0f} s (the trial's " \
                                     "processes were stopped)"
    seconds = round(time.monotonic() - start, 3)
    if status == FINISHED and code != 0:
        status = INTERRUPTED if code in SIGNAL_EXIT_CODES else FAILED
        error = _error_line(log) or f"exit code {code}"
    outcome = TrialOutcome(job.trial_id, status, code, seconds, error, host=os.uname().nodename)
    if status == FINISHED:
        collect(job, outcome)
    return outcome


def collect(job: TrialJob, outcome: TrialOutcome) -> None:
    """Reads report.json, run.json and the track stage's outputs of a finished trial."""
    run_dir = Path(job.run_dir)
    outcome.report = _read_json(run_dir / "report.json")
    outcome.run_info = _read_json(run_dir / "run.json")
    track = ((outcome.run_info or {}).get("nodes") or {}).get("track")
    if track:
        manifest = _read_json(Path(track["dir"]) / "manifest.json") or {}
        outcome.tracking = manifest.get("outputs") or {}


def _error_line(log: Path) -> str | None:
    """The CLI's `error: ...` line (the reason it gives users), else the log's last lines."""
    if not log.is_file():
        return None
    lines = log.read_text(errors="replace").splitlines()
    errors = [i for i, line in enumerate(lines) if line.startswith("error: ")]
    if errors:
        return "\n".join(lines[errors[-1]:errors[-1] + 6]).strip()
    return log_tail(log) or None


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
