"""The `ray` executor on a real local Ray cluster (2 CPU slots on 127.0.0.1, started with the
`ray start` CLI): trials as tasks, their outcomes collected back, failures, timeouts, Ctrl-C."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from pathlib import Path

import psutil
import pytest
import yaml
from pydantic import ValidationError

from quench.errors import QuenchError
from quench.serving.process import pick_port
from quench.sweep.executors import get_executor
from quench.sweep.executors.ray_cluster import RayExecutor, RayOptions
from quench.sweep.jobs import FAILED, FINISHED, TIMEOUT, TrialJob
from tests.conftest import REPO

RAY = Path(sys.executable).parent / "ray"
CLUSTER_PROCESSES = ("raylet", "gcs_server")


def _cluster_members(pgid: int, temp: Path) -> list[psutil.Process]:
    """Live processes of the test cluster: its process group, or its temp dir on the line."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        with suppress(psutil.Error, OSError):
            if proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if os.getpgid(proc.pid) == pgid or str(temp) in " ".join(proc.info["cmdline"] or []):
                found.append(proc)
    return found


def _stop_cluster(pgid: int, temp: Path) -> None:
    """Stops only this cluster's processes (by id: never another Ray on the machine)."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 15)):
        members = _cluster_members(pgid, temp)
        for proc in members:
            with suppress(psutil.Error):
                proc.send_signal(sig)
        psutil.wait_procs(members, timeout=wait)


@pytest.fixture(scope="module", autouse=True)
def no_ray_token() -> Iterator[None]:
    """Token auth off for the test clusters and their drivers: Ray 2.60 turns it on for a new
    local cluster (and writes ~/.ray/auth_token), which a later `ray start` would then pick up."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAY_AUTH_MODE", "disabled")
        yield


@pytest.fixture(scope="module")
def cluster(mirror: Path, no_ray_token: None) -> Iterator[str]:
    """A real Ray head with 2 CPU slots on 127.0.0.1, its own temp dir and process group. Its
    processes do not get QUENCH_MIRROR: the executor's `env` option must bring it."""
    port = pick_port()
    temp = Path(tempfile.mkdtemp(prefix="qray", dir="/tmp"))  # unix socket paths stay short
    env = {k: v for k, v in os.environ.items() if k not in ("QUENCH_MIRROR", "RAY_ADDRESS")}
    env.update(RAY_USAGE_STATS_ENABLED="0", PYTHONPATH=str(REPO))  # quench "installed" here
    cmd = [str(RAY), "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port),
           "--num-cpus", "2", "--include-dashboard", "false", "--disable-usage-stats",
           "--temp-dir", str(temp)]
    starter = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = starter.communicate(timeout=180)
        assert starter.returncode == 0, f"ray start failed:\n{out}"
        yield f"127.0.0.1:{port}"
    finally:
        _stop_cluster(starter.pid, temp)
        left = _cluster_members(starter.pid, temp)
        shutil.rmtree(temp, ignore_errors=True)
    assert not left, f"Ray processes left after the stop: {[p.pid for p in left]}"
    for proc in psutil.process_iter(["name", "cmdline"]):
        with suppress(psutil.Error):
            line = " ".join(proc.info["cmdline"] or [])
            assert not (proc.info["name"] in CLUSTER_PROCESSES and f":{port}" in line), line


def _job(tmp: Path, trial_id: str, extends: str, timeout_s: float | None = None,
         **settings: object) -> TrialJob:
    """A tiny trial: a recipe file that extends a bundled one, inside the test's folder."""
    name = f"ray-{trial_id}"
    out = tmp / "out"
    data: dict[str, object] = {
        "extends": str(REPO / "recipes" / extends), "name": name,
        "calibration": {"num_samples": 8}, "evaluation": {"perplexity": {"max_windows": 4}},
        "output": {"dir": str(out)},
        "tracking": {"tracking_uri": f"sqlite:///{out}/mlflow.db"}}
    for key, value in settings.items():
        section, sub = key.split("__")
        data.setdefault(section, {})[sub] = value  # type: ignore[index]
    recipe = tmp / "trials" / f"{name}.yaml"
    recipe.parent.mkdir(parents=True, exist_ok=True)
    recipe.write_text(yaml.safe_dump(data))
    return TrialJob(trial_id, name, str(recipe), str(out / name),
                    str(tmp / "logs" / f"{trial_id}.log"), str(REPO), timeout_s)


def _executor(address: str, mirror: Path, **options: object) -> RayExecutor:
    env = {"QUENCH_MIRROR": str(mirror)}
    return RayExecutor(RayOptions.model_validate({"address": address, "env": env, **options}))


