"""`quench promote`: registry versions with aliases that resolve back to the runs they came from."""

from __future__ import annotations

import json

import pytest
from mlflow.tracking import MlflowClient

from quench.tracking.lookup import resolve_run

pytestmark = pytest.mark.e2e


def test_aliases_resolve_to_runs_and_compare_uses_them(two_runs, cli, tmp_path):
    uri = two_runs["uri"]
    code, out, err = cli("promote", two_runs["tinystories-rtn-w4a16"], "--model", "tinystories",
                         "--alias", "candidate", "--alias", "production", "--tracking-uri", uri)
    assert code == 0, err
    code, _, err = cli("promote", two_runs["tinystories-none"], "--model", "tinystories",
                       "--alias", "baseline", "--tracking-uri", uri)
    assert code == 0, err
    client = MlflowClient(uri)
    version = client.get_model_version_by_alias("tinystories", "candidate")
    assert version.run_id == two_runs["tinystories-rtn-w4a16"]
    # This machine still has the run's published folder (run.json names its quantize key).
    assert version.source == str(two_runs["out"] / "tinystories-rtn-w4a16" / "model")
    assert version.tags["quench.source"] == "published folder"
    for ref, name in (("tinystories@baseline", "tinystories-none"),
                      ("models:/tinystories@production", "tinystories-rtn-w4a16")):
        assert resolve_run(client, ref).info.run_id == two_runs[name]
    # Two aliases of one run give one row; order follows --runs.
    code, _, err = cli("compare", "--tracking-uri", uri, "--out", tmp_path, "--no-record",
                       "--runs", "tinystories@baseline", "tinystories@candidate",
                       "models:/tinystories@production")
    assert code == 0, err
    rows = json.loads((tmp_path / "compare.json").read_text())["runs"]
    assert [r["name"] for r in rows] == ["tinystories-none", "tinystories-rtn-w4a16"]


@pytest.mark.parametrize("extra, message", [
    (["--model", "org/name", "--alias", "candidate"], "no '/'"),
    (["--model", "tinystories", "--alias", "latest"], "reserved"),
    (["--model", "tinystories", "--alias", "v3"], "reserved"),
])
def test_bad_names_are_refused(two_runs, cli, extra, message):
    code, _, err = cli("promote", two_runs["tinystories-none"], *extra,
                       "--tracking-uri", two_runs["uri"])
    assert code == 2 and message in err, err


def test_unknown_run_is_an_error(two_runs, cli):
    code, _, err = cli("promote", "f" * 32, "--model", "tinystories", "--alias", "candidate",
                       "--tracking-uri", two_runs["uri"])
    assert code == 2 and "not found in MLflow" in err, err
