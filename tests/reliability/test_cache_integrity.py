"""A damaged cache entry is re-run, never reused; the published model shares no bytes with the
cache; `quench cache verify` names each kind of damage and `quench cache gc` what no run uses."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
from safetensors import safe_open

from quench.cli import main
from quench.contract.manifest import Manifest
from quench.runner.store import Store
from quench.runner.verify import entry_damage

from ..conftest import DEFAULT_RECIPE, read_json, run_quench, small_run_args

pytestmark = pytest.mark.e2e
NAME = "tinystories-rtn-w4a16"
WEIGHTS = "model/model.safetensors"


_WARM: list[Path] = []


def warm_output(factory: pytest.TempPathFactory) -> Path:
    """One uninterrupted run of the default recipe, made once per session (test_kill_resume
    takes its metrics as the reference); tests that damage it leave it repaired."""
    if not _WARM:
        out = factory.mktemp("warm")
        result = run_quench("run", str(DEFAULT_RECIPE), *small_run_args(out))
        assert result.returncode == 0, result.stderr[-3000:]
        _WARM.append(out)
    return _WARM[0]


@pytest.fixture
def warm(mirror, tmp_path_factory) -> Path:
    return warm_output(tmp_path_factory)


def _node(out: Path, node: str) -> dict:
    return read_json(out / NAME / "run.json")["nodes"][node]


def _cached_weights(out: Path) -> Path:
    return Path(_node(out, "quantize")["dir"]) / WEIGHTS


def _published(out: Path) -> Path:
    return out / NAME / "model" / "model.safetensors"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


MEASURED = ("_seconds", "_mb")  # time and memory this machine took: not results


def results(out: Path) -> str:
    """report.json's metrics as JSON text (byte-comparable), without time and memory."""
    metrics = read_json(out / NAME / "report.json")["metrics"]
    kept = {group: {k: v for k, v in values.items() if not k.endswith(MEASURED)}
            for group, values in metrics.items()}
    return json.dumps(kept, sort_keys=True)


def _assert_published_intact(out: Path) -> None:
    cached, published = _cached_weights(out), _published(out)
    assert _sha256(published) == _sha256(cached)
    assert published.stat().st_ino != cached.stat().st_ino  # a copy, not a hard link
    with safe_open(str(published), "pt") as fh:
        assert len(list(fh.keys())) > 10


