"""A tracking outage loses nothing: the run completes (exit 0) in bounded time with a pending
record; `quench sync` uploads it to a real MLflow server exactly once, after a partial upload
too; an unwritable SQLite store does the same and the next run uploads it by itself. The run's
recipe description holds a token that no file written and no MLflow field may contain."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from quench.cli import main
from quench.runner.graph import node_names
from quench.tracking.pending import pending_dir
from quench.tracking.tracker import flatten
from quench.tracking.upload import UPLOAD_TAG, experiment_id, log_contents, open_run

from ..conftest import DEFAULT_RECIPE, read_json, run_quench
from ..tracking.servers import free_port, start_mlflow_server

pytestmark = pytest.mark.e2e

RUN_NAME = "tinystories-rtn-w4a16"
TOKEN = "hf_" + "Zq8rT2vLm9XkP4sWn7YbC3dF6gH1jK5aQe"  # the shape of a Hugging Face token
PLAIN = "plainsecretword42"  # $HF_TOKEN's value in these runs
FAST = ["tracking.timeout_s=6", "tracking.retries=1"]  # 3 s a request, 2 tries
STAGE_RUNS = sorted(n for n in node_names() if n != "track")


def quench_run(out: Path, uri: str, *extra: str):
    """The default recipe, small, logged to `uri`, with secrets planted in every input that
    reaches a file: a token in its description and a tag, and $HF_TOKEN's plain value (no
    token shape: known only as that variable's) in its description and a tag too."""
    began = time.perf_counter()
    result = run_quench("run", str(DEFAULT_RECIPE), f"output.dir={out}",
                        "evaluation.perplexity.max_windows=8", f"tracking.tracking_uri={uri}",
                        f"description=ours; HF token {TOKEN} pasted by mistake, {PLAIN}",
                        f"tracking.tags={{owner: {TOKEN}, team: {PLAIN}}}", *FAST, *extra,
                        env={"HF_TOKEN": PLAIN})
    return result, time.perf_counter() - began


def records(out: Path, uri: str | None = None) -> list[dict]:
    """The pending-upload records of an output folder (those meant for `uri`)."""
    found = [json.loads(p.read_text()) for p in sorted(pending_dir(out).glob("*.json"))]
    return [r for r in found if uri is None or r["tracking_uri"] == uri]


@pytest.fixture(scope="module")
def outage(mirror, tmp_path_factory):
    """One run while nothing listens on the tracking port (the port a server gets later)."""
    out = tmp_path_factory.mktemp("outage") / "out"
    port = free_port()
    result, seconds = quench_run(out, f"http://127.0.0.1:{port}")
    print(f"\nrun during the outage: {seconds:.1f} s")
    return out, port, result


@pytest.fixture(scope="module")
def server(outage, tmp_path_factory):
    """A real `mlflow server` started on the port the outage run could not reach."""
    out, port, _ = outage
    folder = tmp_path_factory.mktemp("server")
    started = start_mlflow_server(f"sqlite:///{folder / 'server.db'}", folder, port=port)
    yield started
    assert not started.stop(), "mlflow server processes left behind"


def test_outage_run_completes_and_keeps_everything(outage):
    out, port, result = outage
    assert result.returncode == 0, result.stderr[-3000:]
    notices = [x for x in result.stderr.splitlines() if x.startswith("tracking: ")]
    assert notices == [f"tracking: http://127.0.0.1:{port} unavailable ([Errno 111] Connection "
                       f"refused); this run is kept for upload: quench sync {out}"]
    assert "Traceback" not in result.stderr
    assert f"tracking: not logged to http://127.0.0.1:{port}; kept in" in result.stdout
    run_dir = out / RUN_NAME
    assert {"report.md", "report.json", "run.json", "quench.log"} <= {
        p.name for p in run_dir.iterdir()}
    assert (run_dir / "model" / "model.safetensors").stat().st_size > 0
    # the outage cost one bounded call (in resolve, the first stage), not MLflow's ~4 minutes
    # of retries, and nothing in the stages after it
    nodes = read_json(run_dir / "run.json")["nodes"]
    assert nodes["resolve"]["seconds"] < 15 and nodes["track"]["seconds"] < 2
    [record] = records(out)
    assert record["tracking_uri"] == f"http://127.0.0.1:{port}"
    assert record["parent"]["status"] == "FINISHED"
    assert sorted(c["name"] for c in record["children"]) == STAGE_RUNS
    report = read_json(run_dir / "report.json")
    logged = {k: v for k, v, _ in record["parent"]["metrics"]}
    assert logged == pytest.approx({k: float(v) for k, v in flatten(report["metrics"]).items()})


