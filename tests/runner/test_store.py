"""Cache keys and atomic stage folders."""

import os
import subprocess
import sys

import pytest

from pipeline.runner.manifest import Manifest
from pipeline.runner.store import Store, cache_key, code_digest, library_versions


def test_cache_key_is_stable_and_order_independent():
    a = cache_key({"config": {"x": 1, "y": [1, 2]}, "versions": {"torch": "2.13.0"}})
    b = cache_key({"versions": {"torch": "2.13.0"}, "config": {"y": [1, 2], "x": 1}})
    assert a == b


@pytest.mark.parametrize(
    "change",
    [{"config": {"x": 2, "y": [1, 2]}}, {"versions": {"torch": "2.14.1"}}, {"inputs": {"m": "k"}}],
)
def test_cache_key_changes_with_config_versions_and_inputs(change):
    base = {"config": {"x": 1, "y": [1, 2]}, "versions": {"torch": "2.13.0"}}
    assert cache_key(base) != cache_key({**base, **change})


def test_code_digest_follows_file_content(tmp_path):
    source = tmp_path / "stage.py"
    source.write_text("A = 1\n")
    before = code_digest([source])
    source.write_text("A = 2\n")
    assert code_digest([source]) != before


def test_library_versions_names_absent_packages():
    versions = library_versions(("torch", "surely-not-installed-pkg"))
    assert versions["torch"].startswith("2.")
    assert versions["surely-not-installed-pkg"] == "absent"
    assert "quench" in versions


def test_successful_write_becomes_visible_only_when_complete(tmp_path):
    store = Store(tmp_path)
    with store.writing("quantize", "k1") as tmp:
        (tmp / "model.bin").write_text("weights")
        assert store.load("quantize", "k1") is None  # nothing visible mid-write
        store.write_manifest(tmp, {"key": "k1", "status": "ran"})
    found = store.load("quantize", "k1")
    assert isinstance(found, Manifest) and (found.dir / "model.bin").read_text() == "weights"
    assert [p.name for p in (tmp_path / "quantize").iterdir()] == ["k1"]


def test_failed_write_leaves_nothing(tmp_path):
    store = Store(tmp_path)
    with pytest.raises(RuntimeError, match="boom"), store.writing("quantize", "k1") as tmp:
        (tmp / "partial.bin").write_text("half")
        raise RuntimeError("boom")
    assert list((tmp_path / "quantize").iterdir()) == []
    assert store.load("quantize", "k1") is None


def test_write_without_manifest_is_refused(tmp_path):
    store = Store(tmp_path)
    with pytest.raises(RuntimeError, match="wrote no manifest.json"), store.writing("s", "k"):
        pass
    assert list((tmp_path / "s").iterdir()) == []


def test_rewrite_replaces_the_previous_folder(tmp_path):
    store = Store(tmp_path)
    for content in ("old", "new"):
        with store.writing("s", "k") as tmp:
            (tmp / "f").write_text(content)
            store.write_manifest(tmp, {"key": "k", "status": "ran"})
    assert (store.load("s", "k").dir / "f").read_text() == "new"
    assert [p.name for p in (tmp_path / "s").iterdir()] == ["k"]


def test_manifest_with_wrong_key_is_not_reused(tmp_path):
    store = Store(tmp_path)
    (tmp_path / "s" / "k").mkdir(parents=True)
    store.write_manifest(tmp_path / "s" / "k", {"key": "other", "status": "ran"})
    assert store.load("s", "k") is None


def test_temporaries_of_dead_processes_are_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    stale = tmp_path / "quantize" / f".tmp-k1-{dead.stdout.strip()}"
    live = tmp_path / "quantize" / f".tmp-k2-{os.getpid()}"
    stale.mkdir(parents=True)
    live.mkdir()
    removed = Store(tmp_path).remove_stale_temporaries()
    assert removed == [stale] and not stale.exists() and live.exists()
