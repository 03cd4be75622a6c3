"""Offline-first resolution through the mirror."""

import pytest

from quench.bundled.excerpts import excerpts
from quench.errors import OfflineMiss, QuenchError
from quench.sources import find_model_in_mirror, resolve_model
from quench.text_sources import load_texts, resolve_text_source

KEY = "evaluation.perplexity.dataset"


def test_hub_id_resolves_to_mirror_case_insensitively(mirror, tiny_model):
    assert find_model_in_mirror("raincandy-u/TinyStories-656K") == tiny_model.resolve()
    resolved = resolve_model("raincandy-u/TinyStories-656K")
    assert resolved.origin == "mirror" and resolved.path == tiny_model.resolve()


def test_bare_name_folder_needs_provenance_naming_the_hub_id(tmp_path, monkeypatch):
    folder = tmp_path / "models" / "Llama-2-7B-GGUF"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    monkeypatch.setenv("QUENCH_MIRROR", str(tmp_path))
    assert find_model_in_mirror("TheBloke/Llama-2-7B-GGUF") is None  # no SOURCE.md
    (folder / "SOURCE.md").write_text("Upstream: thebloke/llama-2-7b-gguf on the hub\n")
    assert find_model_in_mirror("TheBloke/Llama-2-7B-GGUF") == folder
    assert find_model_in_mirror("someone-else/Llama-2-7B-GGUF") is None  # another org's model
    other = tmp_path / "models" / "someone-else--Llama-2-7B-GGUF"
    other.mkdir()
    (other / "config.json").write_text("{}")
    assert find_model_in_mirror("someone-else/Llama-2-7B-GGUF") == other


def test_local_path_wins(tiny_model):
    assert resolve_model(str(tiny_model)).origin == "local"


def test_offline_miss_names_the_key_and_the_mirror(mirror):
    with pytest.raises(QuenchError, match=r"model.id: 'nobody/nothing'.*HF_HUB_OFFLINE"):
        resolve_model("nobody/nothing")


def test_builtin_dataset_resolves_to_mirror_file(mirror):
    source = resolve_text_source("wikitext2", None, "test", "text", "evaluation.perplexity.dataset")
    assert source.kind == "file" and source.path.name == "wiki.test.raw"
    texts = load_texts(source)
    assert texts[0].strip() == "= Robert Boulter ="  # CRLF stripped, blank lines dropped
    assert all("\r" not in t and t.strip() for t in texts[:200])


def test_jsonl_field_and_missing_field(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text('{"text": "a"}\n\n{"text": "b"}\n')
    source = resolve_text_source(str(data), None, "train", "text", "calibration.source")
    assert load_texts(source) == ["a", "b"]
    wrong = resolve_text_source(str(data), None, "train", "body", "calibration.source")
    with pytest.raises(QuenchError, match="no field 'body'"):
        load_texts(wrong)


def test_missing_local_file_is_named(tmp_path):
    with pytest.raises(QuenchError, match="calibration.source: .* is not a file"):
        resolve_text_source(str(tmp_path / "x.txt"), None, "train", "text", "calibration.source")


def test_gguf_inputs_resolve_locally_and_through_the_mirror(tmp_path, monkeypatch, smollm2_gguf):
    local = resolve_model(str(smollm2_gguf))
    assert (local.origin, local.gguf_file, local.path) == (
        "local", smollm2_gguf.resolve(), smollm2_gguf.resolve().parent)
    folder = resolve_model(str(smollm2_gguf.parent), gguf_file=smollm2_gguf.name)
    assert folder.gguf_file == smollm2_gguf.resolve()
    # A hub repo + file (transformers' gguf_file=), found offline in a mirror folder.
    repo = tmp_path / "models" / "HuggingFaceTB" / "SmolLM2-135M-Instruct-GGUF"
    repo.mkdir(parents=True)
    (repo / smollm2_gguf.name).symlink_to(smollm2_gguf)
    monkeypatch.setenv("QUENCH_MIRROR", str(tmp_path))
    mirrored = resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct-GGUF",
                             gguf_file=smollm2_gguf.name)
    assert mirrored.origin == "mirror" and mirrored.source == repo.resolve() / smollm2_gguf.name
    with pytest.raises(QuenchError, match=r"model.id: .*missing.gguf does not exist"):
        resolve_model(str(tmp_path / "missing.gguf"))


@pytest.mark.parametrize("name", ["wikitext2", "wikitext2-valid"])
def test_short_name_order_local_then_mirror_then_bundled(tmp_path, monkeypatch, mirror, name):
    assert resolve_text_source(name, None, "test", "text", KEY).origin == "mirror"
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("QUENCH_MIRROR", str(empty))  # a mirror without the file
    source = resolve_text_source(name, None, "test", "text", KEY)
    assert (source.origin, source.path) == ("bundled", excerpts()[name].path)
    assert source.describe()["records"] == len(load_texts(source)) == excerpts()[name].records
    monkeypatch.delenv("QUENCH_MIRROR")  # no mirror at all
    assert resolve_text_source(name, None, "test", "text", KEY).origin == "bundled"
    monkeypatch.chdir(tmp_path)
    (tmp_path / name).write_text("a local file of that name\n")
    local = resolve_text_source(name, None, "test", "text", KEY)
    assert (local.origin, load_texts(local)) == ("local", ["a local file of that name"])


def test_hub_ids_go_to_the_hub_unless_offline(monkeypatch, tmp_path):
    monkeypatch.setenv("QUENCH_MIRROR", str(tmp_path))
    with pytest.raises(OfflineMiss, match=r"'someorg/somedata' is not a local file.*wikitext2"):
        resolve_text_source("someorg/somedata", None, "test", "text", KEY)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    hub = resolve_text_source("someorg/somedata", "cfg", "test", "text", KEY)
    assert hub.origin == "hub" and hub.describe() == {
        "kind": "hub", "origin": "hub", "path": "someorg/somedata", "config": "cfg",
        "split": "test", "field": "text"}
    bundled = resolve_text_source("wikitext2", None, "test", "text", KEY)  # bundled before hub
    assert bundled.origin == "bundled"


def test_unknown_short_name_lists_the_bundled_ones(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # online too: a name without org/ is a typo
    with pytest.raises(QuenchError, match=r"calibration.source: 'wikitext3' is not a local file "
                                          r"nor .*\(bundled: wikitext2, wikitext2-valid\); a hub "
                                          r"dataset is written org/name"):
        resolve_text_source("wikitext3", None, "train", "text", "calibration.source")


def test_gzip_text_and_jsonl_files_are_read(tmp_path):
    import gzip

    (tmp_path / "a.txt.gz").write_bytes(gzip.compress(b"one\r\n\ntwo\n"))
    (tmp_path / "b.jsonl.gz").write_bytes(gzip.compress(b'{"text": "x"}\n{"text": "y"}\n'))
    (tmp_path / "c.txt.gz").write_bytes(b"not gzip at all")
    for name, expected in (("a.txt.gz", ["one", "two"]), ("b.jsonl.gz", ["x", "y"])):
        source = resolve_text_source(str(tmp_path / name), None, "train", "text", KEY)
        assert source.origin == "local" and load_texts(source) == expected
    bad = resolve_text_source(str(tmp_path / "c.txt.gz"), None, "train", "text", KEY)
    with pytest.raises(QuenchError, match=r"c.txt.gz: not a readable gzip file"):
        load_texts(bad, KEY)
