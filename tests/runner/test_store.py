"""Cache keys, atomic stage folders, file records and their checks, locks, published copies."""

import hashlib
import json
import os
import subprocess
import sys
import time

import pytest

from quench.contract.locks import Busy, file_lock, sqlite_path, store_creation_lock
from quench.contract.manifest import Manifest
from quench.runner.clone import clone_file, publish_file, same_copy
from quench.runner.store import Store, cache_key, code_digest, library_versions
from quench.runner.verify import EDGE, FILES, UNRECORDED, entry_damage


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


def _entry(store: Store, files: dict[str, bytes], key: str = "k1") -> Manifest:
    """A finished entry holding `files`, as a stage would leave it."""
    with store.writing("quantize", key) as tmp:
        for rel, data in files.items():
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp / rel).write_bytes(data)
        store.write_manifest(tmp, {"key": key, "status": "ran"})
    found, damage = store.lookup("quantize", key)
    assert damage is None and found is not None
    return found


BIG = bytes(range(256)) * (3 * EDGE // 256 + 7)  # bigger than 2 MiB: edges differ from sha256


def test_manifest_records_size_and_sha256_of_every_file(tmp_path):
    found = _entry(Store(tmp_path), {"model/model.safetensors": BIG, "notes.txt": b"hi"})
    files = found.data[FILES]
    assert sorted(files) == ["model/model.safetensors", "notes.txt"]  # manifest.json excluded
    assert files["notes.txt"]["size"] == 2
    assert files["model/model.safetensors"]["sha256"] == hashlib.sha256(BIG).hexdigest()
    assert files["model/model.safetensors"]["edges"] != files["model/model.safetensors"]["sha256"]


@pytest.mark.parametrize("damage, expected", [
    (lambda p: p.unlink(), "model/model.safetensors: missing"),
    (lambda p: os.truncate(p, 1000), f"model/model.safetensors: size 1000 != {len(BIG)}"),
    (lambda p: _poke(p, 10), "model/model.safetensors: bytes changed (first/last MiB)"),
    (lambda p: _poke(p, len(BIG) - 10), "model/model.safetensors: bytes changed (first/last MiB)"),
    (lambda p: _poke(p, len(BIG) // 2), "model/model.safetensors: bytes changed (sha256)"),
])
def test_a_damaged_entry_is_not_reusable_and_says_why(tmp_path, damage, expected):
    store = Store(tmp_path)
    found = _entry(store, {"model/model.safetensors": BIG})
    damage(found.dir / "model" / "model.safetensors")
    assert store.lookup("quantize", "k1") == (None, expected)
    assert store.load("quantize", "k1") is not None  # present, only not trusted


def test_mid_file_damage_with_its_mtime_restored_needs_the_full_check(tmp_path):
    found = _entry(Store(tmp_path), {"w.bin": BIG})
    path = found.dir / "w.bin"
    before = path.stat()
    _poke(path, len(BIG) // 2)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert entry_damage(found) is None  # the fast check reads only the edges
    assert entry_damage(found, full=True) == "w.bin: bytes changed (sha256)"


def test_touched_but_unchanged_file_is_still_reusable(tmp_path):
    store = Store(tmp_path)
    found = _entry(store, {"w.bin": BIG})
    os.utime(found.dir / "w.bin", ns=(1, 1))  # rewritten with identical bytes, say
    assert store.lookup("quantize", "k1")[1] is None


def test_entry_without_a_file_record_is_unverified(tmp_path):
    store = Store(tmp_path)
    folder = _entry(store, {"w.bin": b"x"}).dir
    data = json.loads((folder / "manifest.json").read_text())
    del data[FILES]
    (folder / "manifest.json").write_text(json.dumps(data))
    assert store.lookup("quantize", "k1") == (None, UNRECORDED)


def _poke(path, offset: int) -> None:
    """Flips one byte in place (same size)."""
    with path.open("r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([byte[0] ^ 0xFF]))


def test_published_copy_shares_no_inode_and_damage_does_not_cross(tmp_path):
    source = tmp_path / "cache.bin"
    source.write_bytes(BIG)
    published = tmp_path / "published.bin"
    clone_file(source, published)
    assert published.read_bytes() == BIG
    assert published.stat().st_ino != source.stat().st_ino
    os.truncate(published, 10)
    assert source.read_bytes() == BIG
    assert not same_copy(source, published)


def test_an_intact_published_copy_is_kept_and_a_damaged_one_replaced(tmp_path):
    source = tmp_path / "cache.bin"
    source.write_bytes(BIG)
    previous = tmp_path / "old.bin"
    clone_file(source, previous)
    publish_file(source, tmp_path / "kept.bin", previous)
    assert (tmp_path / "kept.bin").stat().st_ino == previous.stat().st_ino != source.stat().st_ino
    _poke(previous, 5)
    publish_file(source, tmp_path / "fresh.bin", previous)
    assert (tmp_path / "fresh.bin").read_bytes() == BIG
    assert (tmp_path / "fresh.bin").stat().st_ino not in (previous.stat().st_ino,
                                                          source.stat().st_ino)


LOCKER = """
import sys, time
from pathlib import Path
from quench.contract.locks import file_lock
with file_lock(Path(sys.argv[1])):
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def test_entry_lock_makes_a_second_process_wait(tmp_path):
    store = Store(tmp_path)
    lock = store.lock_path("quantize-k1")
    holder = subprocess.Popen([sys.executable, "-c", LOCKER, str(lock), "1.0"],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(Busy), file_lock(lock, blocking=False):
        pass
    waited = []
    start = time.monotonic()
    with store.entry_lock("quantize", "k1", on_wait=lambda: waited.append(True)):
        waited_s = time.monotonic() - start
    assert waited == [True] and waited_s > 0.5  # it got the lock once the holder let go
    holder.wait()


def test_lock_of_a_killed_holder_is_free(tmp_path):
    lock = tmp_path / ".lock-k"
    holder = subprocess.Popen([sys.executable, "-c", LOCKER, str(lock), "60"],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    holder.kill()
    holder.wait()
    with file_lock(lock, blocking=False):
        pass


def test_store_creation_lock_only_for_sqlite(tmp_path):
    assert sqlite_path(f"sqlite:///{tmp_path}/mlflow.db") == tmp_path / "mlflow.db"
    assert sqlite_path("http://localhost:5000") is None
    with store_creation_lock(f"sqlite:///{tmp_path}/mlflow.db"):
        assert (tmp_path / "mlflow.db.lock").is_file()
        with pytest.raises(Busy), file_lock(tmp_path / "mlflow.db.lock", blocking=False):
            pass