def _trial_processes(marker: str) -> list[psutil.Process]:
    """Live processes whose command line (or Ray process title) contains `marker`."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        with suppress(psutil.Error):
            if proc.info["status"] != psutil.STATUS_ZOMBIE and \
                    marker in " ".join(proc.info["cmdline"] or []):
                found.append(proc)
    return found


def _wait_for(check: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_registered_and_strict_options() -> None:
    assert get_executor("ray") is RayExecutor
    with pytest.raises(ValidationError, match="num_cpus"):
        RayOptions.model_validate({"num_cpus": 0})
    with pytest.raises(ValidationError, match="num_cpus"):
        RayOptions.model_validate({"num_cpus": "2"})
    with pytest.raises(ValidationError, match="adress"):
        RayOptions.model_validate({"adress": "127.0.0.1:6379"})
    assert RayOptions.model_validate({"num_cpus": 2}).num_cpus == 2.0


def test_bad_address_names_the_key() -> None:
    free = pick_port()
    for address in (f"127.0.0.1:{free}", "no-port-here"):
        executor = RayExecutor(RayOptions(address=address))
        start = time.monotonic()
        with pytest.raises(QuenchError) as info:
            _ = executor.parallelism
        assert "executor.options.address" in str(info.value)
        assert repr(address) in str(info.value)
        assert time.monotonic() - start < 15  # no minutes of Ray's own retries
        executor.close()


def test_parallelism_is_what_fits(cluster: str, mirror: Path) -> None:
    for options, expected in (({}, 2), ({"num_cpus": 2}, 1), ({"num_cpus": 0.5}, 4),
                              ({"num_cpus": 0.5, "max_concurrent": 3}, 3),
                              ({"max_concurrent": 5}, 2)):
        executor = _executor(cluster, mirror, **options)
        try:
            assert executor.parallelism == expected, options
            assert "ray on 127.0.0.1" in executor.describe()
        finally:
            executor.close()


def test_two_trials_collected_back(cluster: str, mirror: Path, tmp_path: Path) -> None:
    jobs = [_job(tmp_path, "rtn", "tinystories-rtn-w4a16.yaml"),
            _job(tmp_path, "none", "tinystories-none.yaml")]
    executor = _executor(cluster, mirror)
    try:
        outcomes = {o.trial_id: o for o in executor.run(jobs)}
    finally:
        executor.close()
    assert set(outcomes) == {"rtn", "none"}
    for job in jobs:
        outcome = outcomes[job.trial_id]
        assert outcome.status == FINISHED, (outcome.error, Path(job.log_path).read_text()[-3000:])
        assert outcome.report and outcome.report["metrics"], outcome.report
        assert outcome.run_info and "nodes" in outcome.run_info
        assert outcome.tracking.get("run_id")
        assert outcome.host == os.uname().nodename
        assert (Path(job.run_dir) / "report.json").is_file()
    assert outcomes["rtn"].report["metrics"] != outcomes["none"].report["metrics"]


def test_failing_trial_is_an_outcome(cluster: str, mirror: Path, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-calibration.jsonl"
    bad = _job(tmp_path, "bad", "tinystories-gptq-w4a16.yaml", calibration__source=str(missing))
    good = _job(tmp_path, "good", "tinystories-none.yaml")
    executor = _executor(cluster, mirror, max_concurrent=1)  # one at a time: the queue too
    try:
        outcomes = list(executor.run([bad, good]))
    finally:
        executor.close()
    assert [o.trial_id for o in outcomes] == ["bad", "good"]
    failed, finished = outcomes
    assert failed.status == FAILED and failed.exit_code not in (0, None)
    assert failed.error and failed.error.startswith("error: ") and str(missing) in failed.error
    assert failed.report is None
    assert finished.status == FINISHED and finished.report


def test_timeout_leaves_nothing(cluster: str, mirror: Path, tmp_path: Path) -> None:
    job = _job(tmp_path, "slow", "tinystories-rtn-w4a16.yaml", timeout_s=3)
    executor = _executor(cluster, mirror)
    try:
        [outcome] = list(executor.run([job]))
    finally:
        executor.close()
    assert outcome.status == TIMEOUT and "timed out after 3 s" in (outcome.error or "")
    assert outcome.seconds < 60
    assert Path(job.log_path).is_file()
    assert not _trial_processes(job.recipe_path)


@pytest.mark.parametrize("how", ["ctrl-c", "close"])
def test_interrupt_stops_every_trial(cluster: str, mirror: Path, tmp_path: Path,
                                     how: str) -> None:
    long = _job(tmp_path, f"long-{how}", "tinystories-none.yaml",
                evaluation__perplexity={"max_windows": 100_000})
    jobs = [long]
    if how == "close":  # a trial ends first; the sweep then stops at that yield
        jobs.insert(0, _job(tmp_path, "fails-fast", "tinystories-gptq-w4a16.yaml",
                            calibration__source=str(tmp_path / "missing.jsonl")))
    worker_title = f"quench-trial-{long.trial_id}"
    executor = _executor(cluster, mirror)
    gen = executor.run(jobs)

    def started() -> bool:
        return Path(long.log_path).is_file() and bool(_trial_processes(long.recipe_path)) \
            and bool(_trial_processes(worker_title))

    # Ctrl-C as a terminal delivers it: a test run in the background (`pytest &`) starts with
    # SIGINT ignored, and then no KeyboardInterrupt would come
    default = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        if how == "ctrl-c":
            def interrupt() -> None:
                with suppress(AssertionError):
                    _wait_for(started, 90, "the trial to start")
                os.kill(os.getpid(), signal.SIGINT)

            threading.Thread(target=interrupt, daemon=True).start()
            with pytest.raises(KeyboardInterrupt):
                next(gen)
        else:
            first = next(gen)
            assert first.trial_id == "fails-fast" and first.status == FAILED
            _wait_for(started, 90, "the trial to start")
            gen.close()
        assert Path(long.log_path).is_file()
        _wait_for(lambda: not _trial_processes(long.recipe_path), 30,
                  "the trial's `quench run` to end")
        _wait_for(lambda: not _trial_processes(worker_title), 30,
                  "the Ray worker running the trial to end")
    finally:
        signal.signal(signal.SIGINT, default)
        executor.close()
    assert "report:" not in Path(long.log_path).read_text()  # stopped, not finished


def test_close_leaves_a_callers_connection(cluster: str, mirror: Path) -> None:
    import ray

    ray.init(address=cluster, log_to_driver=False, include_dashboard=False)
    try:
        executor = _executor(cluster, mirror)
        assert executor.parallelism == 2
        executor.close()
        assert ray.is_initialized()  # not this executor's to shut down
    finally:
        ray.shutdown()
    executor = _executor(cluster, mirror)
    assert executor.parallelism == 2
    executor.close()
    assert not ray.is_initialized()


def test_local_cluster_without_address(mirror: Path, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """address unset: ray.init starts a cluster of this machine's cores, and close() stops it."""
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    job = _job(tmp_path, "local", "tinystories-none.yaml")
    executor = RayExecutor(RayOptions(env={"QUENCH_MIRROR": str(mirror)}))
    try:
        assert executor.parallelism == os.cpu_count()
        [outcome] = list(executor.run([job]))
        assert outcome.status == FINISHED and outcome.report, outcome.error
    finally:
        executor.close()
    ours = psutil.Process().children(recursive=True)
    assert not [p for p in ours if p.is_running() and p.status() != psutil.STATUS_ZOMBIE], \
        [p.cmdline()[:2] for p in ours]


