"""quench's MLflow runs-table view (quench/tracking/ui.py), without a server: what the tag holds,
when it is written, and the link. tests/tracking/test_server.py opens it in a real browser."""

from __future__ import annotations

import json

import pytest
from mlflow.tracking import MlflowClient

from quench.compare.table import METRIC_COLUMNS
from quench.tracking.ui import METRICS, VIEW_TAG, accuracy_drops, publish_view, runs_page, ui_line


class CountingClient(MlflowClient):
    """The real client on a real store, counting the experiment-tag writes."""

    writes = 0

    def set_experiment_tag(self, experiment_id: str, key: str, value: str) -> None:
        self.writes += 1
        super().set_experiment_tag(experiment_id, key, value)


@pytest.fixture()
def store(tmp_path) -> tuple[CountingClient, str]:
    client = CountingClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    return client, client.create_experiment("quench-test")


def view_of(client: MlflowClient, exp_id: str) -> dict:
    return json.loads(client.get_experiment(exp_id).tags[VIEW_TAG])


def test_view_has_the_comparisons_columns_newest_pipeline_runs_first(store):
    client, exp_id = store
    publish_view(client, exp_id, client.get_experiment(exp_id).tags)
    view = view_of(client, exp_id)
    assert client.writes == 1
    assert {key for _, key, _ in METRIC_COLUMNS} <= set(METRICS)
    assert view["selectedColumns"][:4] == [
        "metrics.`change.perplexity_pct`", "metrics.`candidate.kl_divergence`",
        "metrics.`change.size_ratio`", "tags.`quench.gate`"]
    assert view["columnOrder"] == view["selectedColumns"]
    assert (view["orderByKey"], view["orderByAsc"]) == ("attributes.start_time", False)
    assert "tags.`mlflow.parentRunId` IS NULL" in view["searchFilter"]


def test_accuracy_drop_columns_are_kept_and_the_tag_written_only_when_it_changes(store):
    client, exp_id = store

    def publish(keys: list[str]) -> None:
        publish_view(client, exp_id, client.get_experiment(exp_id).tags, keys)

    publish(["change.size_ratio", "lm_eval.piqa.acc_drop"])
    publish(["change.size_ratio"])  # a run without lm-eval: the tag stays as it is
    assert client.writes == 1
    publish(["lm_eval.arc_easy.acc_drop"])
    assert client.writes == 2
    assert view_of(client, exp_id)["selectedColumns"][2:4] == [
        "metrics.`lm_eval.arc_easy.acc_drop`", "metrics.`lm_eval.piqa.acc_drop`"]


def test_accuracy_drop_is_baseline_minus_candidate_of_the_gated_metric_on_hf():
    rows = [{"engine": "hf", "task": "piqa", "metric": "acc", "change": -0.03},
            {"engine": "hf", "task": "piqa", "metric": "acc_norm", "change": -0.5},
            {"engine": "vllm", "task": "piqa", "metric": "acc", "change": -0.5},
            {"engine": "hf", "task": "boolq", "metric": "acc", "change": None}]
    report = {"recipe": {"gate": {"accuracy_metric": "acc"}}, "lm_eval": {"rows": rows}}
    assert accuracy_drops(report) == {"lm_eval.piqa.acc_drop": 0.03}
    assert accuracy_drops({"recipe": {}, "lm_eval": {}}) == {}


def test_link_only_for_a_server():
    page = "http://h:5000/#/experiments/3/runs?workflowType=machine_learning&viewStateShareKey=quench"
    assert runs_page("http://h:5000/", "3") == page
    tracked = {"tracking_uri": "http://h:5000", "experiment_id": "3", "run_id": "r"}
    assert ui_line(tracked) == f"mlflow ui: {page}"
    local = ui_line({**tracked, "tracking_uri": "sqlite:///x/mlflow.db"})
    assert local == (f"mlflow ui: {runs_page('http://127.0.0.1:5000', tracked['experiment_id'])}"
                     " (after `make ui`, or `mlflow server --backend-store-uri sqlite:///x/mlflow.db`)")
    assert ui_line({"tracking_uri": "http://h:5000", "pending_upload": "p"}) is None
