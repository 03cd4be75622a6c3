"""A small real sweep on TinyStories through the CLI: the baseline, two RTN trials and one that
fails at run time; the recommendation, files, MLflow runs, re-run from the cache and SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.conftest import REPO
from tests.sweep.conftest import write_sweep

pytestmark = pytest.mark.e2e

BOGUS = "quant_stage:\n  quant_modifiers:\n    NoSuchModifier: {}\n"


def _quench(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "quench", *args], cwd=REPO, text=True,
                          capture_output=True, timeout=timeout, env={**os.environ})


def _variants(folder: Path) -> list[dict[str, Any]]:
    (folder / "bogus.yaml").write_text(BOGUS)  # valid YAML, rejected by llm-compressor at run
    return [
        {"quantization.method": "rtn", "quantization.scheme": "W8A16"},
        {"quantization.method": "rtn", "quantization.scheme": "W4A16",
         "quantization.options.group_size": 32},
        {"quantization.method": "llmcompressor", "quantization.scheme": "custom",
         "quantization.options": {"recipe": str(folder / "bogus.yaml"), "calibrate": False}},
    ]


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory, mirror: Path) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("sweep")
    path = write_sweep(folder, variants=_variants(folder), objective={"minimize": "size_bytes"},
                       constraints={"baseline": "baseline.yaml", "strict": False})
    first = _quench("sweep", str(path))
    out = folder / "artifacts" / "sweeps" / "tiny"
    return {"folder": folder, "path": path, "out": out, "first": first,
            "data": json.loads((out / "sweep.json").read_text())}


def test_recommends_the_smallest_trial_that_passes(swept: dict[str, Any]) -> None:
    first, data = swept["first"], swept["data"]
    assert first.returncode == 0, first.stdout + first.stderr
    trials = {t["point"]["quantization.scheme"]: t for t in data["trials"]}
    assert set(trials) == {"W8A16", "W4A16", "custom"}
    w8, w4 = trials["W8A16"], trials["W4A16"]
    assert w4["metrics"]["size_bytes"] < w8["metrics"]["size_bytes"]  # 4 bits are smaller
    best = w4 if w4["passed"] else w8
    assert data["recommended"] == best["trial_id"] and best["passed"]
    assert f"recommended: {best['run_name']}" in first.stdout
    recommended = (swept["out"] / "recommended.yaml").read_text()
    assert recommended == Path(best["recipe_path"]).read_text()


def test_a_failing_trial_is_recorded_and_the_sweep_goes_on(swept: dict[str, Any]) -> None:
    bad = next(t for t in swept["data"]["trials"] if t["point"]["quantization.scheme"] == "custom")
    assert bad["status"] == "failed" and bad["cost"] is None and not bad["passed"]
    assert "NoSuchModifier" in (bad["outcome"]["error"] or "") + _log(swept, bad)
    assert len((swept["out"] / "trials.jsonl").read_text().splitlines()) == 3


def test_each_verdict_is_what_quench_gate_says(swept: dict[str, Any]) -> None:
    """The sweep's verdicts, checked against the standalone gate on the same two runs."""
    uri = swept["data"]["baseline"]["outcome"]["tracking"]["tracking_uri"]
    base = swept["data"]["baseline"]["outcome"]["tracking"]["run_id"]
    for trial in [t for t in swept["data"]["trials"] if t["status"] == "finished"]:
        run_id = trial["outcome"]["tracking"]["run_id"]
        gate = _quench("gate", run_id, "--baseline", base, "--tracking-uri", uri)
        assert gate.returncode in (0, 1), gate.stderr
        assert f"## quench gate: {trial['verdict']}" in gate.stdout


