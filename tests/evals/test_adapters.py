"""Adapters and rendering: the built-in lm-eval tasks read the mirror's files as the originals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from quench.evals.render import render
from quench.evals.results import read_samples
from quench.evals.tasks import local_tasks


def _rows(path: Path) -> list[dict]:
    return read_samples(path)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory, mirror: Path):
    """evals/ rendered once, and lm-eval's own Task objects for every mirrored task."""
    from lm_eval.tasks import TaskManager

    out = tmp_path_factory.mktemp("rendered")
    origins = render(out, mirror)
    manager = TaskManager(include_path=str(out / "tasks"), include_defaults=False)
    names = [t.names[0] for t in local_tasks() if t.adapter]
    return out, origins, manager.load(names)["tasks"]


def _docs(task, n=None):
    docs = list(task.test_docs() if task.has_test_docs() else task.validation_docs())
    return docs[:n] if n else docs


def test_every_mirrored_task_renders_with_absolute_paths(rendered):
    out, origins, tasks = rendered
    expected = {"piqa": 1838, "arc_easy": 2376, "arc_challenge": 1172, "winogrande": 1267,
                "boolq": 3270, "openbookqa": 500, "lambada_openai": 5153, "wikitext": 62}
    assert {name: o["records"] for name, o in origins.items()} == expected
    for name, task in tasks.items():
        assert len(_docs(task)) == expected[name], name
        text = (out / "tasks" / f"{name}.yaml").read_text()
        assert "${" not in text and "quench:" not in text
        data_files = task.config.dataset_kwargs["data_files"]
        assert all(Path(p).is_absolute() and Path(p).is_file() for p in data_files.values())


def test_piqa_joins_the_labels_file(rendered, mirror):
    task = rendered[2]["piqa"]
    source = _rows(mirror / "data/piqa/valid.jsonl")
    labels = (mirror / "data/piqa/valid-labels.lst").read_text().split()
    for doc, original, label in zip(_docs(task), source, labels, strict=True):
        assert task.doc_to_choice(doc) == [original["sol1"], original["sol2"]]
        assert task.doc_to_target(doc) == int(label)
        assert task.doc_to_text(doc) == f"Question: {original['goal']}\nAnswer:"


@pytest.mark.parametrize("name, folder", [
    ("arc_easy", "arc_easy_llmfoundry_icl/arc_easy.jsonl"),
    ("arc_challenge", "arc_challenge_llmfoundry_icl/arc_challenge.jsonl"),
    ("openbookqa", "openbookqa_llmfoundry_icl/openbook_qa.jsonl"),
    ("boolq", "boolq_llmfoundry_icl/boolq.jsonl"),
])
def test_query_choices_gold_files_keep_choices_and_gold(rendered, mirror, name, folder):
    task = rendered[2][name]
    source = _rows(mirror / "data" / folder)
    for doc, original in zip(_docs(task), source, strict=True):
        assert task.doc_to_choice(doc) == original["choices"]
        assert task.doc_to_target(doc) == original["gold"]
    first = task.doc_to_text(_docs(task, 1)[0])
    if name.startswith("arc"):  # the built-in prompt adds "Question: " back
        assert first == source[0]["query"] + "\nAnswer:"
    elif name == "boolq":  # built-in: "{passage}\nQuestion: {question}?\nAnswer:"
        passage, question = source[0]["query"].removeprefix("Passage: ").split("\nQuestion: ")
        assert first == f"{passage}\nQuestion: {question}\nAnswer:"
    else:
        assert first == source[0]["query"]


def test_winogrande_partial_scoring_sees_the_source_prefixes(rendered, mirror):
    task = rendered[2]["winogrande"]
    source = _rows(mirror / "data/winogrande_llmfoundry_icl/winogrande.jsonl")
    for doc, original in zip(_docs(task), source, strict=True):
        assert task.doc_to_choice(doc) == original["context_options"]
        assert task.doc_to_target(doc) == original["continuation"]
        assert task.doc_to_text(doc) == original["gold"]


def test_lambada_and_wikitext(rendered, mirror):
    lambada = rendered[2]["lambada_openai"]
    doc = _docs(lambada, 1)[0]
    words = _rows(mirror / "data/lambada_openai/lambada_test.jsonl")[0]["text"].split(" ")
    assert lambada.doc_to_target(doc) == " " + words[-1]
    assert lambada.doc_to_text(doc) == " ".join(words[:-1])
    pages = [d["page"] for d in _docs(rendered[2]["wikitext"])]
    raw = (mirror / "data/wikitext2_raw_test/wiki.test.raw").read_text().replace("\r\n", "\n")
    assert pages[0].startswith(" = Robert Boulter = \n Robert Boulter is an English film")
    assert all(p.startswith(" = ") and not p.startswith(" = = ") for p in pages)
    assert sum(len(p.splitlines()) for p in pages) == len([x for x in raw.split("\n") if x])


def test_without_a_mirror_the_bundled_or_builtin_tasks_are_used(tmp_path):
    origins = render(tmp_path, None)
    assert origins["boolq"] == {"source": "built-in task (no copy in the mirror, none bundled)"}
    assert not (tmp_path / "tasks" / "boolq.yaml").exists()
    assert origins["piqa"]["source"] == "bundled"  # tests/test_bundled_data.py checks more
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == [
        "arc_easy.jsonl", "lambada_openai.jsonl", "piqa.jsonl"]


def test_only_wanted_tasks_are_converted(tmp_path, mirror):
    origins = render(tmp_path, mirror, wanted={"piqa"})
    assert list(origins) == ["piqa"]
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["piqa.jsonl"]


def test_bad_adapter_and_placeholder_are_named(tmp_path, mirror):
    evals = tmp_path / "evals"
    evals.mkdir()
    (evals / "mine.yaml").write_text(
        "quench: {adapter: nosuch.convert, sources: [data/piqa/valid.jsonl]}\ntask: mine\n")
    with pytest.raises(ValueError, match=r"mine.yaml: quench.adapter 'nosuch.convert'"):
        render(tmp_path / "a", mirror, evals)
    (evals / "mine.yaml").write_text("task: mine\ndataset_path: ${NOPE}/x.jsonl\n")
    with pytest.raises(ValueError, match=r"mine.yaml: \$\{NOPE\} is not available"):
        render(tmp_path / "b", mirror, evals)


def test_user_task_keeps_its_function_hooks(tmp_path, mirror):
    """A YAML under evals/ without a quench block: placeholders filled, !function kept."""
    from lm_eval.tasks import TaskManager

    evals = tmp_path / "evals"
    evals.mkdir()
    (evals / "hooks.py").write_text("def text(doc):\n    return doc['text'][:20]\n")
    (evals / "mine.yaml").write_text(
        "task: my_lambada\ndataset_path: json\ndataset_kwargs:\n  data_files:\n"
        "    test: ${QUENCH_MIRROR}/data/lambada_openai/lambada_test.jsonl\n"
        "output_type: loglikelihood_rolling\ntest_split: test\ndoc_to_text: ''\n"
        "doc_to_target: !function hooks.text\n")
    origins = render(tmp_path / "out", mirror, evals)
    assert origins == {"my_lambada": {"source": "evals/mine.yaml"}}
    task = TaskManager(include_path=str(tmp_path / "out" / "tasks"), include_defaults=False
                       ).load(["my_lambada"])["tasks"]["my_lambada"]
    first = json.loads((mirror / "data/lambada_openai/lambada_test.jsonl").open().readline())
    assert task.doc_to_target(_docs(task, 1)[0]) == first["text"][:20]
