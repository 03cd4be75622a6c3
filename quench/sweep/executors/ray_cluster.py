"""The `ray` executor: each trial a Ray task sized by its own resources, so Ray's scheduler (not
quench) decides where and how many run; the task returns the trial's outcome to the driver."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import replace
from types import ModuleType
from typing import Any

from pydantic import Field

from quench.errors import QuenchError
from quench.shutdown import reclaim_signals
from quench.sweep.executors import EXECUTORS, Executor, ExecutorOptions
from quench.sweep.jobs import FAILED, TrialJob, TrialOutcome, run_trial

ADDRESS_KEY = "executor.options.address"
PROBE_TIMEOUT_S = 5.0  # ray.init retries an unreachable address for minutes; a TCP probe won't
CANCEL_WAIT_S = 30.0  # how long a Ctrl-C waits for Ray to confirm its cancelled tasks ended
GIB = 1024**3


class RayOptions(ExecutorOptions):
    """Where the cluster is and what one trial asks of it (Ray's own task resources)."""

    address: str | None = Field(
        None, min_length=1, description="An existing cluster: `host:port` of its head (GCS), "
        "`ray://host:10001` (Ray Client, needs ray[client]) or `auto`; unset: $RAY_ADDRESS if "
        "set, else a new local cluster on this host.")
    num_cpus: float = Field(1.0, gt=0, le=10_000, description="CPUs one trial reserves.")
    num_gpus: float = Field(0.0, ge=0, le=1_000, description="GPUs one trial reserves.")
    memory_gb: float | None = Field(
        None, gt=0, le=100_000, description="Memory (GiB) one trial reserves (Ray's `memory` "
        "resource: a scheduling reservation, not a limit).")
    env: dict[str, str] = Field(
        default_factory=dict, description="Extra environment variables for every trial on the "
        "workers (QUENCH_MIRROR, MLFLOW_TRACKING_URI, HF_HOME, ...).")


def quench_trial(job: TrialJob) -> TrialOutcome:
    """The Ray task's body, on a worker: the trial's `quench run`, its report and run record."""
    return run_trial(job)


@EXECUTORS.register
class RayExecutor(Executor):
    """Submits every trial as a task (at most max_concurrent at once) and yields outcomes as
    tasks finish; Ctrl-C or a closed generator force-cancels the unfinished ones."""

    name = "ray"
    options_model = RayOptions
    options: RayOptions

    def __init__(self, options: ExecutorOptions) -> None:
        super().__init__(options)
        self._ray: ModuleType | None = None
        self._owned = False  # this executor called ray.init, so close() shuts it down

    @property
    def parallelism(self) -> int:
        """Trials that fit on the cluster at once, capped by max_concurrent."""
        ray = self._connect()
        fits = _fits(ray.cluster_resources(), self._resources())
        return max(1, min(fits, self.options.max_concurrent or fits))

    def run(self, jobs: list[TrialJob]) -> Iterator[TrialOutcome]:
        ray = self._connect()
        task = ray.remote(**self._resources(), max_retries=0)(quench_trial)
        waiting = [replace(job, env={**self.options.env, **job.env}) for job in jobs]
        limit = self.options.max_concurrent or len(waiting) or 1
        running: dict[Any, TrialJob] = {}
        try:
            while waiting or running:
                while waiting and len(running) < limit:
                    job = waiting.pop(0)
                    running[task.options(name=f"quench-trial-{job.trial_id}").remote(job)] = job
                done, _ = ray.wait(list(running), num_returns=1)
                job = running.pop(done[0])
                yield _outcome(ray, done[0], job)
        except BaseException:  # Ctrl-C or a closed generator: no trial outlives the sweep
            _cancel(ray, list(running))
            raise

    def close(self) -> None:
        if self._ray is not None and self._owned:
            self._ray.shutdown()
        self._ray, self._owned = None, False

    def describe(self) -> str:
        where = self.options.address or os.environ.get("RAY_ADDRESS") or "a local cluster"
        size = f"{self.options.num_cpus:g} CPU"
        if self.options.num_gpus:
            size += f", {self.options.num_gpus:g} GPU"
        if self.options.memory_gb:
            size += f", {self.options.memory_gb:g} GiB"
        cap = f", at most {self.options.max_concurrent} at once" \
            if self.options.max_concurrent else ""
        return f"ray on {where} ({size} per trial{cap})"

    def _resources(self) -> dict[str, float]:
        """The ray.remote() arguments of one trial."""
        resources = {"num_cpus": self.options.num_cpus, "num_gpus": self.options.num_gpus}
        if self.options.memory_gb is not None:
            resources["memory"] = int(self.options.memory_gb * GIB)
        return resources

    def _connect(self) -> ModuleType:
        """ray, connected: to `address`, or to a new local cluster (quiet, no dashboard)."""
        if self._ray is not None:
            return self._ray
        ray = _import_ray(self.options.address)
        if not ray.is_initialized():
            _probe(self.options.address)
            try:
                ray.init(address=self.options.address, log_to_driver=False,
                         include_dashboard=False, logging_level=logging.ERROR,
                         configure_logging=True)
            except Exception as exc:  # ConnectionError, RuntimeError, ValueError from Ray
                raise QuenchError(f"{ADDRESS_KEY}: cannot connect to the Ray cluster at "
                                  f"{self.options.address!r}: {exc}") from exc
            finally:
                reclaim_signals()  # ray.init made SIGTERM a bare sys.exit
            self._owned = True
        self._ray = ray
        return ray


def _import_ray(address: str | None) -> ModuleType:
    """The ray module, with usage statistics off; a QuenchError when it is not installed."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
    except ImportError as exc:
        raise QuenchError(f"executor.kind: 'ray' needs the ray package ({exc}); install "
                          f"ray==2.60.0 (executor.options.address: {address!r})") from exc
    return ray


def _probe(address: str | None) -> None:
    """Fails fast, naming the key, when the cluster's address does not answer."""
    address = address or os.environ.get("RAY_ADDRESS")
    if not address or address in ("auto", "local"):
        return
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise QuenchError(f"{ADDRESS_KEY}: {address!r} is not a cluster address; allowed: "
                          "host:port (the head's GCS, e.g. 127.0.0.1:6379), ray://host:port, "
                          "auto, or unset for a new local cluster")
    try:
        socket.create_connection((host.strip("[]"), int(port)), PROBE_TIMEOUT_S).close()
    except OSError as exc:
        raise QuenchError(f"{ADDRESS_KEY}: no Ray cluster answers at {address!r} ({exc}); "
                          "start one with `ray start --head` or fix the address") from exc


def _fits(total: dict[str, float], wanted: dict[str, float]) -> int:
    """How many trials of `wanted` resources the cluster's `total` holds at once."""
    names = {"num_cpus": "CPU", "num_gpus": "GPU", "memory": "memory"}
    counts = [int(total.get(names[key], 0) // amount) for key, amount in wanted.items()
              if amount > 0]
    return min(counts) if counts else 1


def _outcome(ray: ModuleType, ref: Any, job: TrialJob) -> TrialOutcome:
    """The task's outcome; a task Ray could not run (worker lost, killed for memory) fails."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return TrialOutcome(job.trial_id, FAILED, None, 0.0, f"ray: {reason}")


def _cancel(ray: ModuleType, refs: list[Any]) -> None:
    """Force-cancels the tasks (their workers are killed; a trial's `quench run` dies with its
    worker by PR_SET_PDEATHSIG) and waits until Ray reports them ended."""
    for ref in refs:
        with suppress(Exception):
            ray.cancel(ref, force=True)
    with suppress(Exception):
        ray.wait(refs, num_returns=len(refs), timeout=CANCEL_WAIT_S)
