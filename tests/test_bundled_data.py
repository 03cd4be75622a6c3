"""The data excerpts quench ships: index, provenance, equality with the mirror, rebuilds, use."""

from __future__ import annotations

import gzip
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from quench.bundled.excerpts import data_dir, excerpts
from quench.evals.render import render
from quench.text_sources import TextSource, load_texts, resolve_text_source

from .conftest import REPO, run_quench

LM_EVAL_EXCERPTS = ("piqa", "arc_easy", "lambada_openai")
MIRROR_FILES = {"wikitext2": "data/wikitext2_raw_test/wiki.test.raw",
                "wikitext2-valid": "data/wikitext2_valid_calibration/valid.txt"}
TITLE_PREFIX = " = "


def _records(path: Path, fmt: str) -> list:
    lines = [x for x in gzip.decompress(path.read_bytes()).decode("utf-8").split("\n") if x]
    return [json.loads(x) for x in lines] if fmt == "jsonl" else lines


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def no_mirror(tmp_path, monkeypatch) -> Path:
    """$QUENCH_MIRROR pointing at an empty folder: nothing is mirrored."""
    empty = tmp_path / "empty-mirror"
    empty.mkdir()
    monkeypatch.setenv("QUENCH_MIRROR", str(empty))
    return empty


def test_every_excerpt_matches_its_index_and_source_note():
    found = excerpts()
    assert set(found) == {"wikitext2", "wikitext2-valid", *LM_EVAL_EXCERPTS}
    total = 0
    for name, e in found.items():
        assert e.path.parent == data_dir() / name and e.path.suffix == ".gz"
        assert _sha256(e.path) == e.sha256, name
        assert len(_records(e.path, e.format)) == e.records, name
        note = (e.path.parent / "SOURCE.md").read_text()
        for fact in (e.sha256, str(e.records), e.license, e.path.name):
            assert fact in note, (name, fact)
        total += e.path.stat().st_size
    assert total < 2 * 1024 * 1024, f"bundled data is {total:,} bytes"


def test_excerpts_are_big_enough_for_the_recipes():
    found = excerpts()
    assert found["wikitext2-valid"].records >= 2 * 512  # the recipes draw up to 512 samples
    for name in LM_EVAL_EXCERPTS:
        assert found[name].records >= 500, name  # recipes score limit: 300 documents


def test_no_bundled_file_is_a_copy_of_a_mirror_file(mirror):
    theirs = {_sha256(p) for p in (mirror / "data").rglob("*") if p.is_file()}
    for path in data_dir().rglob("*"):
        if path.is_file():
            assert _sha256(path) not in theirs, path
            if path.suffix == ".gz":
                content = hashlib.sha256(gzip.decompress(path.read_bytes())).hexdigest()
                assert content not in theirs, f"{path} decompresses to a whole mirror file"


@pytest.mark.parametrize("name", sorted(MIRROR_FILES))
def test_text_excerpts_are_the_mirrors_first_whole_articles(mirror, name):
    bundled = load_texts(TextSource("file", path=excerpts()[name].path))
    full = load_texts(TextSource("file", path=mirror / MIRROR_FILES[name]))
    assert bundled == full[: len(bundled)] and len(bundled) < len(full)
    assert bundled[0].startswith(TITLE_PREFIX) and full[len(bundled)].startswith(TITLE_PREFIX)


def test_lm_eval_excerpts_are_the_mirrors_first_documents(tmp_path, mirror):
    ours = render(tmp_path / "bundled", None, wanted=set(LM_EVAL_EXCERPTS))
    theirs = render(tmp_path / "mirror", mirror, wanted=set(LM_EVAL_EXCERPTS))
    for name in LM_EVAL_EXCERPTS:
        assert ours[name]["source"] == "bundled" and theirs[name]["source"] == "mirror"
        bundled = (tmp_path / "bundled" / "data" / f"{name}.jsonl").read_text().splitlines()
        full = (tmp_path / "mirror" / "data" / f"{name}.jsonl").read_text().splitlines()
        assert len(bundled) == ours[name]["records"] < theirs[name]["records"]
        assert bundled == full[: len(bundled)], name


def test_the_build_script_reproduces_the_committed_files(tmp_path, mirror):
    out = tmp_path / "data"
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "build_bundled_data.py"), "--mirror", str(mirror),
         "--out", str(out)], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 0, result.stderr
    built = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    committed = sorted(p.relative_to(data_dir()) for p in data_dir().rglob("*") if p.is_file())
    assert built == committed
    for rel in built:
        assert (out / rel).read_bytes() == (data_dir() / rel).read_bytes(), rel


def test_render_without_a_mirror_writes_the_bundled_tasks(tmp_path, no_mirror):
    from lm_eval.tasks import TaskManager

    origins = render(tmp_path, None)
    for name in LM_EVAL_EXCERPTS:
        assert origins[name]["source"] == "bundled" and origins[name]["bundled"] == name
        assert origins[name]["records"] == excerpts()[name].records
        assert origins[name]["license"] == excerpts()[name].license
    assert origins["boolq"]["source"].startswith("built-in task")  # nothing bundled for it
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == [
        f"{n}.jsonl" for n in sorted(LM_EVAL_EXCERPTS)]
    manager = TaskManager(include_path=str(tmp_path / "tasks"), include_defaults=False)
    tasks = manager.load(list(LM_EVAL_EXCERPTS))["tasks"]
    for name, task in tasks.items():
        docs = list(task.test_docs() if task.has_test_docs() else task.validation_docs())
        assert len(docs) == excerpts()[name].records, name