def test_a_sweep_runs_through_the_cluster(cluster: str, mirror: Path, tmp_path: Path) -> None:
    """`quench sweep --address`: the baseline and two trials as Ray tasks, gated and costed
    by the driver, the same answer files as a local sweep."""
    import json

    from tests.sweep.conftest import write_sweep

    path = write_sweep(tmp_path, axes={"quantization.options.group_size": [32, 128]},
                       executor={"kind": "ray", "options": {
                           "env": {"QUENCH_MIRROR": str(mirror)}, "max_concurrent": 2}},
                       constraints={"baseline": "baseline.yaml", "strict": False})
    done = subprocess.run([sys.executable, "-m", "quench", "sweep", str(path), "--address",
                           cluster], cwd=REPO, text=True, capture_output=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"executor ray on {cluster}" in done.stdout
    data = json.loads((tmp_path / "artifacts" / "sweeps" / "tiny" / "sweep.json").read_text())
    trials = data["trials"]
    assert [t["status"] for t in trials] == ["finished", "finished"]
    assert all(t["outcome"]["host"] and t["outcome"]["report"] for t in trials)  # collected back
    sizes = {t["point"]["quantization.options.group_size"]: t["metrics"]["size_bytes"]
             for t in trials}
    assert sizes[128] < sizes[32]  # fewer scales
    assert data["recommended"] in {t["trial_id"] for t in trials if t["passed"]}
    assert (tmp_path / "artifacts" / "sweeps" / "tiny" / "compare" / "pareto.png").is_file()
    assert _trial_processes(str(tmp_path)) == []
