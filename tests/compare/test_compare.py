"""`quench compare` on real MLflow runs of the real pipeline: table, Markdown, PNG, its own run."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.image
import pytest
from mlflow.tracking import MlflowClient

from quench.tracking.tracker import flatten

from ..conftest import REPO, perturbed_copy, read_json, run_id_of, run_quench, small_run_args
from .conftest import EXPERIMENT

pytestmark = pytest.mark.e2e
NAMES = ("tinystories-none", "tinystories-rtn-w4a16")


def compare_args(two_runs, out: Path, *extra: str) -> list[str]:
    return ["compare", "--tracking-uri", two_runs["uri"], "--out", str(out), *extra]


@pytest.fixture(scope="module")
def compared(two_runs, tmp_path_factory):
    """One compare through the real CLI subprocess, as a user runs it."""
    out = tmp_path_factory.mktemp("compare-out")
    result = run_quench(*compare_args(two_runs, out, "--experiment", EXPERIMENT))
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result


def test_table_matches_each_runs_report(two_runs, compared):
    out, result = compared
    data = json.loads((out / "compare.json").read_text())
    assert [r["name"] for r in data["runs"]] == list(NAMES)
    for row in data["runs"]:
        assert row["run_id"] == two_runs[row["name"]]
        report = read_json(two_runs["out"] / row["name"] / "report.json")
        expected = flatten(report["metrics"])
        for key, value in row["metrics"].items():
            assert value == pytest.approx(expected.get(key), rel=1e-12), key
        assert row["license"].startswith("apache-2.0 (commercial: true")
    for name in NAMES:  # the console shows the same table
        assert f"| {name} | `{two_runs[name]}` |" in result.stdout


def test_task_accuracy_with_stderr_only_where_measured(two_runs, compared):
    out, _ = compared
    runs = {r["name"]: r for r in json.loads((out / "compare.json").read_text())["runs"]}
    assert runs["tinystories-none"]["lm_eval"] == []
    report = read_json(two_runs["out"] / "tinystories-rtn-w4a16" / "report.json")
    expected = {(r["task"], r["metric"]): (r["candidate"], r["candidate_stderr"])
                for r in report["lm_eval"]["rows"]}
    got = {(a["task"], a["metric"]): (a["value"], a["stderr"])
           for a in runs["tinystories-rtn-w4a16"]["lm_eval"]}
    assert got == expected and ("arc_easy", "acc") in got
    value, stderr = got[("arc_easy", "acc")]
    table = (out / "compare.md").read_text()
    assert "arc_easy acc" in table and f"{value:.4g} ± {stderr:.2g}" in table
    lines = table.splitlines()
    column = [c.strip() for c in lines[4].split("|")].index("arc_easy acc")
    none_line = next(x for x in lines if x.startswith("| tinystories-none |"))
    assert [c.strip() for c in none_line.split("|")][column] == ""  # empty, not a number


def test_pareto_png_is_a_real_plot(compared):
    out, _ = compared
    image = matplotlib.image.imread(out / "pareto.png")
    assert image.shape[0] > 300 and image.shape[1] > 400
    assert image.std() > 0.01  # not a blank canvas
    text = (out / "compare.md").read_text()
    assert "![Pareto plot](pareto.png)" in text
    front = next(x for x in text.splitlines() if x.startswith("- Pareto front (size):"))
    sizes = {r["name"]: r["metrics"]["candidate.size_bytes"]
             for r in json.loads((out / "compare.json").read_text())["runs"]}
    assert min(sizes, key=sizes.get) in front  # the smallest run is always on the front


def test_comparison_is_its_own_mlflow_run(two_runs, compared):
    out, result = compared
    client = MlflowClient(two_runs["uri"])
    experiment = client.get_experiment_by_name(EXPERIMENT).experiment_id
    found = client.search_runs([experiment], "tags.`quench.kind` = 'compare'")
    run_id = result.stdout.strip().rsplit(" ", 1)[-1]
    run = next(r for r in found if r.info.run_id == run_id)
    assert run.info.status == "FINISHED" and "mlflow.parentRunId" not in run.data.tags
    assert run.data.tags["quench.compared_runs"] == ",".join(two_runs[n] for n in NAMES)
    names = {a.path for a in client.list_artifacts(run_id)}
    assert names == {"compare.md", "compare.json", "pareto.png"}
    logged = Path(client.download_artifacts(run_id, "compare.md", str(out / "dl")))
    assert logged.read_text() == (out / "compare.md").read_text()


def test_filters_by_tag_model_and_explicit_runs(two_runs, cli, tmp_path):
    code, out, err = cli(*compare_args(two_runs, tmp_path / "a", "--tag", "quench.method=rtn",
                                       "--no-record"))
    assert code == 0, err
    rows = json.loads((tmp_path / "a" / "compare.json").read_text())["runs"]
    assert [r["name"] for r in rows] == ["tinystories-rtn-w4a16"]
    code, _, err = cli(*compare_args(two_runs, tmp_path / "b", "--model",
                                     "raincandy-u/TinyStories-656K", "--no-record"))
    assert code == 0, err
    assert len(json.loads((tmp_path / "b" / "compare.json").read_text())["runs"]) == 2
    code, _, err = cli(*compare_args(two_runs, tmp_path / "c", "--no-record", "--runs",
                                     two_runs["tinystories-none"]))
    assert code == 0, err
    rows = json.loads((tmp_path / "c" / "compare.json").read_text())["runs"]
    assert [r["run_id"] for r in rows] == [two_runs["tinystories-none"]]


@pytest.mark.parametrize("extra, message", [
    (["--model", "no/such-model"], "no finished quench run"),
    (["--experiment", "no-such-experiment"], "does not exist"),
    (["--tag", "quench.method=gptq"], "no finished quench run"),
    (["--runs", "0" * 32], "not found in MLflow"),
    (["--runs", "tinystories@nothing"], "not found in MLflow"),
    (["--tag", "no-equals-sign"], "expected KEY=VALUE"),
])
def test_nothing_found_is_an_error(two_runs, cli, tmp_path, extra, message):
    code, out, err = cli(*compare_args(two_runs, tmp_path, "--no-record", *extra))
    assert code == 2 and message in err, err
    assert not (tmp_path / "compare.md").exists()


def test_missing_store_is_an_error_not_a_new_store(cli, tmp_path):
    store = tmp_path / "none.db"
    code, _, err = cli("compare", "--tracking-uri", f"sqlite:///{store}", "--out", tmp_path)
    assert code == 2 and "no MLflow store" in err
    assert not store.exists()


def test_runs_of_different_base_models_are_not_ranked_together(two_runs, tiny_model, cli,
                                                               tmp_path):
    other = perturbed_copy(tiny_model, tmp_path / "other-model")
    result = run_quench("run", str(REPO / "recipes" / "tinystories-none.yaml"),
                        *small_run_args(two_runs["out"], max_windows=8), "name=other-model",
                        f"model.id={other}", "tracking.experiment=quench-other")
    assert result.returncode == 0, result.stderr[-3000:]
    runs = ["--runs", two_runs["tinystories-none"], run_id_of(result), "--no-record"]
    code, _, err = cli("compare", "--tracking-uri", two_runs["uri"], "--out", tmp_path, *runs)
    assert code == 2 and "quantize 2 different base models" in err, err
    assert "tinystories-none quantize" in err and "other-model quantize" in err
    code, out, err = cli("compare", "--tracking-uri", two_runs["uri"], "--out", tmp_path,
                         *runs, "--allow-cross-model")
    assert code == 0, err
    assert "- cross-model comparison (--allow-cross-model)" in out