def test_results_files_and_mlflow_runs(swept: dict[str, Any]) -> None:
    from mlflow.tracking import MlflowClient

    out = swept["out"]
    for name in ("sweep.md", "sweep.json", "compare/pareto.png", "recommended.yaml"):
        assert (out / name).is_file(), name
    assert "**(recommended)**" in (out / "sweep.md").read_text()
    uri = swept["data"]["baseline"]["outcome"]["tracking"]["tracking_uri"]
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()],
                              "tags.`quench.sweep` = 'tiny'")
    kinds = sorted(r.data.tags.get("quench.kind", "run") for r in runs
                   if "mlflow.parentRunId" not in r.data.tags)
    assert kinds == ["run"] * 4 + ["sweep"]  # baseline, three trials, the sweep itself
    sweep_run = next(r for r in runs if r.data.tags.get("quench.kind") == "sweep")
    assert sweep_run.data.metrics["trials"] == 3
    names = {a.path for a in client.list_artifacts(sweep_run.info.run_id)}
    assert {"sweep.md", "sweep.json", "pareto.png", "recommended.yaml"} <= names
    compared = _quench("compare", "--sweep", "tiny", "--tracking-uri", uri, "--no-record",
                       "--out", str(swept["folder"] / "cmp"))
    assert compared.returncode == 0, compared.stderr
    for trial in [t for t in swept["data"]["trials"] if t["status"] == "finished"]:
        assert trial["run_name"] in compared.stdout


def test_a_trial_recipe_reruns_alone_from_the_cache(swept: dict[str, Any]) -> None:
    trial = next(t for t in swept["data"]["trials"] if t["status"] == "finished")
    again = _quench("run", trial["recipe_path"])
    assert again.returncode == 0, again.stderr
    shown = again.stdout + again.stderr
    assert "cached   quantize" in shown and "cached   evaluate" in shown, shown
    assert "  ran " not in shown, shown


def test_the_sweep_resumes_from_the_cache(swept: dict[str, Any]) -> None:
    """A second run (as after a kill) reruns no stage of a finished trial."""
    again = _quench("sweep", str(swept["path"]))
    assert again.returncode == 0, again.stderr
    data = json.loads((swept["out"] / "sweep.json").read_text())
    assert data["recommended"] == swept["data"]["recommended"]
    for trial in [t for t in data["trials"] if t["status"] == "finished"]:
        nodes = trial["outcome"]["run_info"]["nodes"]
        ran = [n for n, v in nodes.items() if v["status"] == "ran" and n != "track"]
        assert ran == [], (trial["run_name"], ran)


def test_sigterm_stops_every_trial_and_still_writes_the_sweeps_files(swept: dict[str, Any]
                                                                     ) -> None:
    """SIGTERM (docker stop, a CI time-out) takes Ctrl-C's way out (tests/reliability/
    test_signals.py checks that SIGINT, SIGTERM and SIGHUP raise the same interrupt)."""
    folder = swept["folder"] / "interrupt"
    folder.mkdir()
    path = write_sweep(folder, variants=[
        {"quantization.method": "gptq", "quantization.scheme": "W4A16"}],
        constraints={"baseline": "baseline.yaml"})
    proc = subprocess.Popen([sys.executable, "-m", "quench", "sweep", str(path)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = folder / "artifacts" / "sweeps" / "tiny"
    deadline = time.monotonic() + 120
    while not (out / "logs" / "baseline.log").is_file() and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(3)  # the trial's `quench run` is under way
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 143, output
    assert "interrupted (SIGTERM)" in output
    time.sleep(1)
    left = [p for p in psutil.process_iter(["cmdline"])
            if str(folder) in " ".join(p.info["cmdline"] or [])]
    assert left == [], [p.info["cmdline"] for p in left]
    data = json.loads((out / "sweep.json").read_text())
    assert data["interrupted"] is True and data["trials"] == []
    assert "(interrupted)" in output and (out / "sweep.md").is_file()


def _log(swept: dict[str, Any], trial: dict[str, Any]) -> str:
    path = swept["out"] / "logs" / f"{trial['trial_id']}.log"
    return path.read_text(errors="replace") if path.is_file() else ""
