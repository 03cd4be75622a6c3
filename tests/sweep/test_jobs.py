"""A trial job on this machine: the timeout stops the trial's whole process group."""

from __future__ import annotations

import time
from pathlib import Path

import psutil

from quench.sweep.jobs import TIMEOUT, TrialJob, run_trial
from tests.conftest import REPO
from tests.sweep.conftest import tiny_recipe


def test_a_trial_past_its_timeout_is_stopped_and_recorded(tmp_path: Path, mirror: Path) -> None:
    recipe = tiny_recipe(tmp_path, "slow", "tinystories-gptq-w4a16.yaml")
    job = TrialJob("t1", "slow", str(recipe), str(tmp_path / "artifacts" / "slow"),
                   str(tmp_path / "t1.log"), str(REPO), timeout_s=3)
    start = time.monotonic()
    outcome = run_trial(job)
    assert outcome.status == TIMEOUT and "timed out after 3 s" in (outcome.error or "")
    assert time.monotonic() - start < 60
    assert outcome.report is None  # nothing is collected from a stopped trial
    left = [p for p in psutil.process_iter(["cmdline"])
            if str(recipe) in " ".join(p.info["cmdline"] or [])]
    assert left == []
    assert (tmp_path / "t1.log").read_text().startswith("$ ")  # the command line heads the log
