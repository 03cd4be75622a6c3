"""The default executor: trials on the host that runs the sweep, each a `quench run` subprocess
(its own memory, timeout and process group), one after another unless max_concurrent says more."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import replace

from pydantic import model_validator

from quench.serving.process import stop_process_group
from quench.sweep.executors import EXECUTORS, Executor, ExecutorOptions
from quench.sweep.jobs import TrialJob, TrialOutcome, run_trial


class LocalOptions(ExecutorOptions):
    """At most one trial per core: a trial already uses every thread it is given."""

    @model_validator(mode="after")
    def _within_cores(self) -> LocalOptions:
        cores = os.cpu_count() or 1
        if self.max_concurrent is not None and self.max_concurrent > cores:
            raise ValueError(f"max_concurrent: {self.max_concurrent} trials at once on a "
                             f"machine with {cores} cores; allowed: 1 to {cores} (or use "
                             "the ray executor on a cluster)")
        return self


@EXECUTORS.register
class LocalExecutor(Executor):
    """Sequential by default; with max_concurrent N, N trials share the cores evenly."""

    name = "local"
    options_model = LocalOptions

    def run(self, jobs: list[TrialJob]) -> Iterator[TrialOutcome]:
        if self.parallelism == 1:
            for job in jobs:
                yield run_trial(job)  # Ctrl-C: `running` stops the trial's process group
            return
        yield from self._parallel(jobs)

    def _parallel(self, jobs: list[TrialJob]) -> Iterator[TrialOutcome]:
        threads = str(max(1, (os.cpu_count() or 1) // self.parallelism))
        env = {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
        pending = [replace(j, env={**env, **j.env}) for j in jobs]
        procs: list[subprocess.Popen[bytes]] = []
        with ThreadPoolExecutor(self.parallelism) as pool:
            running: set[Future[TrialOutcome]] = set()
            try:
                while pending or running:
                    while pending and len(running) < self.parallelism:
                        running.add(pool.submit(run_trial, pending.pop(0), procs.append))
                    done, running = wait(running, return_when=FIRST_COMPLETED)
                    for future in done:
                        yield future.result()
            except BaseException:  # Ctrl-C or a closed generator: no trial outlives the sweep
                for proc in procs:
                    stop_process_group(proc, grace=5)
                raise

    def describe(self) -> str:
        return f"local ({self.parallelism} at a time)"
