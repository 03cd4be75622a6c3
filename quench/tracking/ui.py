"""The MLflow UI's runs table as quench's comparison: a saved view and the link that opens it.

MLflow 3.17's UI ignores the `mlflow.experimentKind` tag: an experiment opens on the page of
its global GenAI / Machine learning switch, taken from the `workflowType` URL parameter, else
the browser's last choice, else GenAI (its traces overview). The runs table's columns are no
URL parameter either; they come from the browser's last view or from a shared view: the URL
parameter `viewStateShareKey=KEY` loads the experiment tag `mlflow.sharedViewState.KEY`, a
JSON view (search filter, sort order, selected columns). quench writes that tag on each of
its experiments and links to the runs tab with both parameters.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable
from typing import Any

VIEW_KEY = "quench"
VIEW_TAG = f"mlflow.sharedViewState.{VIEW_KEY}"
# The comparison's columns (quench/compare/table.py) and verdicts, the headline ones first:
# perplexity change, KL, each lm-eval task's accuracy drop, size ratio, the gate's verdict.
HEADLINE = ("change.perplexity_pct", "candidate.kl_divergence", "change.size_ratio")
METRICS = (*HEADLINE, "candidate.perplexity", "candidate.top1_agreement", "candidate.size_bytes")
TAGS = ("quench.gate", "license.verdict", "quench.method", "quench.scheme")
# pipeline parent runs: not stage runs, nor the runs of `quench compare` or `quench sweep`
PARENT_RUNS = "tags.`quench.recipe` IS NOT NULL AND tags.`mlflow.parentRunId` IS NULL"
DROP = re.compile(r"^lm_eval\.[^.]+\.\w+_drop$")  # a task's accuracy drop (parent metric)


def accuracy_drops(report: dict[str, Any]) -> dict[str, float]:
    """Each lm-eval task's drop (baseline - candidate) of the gate's accuracy metric on hf:
    `lm_eval.<task>.<metric>_drop`; {} when lm-eval did not run."""
    metric = (report.get("recipe", {}).get("gate") or {}).get("accuracy_metric", "acc")
    return {f"lm_eval.{r['task']}.{metric}_drop": -float(r["change"])
            for r in (report.get("lm_eval") or {}).get("rows", [])
            if r["engine"] == "hf" and r["metric"] == metric and r.get("change") is not None}


def view_state(drop_keys: Iterable[str] = ()) -> dict[str, Any]:
    """The runs table: pipeline runs, newest first, with quench's columns."""
    def metrics(*keys: str) -> list[str]:
        return [f"metrics.`{k}`" for k in keys]

    columns = [*metrics(*HEADLINE[:2], *sorted(set(drop_keys)), *HEADLINE[2:]),
               f"tags.`{TAGS[0]}`", *metrics(*METRICS[len(HEADLINE):]),
               *(f"tags.`{t}`" for t in TAGS[1:])]
    return {
        "searchFilter": PARENT_RUNS, "orderByKey": "attributes.start_time", "orderByAsc": False,
        "startTime": "ALL", "lifecycleFilter": "Active", "datasetsFilter": [],
        "modelVersionFilter": "All Runs", "selectedColumns": columns, "columnOrder": columns,
        # wide enough for the header: a key's characters at about 7 px, plus the sort icon
        "columnWidths": {c: max(130, 7 * len(c.split("`")[1]) + 36) for c in columns},
        "runsHiddenMode": "SHOW_ALL",
    }


def publish_view(client: Any, experiment_id: str, current: dict[str, str],
                 metric_keys: Iterable[str] = ()) -> None:
    """Sets the experiment's view tag (`current`: its tags now), keeping the accuracy-drop
    columns it has and adding the runs' own; no call when the tag is up to date."""
    try:
        shown = json.loads(current.get(VIEW_TAG, "{}")).get("selectedColumns", [])
    except (ValueError, AttributeError):
        shown = []
    keys = {c.removeprefix("metrics.`").removesuffix("`") for c in shown if isinstance(c, str)}
    drops = {k for k in (*keys, *metric_keys) if DROP.match(k)}
    value = json.dumps(view_state(drops), separators=(",", ":"))
    if current.get(VIEW_TAG) != value:
        client.set_experiment_tag(experiment_id, VIEW_TAG, value)


def runs_page(server: str, experiment_id: str) -> str:
    """The link to an experiment's runs table in quench's view, on an MLflow server."""
    return (f"{server.rstrip('/')}/#/experiments/{experiment_id}/runs"
            f"?workflowType=machine_learning&viewStateShareKey={VIEW_KEY}")


LOCAL_UI = "http://127.0.0.1:5000"  # where `make ui` and `mlflow server` listen by default


def ui_line(tracking: dict[str, Any]) -> str | None:
    """What the CLI prints after a tracked run: the link to its runs table (for a local store,
    where `mlflow server` on that store shows it)."""
    uri = tracking.get("tracking_uri", "")
    if "run_id" not in tracking or not uri:
        return None
    if uri.startswith(("http://", "https://")):
        return f"mlflow ui: {runs_page(uri, tracking['experiment_id'])}"
    return (f"mlflow ui: {runs_page(LOCAL_UI, tracking['experiment_id'])} "
            f"(after `make ui`, or `mlflow server --backend-store-uri {uri}`)")


def store_links(store_uri: str, server: str) -> list[str]:
    """The runs-table link of each experiment in the store that has quench runs (newest
    first), writing the view tag where it is missing (a store from before it existed)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=store_uri)
    links = []
    for exp in client.search_experiments(order_by=["last_update_time DESC"]):
        if client.search_runs([exp.experiment_id], PARENT_RUNS, max_results=1):
            publish_view(client, exp.experiment_id, exp.tags)
            links.append(f"{exp.name}: {runs_page(server, exp.experiment_id)}")
    return links


if __name__ == "__main__":  # make ui: python -m quench.tracking.ui STORE_URI SERVER_URL
    found = store_links(sys.argv[1], sys.argv[2])
    print("\n".join(found) if found else f"no quench runs in {sys.argv[1]} yet: {sys.argv[2]}")