def test_truncated_checkpoint_is_rerun_not_reused(warm):
    weights, before = _cached_weights(warm), results(warm)
    digest, size = _sha256(weights), weights.stat().st_size
    os.truncate(weights, size // 2)
    result = run_quench("run", str(DEFAULT_RECIPE), *small_run_args(warm))
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"quantize: cache entry damaged ({WEIGHTS}: size {size // 2} != {size}), " \
           "re-running" in result.stderr
    assert _node(warm, "quantize")["status"] == "ran"
    assert _sha256(_cached_weights(warm)) == digest  # the same checkpoint again (RTN)
    _assert_published_intact(warm)
    assert results(warm) == before  # byte-identical metrics


def test_missing_weights_with_force_report_reruns_their_producer(warm):
    _cached_weights(warm).unlink()
    result = run_quench("run", str(DEFAULT_RECIPE), *small_run_args(warm), "--force", "report")
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"quantize: cache entry damaged ({WEIGHTS}: missing), re-running" in result.stderr
    assert _node(warm, "quantize")["status"] == "ran"
    _assert_published_intact(warm)


def test_damage_to_the_published_model_does_not_reach_the_cache(warm):
    digest = _sha256(_cached_weights(warm))
    os.truncate(_published(warm), 0)
    assert _sha256(_cached_weights(warm)) == digest
    entry = Manifest.read(Path(_node(warm, "quantize")["dir"]))
    assert entry is not None and entry_damage(entry, full=True) is None
    again = run_quench("run", str(DEFAULT_RECIPE), *small_run_args(warm))
    assert again.returncode == 0, again.stderr[-3000:]
    assert _node(warm, "quantize")["status"] == "cached"
    _assert_published_intact(warm)  # the next run publishes a fresh copy


def _copy(out: Path, to: Path) -> Path:
    """A copy of an output folder (times kept, as a backup or rsync -a would)."""
    shutil.copytree(out / "cache", to / "cache", symlinks=True)
    (to / NAME).mkdir(parents=True)
    shutil.copy2(out / NAME / "run.json", to / NAME / "run.json")
    return to


def _entry_dir(out: Path, copy: Path, node: str) -> Path:
    return copy / "cache" / Path(_node(out, node)["dir"]).relative_to(out / "cache")


def _flip_byte(path: Path, offset: int) -> None:
    """Changes one byte in place; size and mtime stay as they were."""
    before = path.stat()
    with path.open("r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)[0]
        fh.seek(offset)
        fh.write(bytes([byte ^ 0xFF]))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def test_cache_verify_names_each_kind_of_damage_and_removes_it(warm, tmp_path, capsys):
    copy = _copy(warm, tmp_path)
    assert main(["cache", "verify", "--root", str(copy)]) == 0
    assert "0 damaged" in capsys.readouterr().out
    quantize, baseline, report, license_ = (_entry_dir(warm, copy, n) for n in
                                            ("quantize", "baseline_eval", "report", "license"))
    os.truncate(quantize / WEIGHTS, 100)
    baseline_file = sorted(p for p in baseline.rglob("*") if p.is_file()
                           and p.name != "manifest.json")[0]
    baseline_file.unlink()
    _flip_byte(report / "report.json", (report / "report.json").stat().st_size // 2)
    (license_ / "manifest.json").write_text("{not json")
    assert main(["cache", "verify", "--root", str(copy)]) == 1
    out = capsys.readouterr().out
    assert f"{WEIGHTS}: size 100 != {_cached_weights(warm).stat().st_size}" in out
    assert f"{baseline_file.relative_to(baseline).as_posix()}: missing" in out
    assert "report.json: bytes changed" in out
    assert "manifest.json missing or unreadable" in out
    assert "4 damaged" in out
    assert main(["cache", "verify", "--root", str(copy), "--remove"]) == 0
    assert out.count("damaged  ") == 4 and capsys.readouterr().out.count("removed  ") == 4
    assert not any(p.exists() for p in (quantize, baseline, report, license_))
    assert main(["cache", "verify", "--root", str(copy)]) == 0


def test_cache_gc_lists_then_deletes_only_what_no_run_uses(warm, tmp_path, capsys):
    copy = _copy(warm, tmp_path)
    used = _entry_dir(warm, copy, "quantize")
    orphan = used.with_name("0" * 24)
    shutil.copytree(used, orphan)
    data = json.loads((orphan / "manifest.json").read_text())
    (orphan / "manifest.json").write_text(json.dumps({**data, "key": orphan.name}))
    assert main(["cache", "gc", "--root", str(copy)]) == 0  # a dry run by default
    out = capsys.readouterr().out
    assert f"unused  quantize/{orphan.name}" in out and "dry run" in out and orphan.is_dir()
    live = Store(copy / "cache")
    live.hold(NAME)  # a run in progress: nothing is deleted under it
    assert main(["cache", "gc", "--root", str(copy), "--yes"]) == 2
    assert "a quench run is using" in capsys.readouterr().err and orphan.is_dir()
    del live
    assert main(["cache", "gc", "--root", str(copy), "--yes"]) == 0
    assert f"deleted  quantize/{orphan.name}" in capsys.readouterr().out
    assert not orphan.exists() and used.is_dir()
    nodes = read_json(copy / NAME / "run.json")["nodes"].values()
    assert all((copy / "cache" / n["stage"] / n["key"]).is_dir() for n in nodes)
    assert main(["cache", "gc", "--root", str(copy)]) == 0
    assert "0 unused entries" in capsys.readouterr().out
