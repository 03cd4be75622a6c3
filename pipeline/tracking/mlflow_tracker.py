"""MLflow tracking: a parent run per invocation, a child run per stage, batched logging."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from pipeline.recipe.schema import Recipe, TrackingSpec
from pipeline.runner.locks import store_creation_lock
from pipeline.runner.manifest import Manifest
from pipeline.runner.store import pid_alive
from pipeline.tracking import Tracker, flatten

EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"
BATCH = 100  # MLflow accepts at most 100 params / 1000 metrics per log_batch call


def tracking_uri(spec: TrackingSpec, root: Path) -> str:
    """Recipe setting, else $MLFLOW_TRACKING_URI, else a SQLite file under the output dir."""
    return spec.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or (
        f"sqlite:///{root / 'mlflow.db'}"
    )


class MlflowTracker(Tracker):
    """Opens its MLflow run on begin(); until then stage results are held back in `pending`."""

    def __init__(self, spec: TrackingSpec, root: Path) -> None:
        self.spec, self.root = spec, root
        self.uri = tracking_uri(spec, root)
        self.parent_id: str | None = None
        self.pending: list[tuple[str, str, float, Manifest]] = []

    def _experiment(self, name: str, artifact_root: Path) -> str:
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            experiment_id = found.experiment_id
        elif self.uri.startswith(("http://", "https://")):  # a server keeps the artifacts too
            experiment_id = self.client.create_experiment(name)
        else:
            experiment_id = self.client.create_experiment(
                name, artifact_location=artifact_root.as_uri())
        if found is None or EXPERIMENT_KIND_TAG not in found.tags:
            # MLflow 3 opens an untyped experiment on its GenAI traces page; this is the tag its
            # own experiment-type selector sets, so the UI opens on the runs table.
            self.client.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
        return experiment_id

    def begin(self, recipe: Recipe) -> None:
        if self.parent_id is not None:
            return
        from mlflow.tracking import MlflowClient

        with store_creation_lock(self.uri):  # one process at a time creates a SQLite store
            self.client = MlflowClient(tracking_uri=self.uri)
            self.experiment_id = self._experiment(self.spec.experiment, self.root / "mlartifacts")
        self._close_dead_runs(recipe.name)
        q = recipe.quantization
        tags = {
            "quench.model": recipe.model.id,
            "quench.method": q.method,
            "quench.scheme": str(q.scheme),
            "quench.recipe": recipe.name,
            "quench.host": socket.gethostname(),
            "quench.pid": str(os.getpid()),
        }
        run = self.client.create_run(self.experiment_id, run_name=recipe.name, tags=tags)
        self.parent_id = run.info.run_id
        self._log(self.parent_id, params=flatten(recipe.model_dump(mode="json")))
        for args in self.pending:
            self.log_stage(*args)
        self.pending.clear()

    def log_stage(self, node: str, status: str, elapsed: float, manifest: Manifest) -> None:
        if self.parent_id is None:
            self.pending.append((node, status, elapsed, manifest))
            return
        if node == "track":  # its outcome is the parent run itself, already closed
            return
        tags = {
            "mlflow.parentRunId": self.parent_id,
            "quench.stage": manifest.data["stage"],
            "quench.status": status,
            "quench.key": manifest.key,
        }
        run = self.client.create_run(self.experiment_id, run_name=node, tags=tags)
        metrics = {**manifest.metrics, "wall_seconds": elapsed}
        self._log(run.info.run_id, params=flatten(manifest.data.get("config", {})), metrics=metrics)
        self.client.log_artifact(run.info.run_id, str(manifest.dir / "manifest.json"))
        if "lineage" in manifest.outputs:
            self._log_calibration_input(run.info.run_id, manifest)
        for rel in manifest.outputs.get("mlflow_artifacts", []):  # per-sample data for the gate
            path = manifest.dir / rel
            if path.is_dir():
                self.client.log_artifacts(run.info.run_id, str(path), artifact_path=rel)
            elif path.is_file():
                self.client.log_artifact(run.info.run_id, str(path))
        if "table" in manifest.outputs:  # a JSON file of columns {name: [values]}
            self.client.log_table(run.info.run_id, data=json.loads(
                manifest.path("table").read_text()), artifact_file=manifest.outputs["table"])
        self.client.set_terminated(run.info.run_id, "FINISHED")

    def finish(self, report: Manifest) -> dict[str, Any]:
        data = json.loads(report.path("report_json").read_text())
        self._log(self.parent_id, metrics=flatten(data["metrics"]))
        self._tag_license(data.get("license"))
        for name in ("report_md", "report_json"):
            self.client.log_artifact(self.parent_id, str(report.path(name)))
        self.client.set_terminated(self.parent_id, "FINISHED")
        return {"tracking_uri": self.uri, "experiment_id": self.experiment_id,
                "run_id": self.parent_id}

    def _tag_license(self, verdict: dict[str, Any] | None) -> None:
        """Tags to filter runs by in the UI: license, commercial_ok, obligations."""
        if not verdict:
            return
        ok = {True: "true", False: "false", None: "unknown"}[verdict["commercial_ok"]]
        obligations = "; ".join(f"{o['text']} ({o['cite']})" for o in verdict["obligations"])
        tags = {"license": ",".join(verdict["licenses"]) or "unknown", "commercial_ok": ok,
                "obligations": obligations[:5000] or "none",
                "license.verdict": verdict["status"]}
        from mlflow.entities import RunTag

        self.client.log_batch(self.parent_id, tags=[RunTag(k, v) for k, v in tags.items()])

    def _log_calibration_input(self, run_id: str, manifest: Manifest) -> None:
        """Dataset lineage in MLflow's own terms: source, digest and the samples drawn."""
        import mlflow.data
        import pandas as pd
        from mlflow.entities import DatasetInput, InputTag

        lineage = manifest.outputs["lineage"]
        source = lineage["source"]
        frame = pd.DataFrame({"record_index": manifest.outputs["record_indices"]})
        dataset = mlflow.data.from_pandas(
            frame, source=str(source["path"]), name=f"calibration:{Path(source['path']).name}"
        )
        tags = [InputTag("mlflow.data.context", "calibration"),
                InputTag("quench.seed", str(lineage["seed"])),
                InputTag("quench.max_seq_length", str(lineage["max_seq_length"]))]
        entity = DatasetInput(dataset._to_mlflow_entity(), tags)
        for parent_or_child in (run_id, self.parent_id):
            self.client.log_inputs(parent_or_child, datasets=[entity])

    def fail(self, exc: BaseException) -> None:
        if self.parent_id is None:
            return
        status = "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED"
        self.client.set_tag(self.parent_id, "quench.error", f"{type(exc).__name__}: {exc}"[:4000])
        self.client.set_terminated(self.parent_id, status)

    def _log(
        self, run_id: str, params: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
    ) -> None:
        """Batched, synchronous logging; None values are dropped, metrics must be numbers."""
        from mlflow.entities import Metric, Param

        now = _now_ms()
        param_list = [Param(k, str(v)[:6000]) for k, v in (params or {}).items() if v is not None]
        metric_list = [
            Metric(k, float(v), now, 0)
            for k, v in (metrics or {}).items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        ]
        for i in range(0, max(len(param_list), len(metric_list)), BATCH):
            self.client.log_batch(
                run_id, metrics=metric_list[i : i + BATCH], params=param_list[i : i + BATCH]
            )

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


def _now_ms() -> int:
    return int(time.time() * 1000)