def parents(client: MlflowClient, upload_id: str) -> list:
    exp = client.get_experiment_by_name("quench-tinystories")
    return client.search_runs([exp.experiment_id], f"tags.`{UPLOAD_TAG}` = '{upload_id}'")


def children(client: MlflowClient, parent_id: str, exp_id: str) -> list[str]:
    runs = client.search_runs([exp_id], f"tags.mlflow.parentRunId = '{parent_id}'")
    return sorted(r.info.run_name for r in runs)


def test_sync_after_a_partial_upload_logs_each_run_once(outage, server, capsys):
    out, _, _ = outage
    [record] = records(out)
    client = MlflowClient(server.uri)
    # a sync cut short: the parent and two stage runs arrived, one of them half-logged
    exp_id = experiment_id(client, record)
    parent_id, _ = open_run(client, exp_id, record["parent"], None)
    first, second = record["children"][:2]
    log_contents(client, open_run(client, exp_id, first, parent_id)[0], first)
    open_run(client, exp_id, second, parent_id)
    began = time.perf_counter()
    assert main(["sync", str(out)]) == 0
    print(f"sync: {time.perf_counter() - began:.1f} s")
    said = capsys.readouterr().out
    assert f"uploaded {RUN_NAME} ({record['upload_id'][:8]}) to {server.uri} run {parent_id}" \
        in said
    assert records(out) == []
    [parent] = parents(client, record["upload_id"])
    assert parent.info.run_id == parent_id and parent.info.status == "FINISHED"
    assert children(client, parent_id, exp_id) == STAGE_RUNS  # each once
    report = read_json(out / RUN_NAME / "report.json")
    assert parent.data.metrics == pytest.approx(
        {k: float(v) for k, v in flatten(report["metrics"]).items()})
    assert {"report.md", "report.json"} <= {a.path for a in client.list_artifacts(parent_id)}
    for child in client.search_runs([exp_id], f"tags.mlflow.parentRunId = '{parent_id}'"):
        assert child.info.status == "FINISHED"
        assert len(client.get_metric_history(child.info.run_id, "wall_seconds")) == 1
    # the token: redacted in the params and tags of every run
    for run in client.search_runs([exp_id]):
        fields = json.dumps([run.data.params, run.data.tags])
        assert TOKEN not in fields
    assert "[REDACTED]" in parent.data.params["description"]

    assert main(["sync", str(out)]) == 0  # again: nothing left, nothing duplicated
    assert "nothing to upload" in capsys.readouterr().out
    assert len(parents(client, record["upload_id"])) == 1
    assert children(client, parent_id, exp_id) == STAGE_RUNS


def test_unwritable_sqlite_store_then_the_next_run_uploads_it(outage):
    out, _, _ = outage
    blocker = out / "not-a-folder"
    blocker.write_text("a file where the store's folder should be")
    uri = f"sqlite:///{blocker}/mlflow.db"
    result, seconds = quench_run(out, uri, "--force", "report")
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"tracking: {uri} unavailable ([Errno 17] File exists" in result.stderr
    [record] = records(out, uri)
    assert record["parent"]["status"] == "FINISHED"

    blocker.unlink()  # the store can be created now: the next (all cached) run uploads it
    result, seconds = quench_run(out, uri)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"tracking: uploaded 1 pending run(s) to {uri}" in result.stderr
    assert records(out, uri) == []
    client = MlflowClient(uri)
    [parent] = parents(client, record["upload_id"])
    assert parent.info.status == "FINISHED"
    assert children(client, parent.info.run_id, parent.info.experiment_id) == STAGE_RUNS


def test_no_file_written_holds_the_token(outage, server):
    out, _, _ = outage  # after the runs and syncs above: reports, logs, cache, records, stores
    written = [*out.rglob("*"), *server.log.parent.rglob("*")]
    leaks = [p for p in written if p.is_file()
             and any(s.encode() in p.read_bytes() for s in (TOKEN, PLAIN))]
    assert leaks == []
    report = (out / RUN_NAME / "report.md").read_text() + (out / RUN_NAME / "report.json"
                                                           ).read_text()
    assert "ours; HF token [REDACTED] pasted by mistake" in report
    assert "[REDACTED]" in (out / RUN_NAME / "quench.log").read_text()