def test_perplexity_windows_of_the_excerpt_are_the_mirrors_first_windows(tiny_model, mirror,
                                                                        no_mirror):
    """Same windows, so perplexity over the excerpt's start equals the mirror file's."""
    from quench.metrics.perplexity import make_windows
    from quench.models import load_tokenizer

    tokenizer = load_tokenizer(tiny_model)
    full = TextSource("file", path=mirror / MIRROR_FILES["wikitext2"])
    bundled = resolve_text_source("wikitext2", None, "test", "text", "dataset")
    assert bundled.origin == "bundled"
    windows = []
    for source in (bundled, full):
        ids = tokenizer("\n".join(load_texts(source)), add_special_tokens=False)["input_ids"]
        windows.append(make_windows(ids, 256, 256, tokenizer.bos_token_id, 256).inputs)
    assert windows[0].shape == (256, 257) and (windows[0] == windows[1]).all()


def test_smollm2_scores_at_least_256_windows_of_256_on_the_excerpt(smollm2_gguf, no_mirror):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(smollm2_gguf.parent, gguf_file=smollm2_gguf.name)
    source = resolve_text_source("wikitext2", None, "test", "text", "dataset")
    ids = tokenizer("\n".join(load_texts(source)), add_special_tokens=False)["input_ids"]
    assert len(ids) >= 256 * 256 + 1, f"{len(ids)} tokens"


def test_calibrate_stage_draws_from_the_bundled_excerpt(tmp_path, tiny_model, no_mirror):
    from quench.contract.manifest import Manifest
    from quench.contract.stage import StageContext
    from quench.recipe import load_recipe
    from quench.stages import get_stage
    from quench.tracking.tags import data_tags

    from .conftest import DEFAULT_RECIPE

    recipe = load_recipe(DEFAULT_RECIPE, ["calibration.source=wikitext2-valid",
                                          "calibration.num_samples=8"])
    model = Manifest(tmp_path, {"key": "m", "status": "ran",
                                "outputs": {"model_dir": str(tiny_model)}})
    stage = get_stage("calibrate")
    result = stage.run(StageContext(recipe, {"model": model}, tmp_path, stage.config(recipe)))
    lineage = result.outputs["lineage"]
    excerpt = excerpts()["wikitext2-valid"]
    assert lineage["records_available"] == excerpt.records
    assert lineage["source"]["origin"] == "bundled"
    assert lineage["source"]["bundled"] == "wikitext2-valid"
    assert lineage["digest"] == {excerpt.path.name: excerpt.sha256}
    assert data_tags(result.outputs) == {"quench.data.source": str(excerpt.path),
                                         "quench.data.origin": "bundled",
                                         "quench.data.records": str(excerpt.records)}


@pytest.mark.parametrize("key", ["calibration.source", "evaluation.perplexity.dataset"])
def test_an_unknown_short_name_exits_2_naming_key_and_bundled_names(key):
    result = run_quench("validate", str(REPO / "recipes" / "tinystories-rtn-w4a16.yaml"),
                        f"{key}=wikitext3", timeout=300)
    assert result.returncode == 2, result.stderr
    assert f"{key}: 'wikitext3'" in result.stderr
    assert "wikitext2, wikitext2-valid" in result.stderr and "org/name" in result.stderr


def test_a_run_without_mirror_data_uses_the_excerpts_and_says_so(tmp_path, mirror, monkeypatch):
    """A machine with the model but no data and no hub: the default data is the bundled one,
    and report.json, report.md and MLflow name it (origin, records, license)."""
    from mlflow.tracking import MlflowClient

    from .conftest import read_json, small_run_args

    models_only = tmp_path / "mirror"
    models_only.mkdir()
    (models_only / "models").symlink_to(mirror / "models")
    monkeypatch.setenv("QUENCH_MIRROR", str(models_only))
    out = tmp_path / "out"
    result = run_quench("run", str(REPO / "recipes" / "tinystories-gptq-w4a16.yaml"),
                        *small_run_args(out, max_windows=8),
                        "evaluation.lm_eval={tasks: [piqa], limit: 4, batch_size: 8}")
    assert result.returncode == 0, result.stderr[-3000:]
    report = read_json(out / "tinystories-gptq-w4a16" / "report.json")
    found = excerpts()
    calibration, protocol = report["calibration"], report["perplexity_protocol"]
    assert calibration["source"]["origin"] == protocol["source"]["origin"] == "bundled"
    assert calibration["records_available"] == found["wikitext2-valid"].records
    assert protocol["records"] == found["wikitext2"].records
    assert report["lm_eval"]["tasks"]["piqa"]["source"] == "bundled"
    markdown = (out / "tinystories-gptq-w4a16" / "report.md").read_text()
    for use, name in (("calibration", "wikitext2-valid"), ("perplexity", "wikitext2")):
        e = found[name]
        assert f"| {use} | bundled | `{name}` | {e.records} | {e.license} |" in markdown
    assert (f"- piqa: quench's bundled excerpt `piqa` ({found['piqa'].records} documents, "
            f"{found['piqa'].license})") in markdown
    client = MlflowClient(f"sqlite:///{out}/mlflow.db")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    tags = {r.info.run_name: r.data.tags for r in runs}
    assert tags["calibrate"]["quench.data.origin"] == tags["evaluate"]["quench.data.origin"] == (
        "bundled")
    assert tags["calibrate"]["quench.data.records"] == str(found["wikitext2-valid"].records)
