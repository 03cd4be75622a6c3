"""MLflow tracking: a parent run per invocation, a child run per stage, that never stops a run.

Everything the tracker logs goes first into a pending-upload record on disk, then to MLflow
with bounded retries (`tracking.timeout_s`, `tracking.retries`). The first call that fails
marks the store down for the rest of the invocation: one console line says so, the stages go
on, and the record stays for `quench sync` (or the next run of the same store) to replay.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from quench.contract.locks import store_creation_lock
from quench.contract.manifest import Manifest
from quench.contract.processes import pid_alive
from quench.recipe.schema import Recipe, TrackingSpec
from quench.redact import redact
from quench.tracking.pending import (
    in_progress,
    new_record,
    now_ms,
    numbers,
    read_records,
    record_path,
    remove_record,
    run_record,
    stage_artifacts,
    write_record,
)
from quench.tracking.sync import record_name, store_reachable, upload_one
from quench.tracking.tags import data_tags, license_tags
from quench.tracking.tracker import Tracker, flatten
from quench.tracking.ui import DROP, accuracy_drops, publish_view
from quench.tracking.upload import (
    UPLOAD_TAG,
    bounded,
    close_run,
    experiment_id,
    http_budget,
    log_contents,
    open_run,
)

log = logging.getLogger("quench.tracking")
Notice = Callable[[str], None]


def tracking_uri(spec: TrackingSpec, root: Path) -> str:
    """Recipe setting, else $MLFLOW_TRACKING_URI, else a SQLite file under the output dir."""
    return spec.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or (
        f"sqlite:///{root / 'mlflow.db'}"
    )


def is_http(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def short_reason(exc: BaseException) -> str:
    """A failure in a few words: the OS error when there is one, else the first line, cut."""
    text = str(exc)
    found = re.search(r"\[Errno -?\d+\] [^\n\"()\]]{1,200}", text)
    if found:
        reason = found.group(0)
    else:
        reason = f"{type(exc).__name__}: {text.splitlines()[0][:160]}" if text else \
            type(exc).__name__
    return redact(reason.strip(" :"))


def _print_notice(line: str) -> None:
    print(line, file=sys.stderr)


class MlflowTracker(Tracker):
    """Opens its MLflow run on begin(); until then stage results are held back in `held`."""

    def __init__(self, spec: TrackingSpec, root: Path, notice: Notice | None = None) -> None:
        self.spec, self.root = spec, root
        self.uri = tracking_uri(spec, root)
        self.shown_uri = redact(self.uri)
        self.budget = http_budget(spec.timeout_s, spec.retries)
        self.notice = notice or _print_notice
        self.upload_id = uuid.uuid4().hex
        self.record: dict[str, Any] | None = None
        self.held: list[tuple[str, str, float, Manifest]] = []
        self.client: Any = None
        self.experiment_id: str | None = None
        self.parent_id: str | None = None
        self.down: str | None = None  # why the store is unusable, once a call failed
        self.unsaved: str | None = None  # why the pending record could not be written (a full disk)

    # --- talking to MLflow, never raising ---------------------------------------------------

    def _online(self, what: str, call: Callable[[], Any]) -> bool:
        """Runs a tracking call within the retry budget; False (store down) when it failed."""
        if self.down is not None:
            return False
        try:
            with bounded(self.budget):
                call()
            return True
        except Exception as exc:  # any tracking failure: the run goes on without the store
            self._mark_down(what, exc)
            return False

    def _mark_down(self, what: str, exc: BaseException) -> None:
        self.down = short_reason(exc)
        # INFO: into quench.log with its traceback during a run, never onto a bare terminal
        log.info("tracking: %s failed; the store is not used again in this run", what,
                 exc_info=exc)
        if self.unsaved:
            self.notice(f"tracking: {self.shown_uri} unavailable ({self.down}), and the run's "
                        f"record could not be saved either ({self.unsaved}): this run is not "
                        "logged")
        else:
            self.notice(f"tracking: {self.shown_uri} unavailable ({self.down}); this run is "
                        f"kept for upload: quench sync {self.root}")

    def _connect(self) -> None:
        """The client, with its store opened (a SQLite store is created on first use)."""
        if self.client is None:
            from mlflow.tracking import MlflowClient

            client = MlflowClient(tracking_uri=self.uri)
            client.search_experiments(max_results=1)
            self.client = client

    # --- the Tracker interface --------------------------------------------------------------

    def retry_pending(self) -> None:
        """Uploads runs this store missed earlier (bounded; never raises)."""
        retry_records(self)

    def begin(self, recipe: Recipe) -> None:
        if self.record is not None:
            return
        artifact_root = None if is_http(self.uri) else (self.root / "mlartifacts").as_uri()
        self.record = new_record(self.upload_id, self.shown_uri, self.spec.experiment,
                                 artifact_root, self.spec.model_dump(include={"timeout_s",
                                                                              "retries"}))
        self.record["parent"] = self._parent_record(recipe)
        self._save()
        self._online("opening the run", lambda: self._open_parent(recipe.name))
        for args in self.held:
            self.log_stage(*args)
        self.held.clear()

    def _parent_record(self, recipe: Recipe) -> dict[str, Any]:
        q = recipe.quantization
        tags = {
            "quench.model": recipe.model.id,
            "quench.method": q.method,
            "quench.scheme": str(q.scheme),
            "quench.recipe": recipe.name,
            "quench.host": socket.gethostname(),
            "quench.pid": str(os.getpid()),
            UPLOAD_TAG: self.upload_id,
        }
        tags = {**self.spec.tags, **tags}  # the recipe's own tags never hide quench's
        return run_record(recipe.name, tags, params=flatten(recipe.model_dump(mode="json")))

    def _open_parent(self, recipe_name: str) -> None:
        assert self.record is not None
        with store_creation_lock(self.uri):  # one process at a time creates a SQLite store
            self._connect()
            self.experiment_id = experiment_id(self.client, self.record)
        self._close_dead_runs(recipe_name)
        parent = self.record["parent"]
        self.parent_id, _ = open_run(self.client, self.experiment_id, parent, None, search=False)
        log_contents(self.client, self.parent_id, {"params": parent["params"]})

    def log_stage(self, node: str, status: str, elapsed: float, manifest: Manifest) -> None:
        if self.record is None:
            self.held.append((node, status, elapsed, manifest))
            return
        if node == "track":  # its outcome is the parent run itself
            return
        child = self._child_record(node, status, elapsed, manifest)
        self.record["children"].append(child)
        self.record["parent"]["inputs"] += child["inputs"]
        self._save()
        self._online(f"logging stage {node}", lambda: self._upload_child(child))

    def _child_record(self, node: str, status: str, elapsed: float,
                      manifest: Manifest) -> dict[str, Any]:
        tags = {"quench.stage": manifest.data["stage"], "quench.status": status,
                "quench.key": manifest.key, UPLOAD_TAG: f"{self.upload_id}/{node}"}
        child = run_record(node, tags, params=flatten(manifest.data.get("config", {})),
                           metrics={**manifest.metrics, "wall_seconds": elapsed},
                           start_ms=now_ms() - int(elapsed * 1000))
        child["status"], child["end_ms"] = "FINISHED", now_ms()
        child["artifacts"] = stage_artifacts(manifest)
        child["tags"].update(data_tags(manifest.outputs))
        if "lineage" in manifest.outputs:
            lineage = manifest.outputs["lineage"]
            child["inputs"] = [{"source": str(lineage["source"]["path"]),
                                "origin": lineage["source"].get("origin", ""),
                                "records": lineage["records_available"],
                                "record_indices": manifest.outputs["record_indices"],
                                "seed": lineage["seed"],
                                "max_seq_length": lineage["max_seq_length"]}]
        return child

    def _upload_child(self, child: dict[str, Any]) -> None:
        if self.parent_id is None:
            raise RuntimeError("the parent run was not opened")
        run_id, _ = open_run(self.client, self.experiment_id, child, self.parent_id,
                             search=False)
        log_contents(self.client, run_id, {**child, "tags": {}})  # tags came with the run
        close_run(self.client, run_id, child)
        if child["inputs"]:
            log_contents(self.client, self.parent_id, {"inputs": child["inputs"]})

    def finish(self, report: Manifest) -> dict[str, Any]:
        assert self.record is not None
        data = json.loads(report.path("report_json").read_text())
        parent = self.record["parent"]
        metrics = {**flatten(data["metrics"]), **accuracy_drops(data)}  # drops: for the UI
        delta = {"metrics": numbers(metrics, now_ms()),
                 "tags": license_tags(data.get("license")),
                 "artifacts": [{"kind": "file", "path": str(report.path(name))}
                               for name in ("report_md", "report_json")]}
        for key in ("metrics", "artifacts"):
            parent[key] += delta[key]
        parent["tags"].update(delta["tags"])
        return self._close(parent, "FINISHED", delta)

    def fail(self, exc: BaseException) -> None:
        if self.record is None:
            return
        parent = self.record["parent"]
        tags = {"quench.error": redact(f"{type(exc).__name__}: {exc}")[:4000]}
        parent["tags"].update(tags)
        self._close(parent, "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED",
                    {"tags": tags})

    def _close(self, parent: dict[str, Any], status: str,
               delta: dict[str, Any]) -> dict[str, Any]:
        """Ends the parent run; the record is removed only when MLflow has all of it."""
        parent["status"], parent["end_ms"] = status, now_ms()
        path = self._save()

        def upload() -> None:
            log_contents(self.client, self.parent_id, delta)
            close_run(self.client, self.parent_id, parent)
            drops = [m[0] for m in delta.get("metrics", []) if DROP.match(m[0])]
            if drops:  # the experiment's runs table gets these columns too
                publish_view(self.client, self.experiment_id,
                             self.client.get_experiment(self.experiment_id).tags, drops)

        if self.parent_id is not None and self._online("closing the run", upload):
            remove_record(self.root, self.upload_id)
            return {"tracking_uri": self.shown_uri, "experiment_id": self.experiment_id,
                    "run_id": self.parent_id}
        return {"tracking_uri": self.shown_uri, "upload_id": self.upload_id,
                "pending_upload": str(path), **({"unsaved": self.unsaved} if self.unsaved else {})}

    def _save(self) -> Path:
        """Writes the record; a record that cannot be written is logged, never fatal."""
        assert self.record is not None
        try:
            path = write_record(self.root, self.record)
            self.unsaved = None
            return path
        except OSError as exc:
            log.warning("tracking: cannot write the pending-upload record (%s)", exc)
            self.unsaved = short_reason(exc)
            return record_path(self.root, self.upload_id)

    def _close_dead_runs(self, recipe_name: str) -> None:
        """Marks KILLED the runs of this recipe left RUNNING by a process that no longer exists."""
        host = socket.gethostname()
        query = (
            f"attributes.status = 'RUNNING' and tags.`quench.recipe` = '{recipe_name}' "
            f"and tags.`quench.host` = '{host}'"
        )
        for run in self.client.search_runs([self.experiment_id], filter_string=query):
            pid = run.data.tags.get("quench.pid", "")
            if pid.isdigit() and not pid_alive(int(pid)):
                self.client.set_terminated(run.info.run_id, "KILLED")


def retry_records(tracker: MlflowTracker) -> None:
    """At the start of a run: uploads this store's pending runs. A record that fails while the
    store answers is left for `quench sync` and blocks nothing; a store that does not answer
    stops the retries (and this run's tracking goes to a record of its own)."""
    records, bad = read_records(tracker.root)
    for item in bad:
        tracker.notice(f"tracking: {item.path} cannot be uploaded ({item.reason}); move it "
                       f"aside: quench sync {tracker.root} --drop {item.path.stem[:8]}")
    done = 0
    for path, record in records:
        if record.get("tracking_uri") != tracker.shown_uri or in_progress(record):
            continue
        if tracker.down is not None:
            return
        try:
            if upload_one(path, record, tracker.uri, tracker.budget) is not None:
                done += 1
        except Exception as exc:  # never fails the run: the record stays for `quench sync`
            if not store_reachable(tracker.uri, tracker.budget):
                tracker._mark_down(f"uploading pending run {record['upload_id']}", exc)
                continue
            log.info("tracking: pending run %s not uploaded", record["upload_id"], exc_info=exc)
            tracker.notice(f"tracking: pending run {record_name(record)} not uploaded "
                           f"({short_reason(exc)}); it stays for quench sync {tracker.root} "
                           f"(or --drop {record['upload_id'][:8]})")
    if done:
        tracker.notice(f"tracking: uploaded {done} pending run(s) to {tracker.shown_uri}")
