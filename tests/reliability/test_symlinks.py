"""quench never writes through a symlink planted at a name it writes in place (the run's log,
a sweep's trials.jsonl, an engine server's log, a pending record's lock, redaction's temporary):
the link is replaced by quench's own file and its target is left as it was."""

from __future__ import annotations

import os

import pytest

from quench.owned_files import open_owned, owned_fd
from quench.redact import redact_file

from ..conftest import DEFAULT_RECIPE, run_quench, small_run_args

NAME = "tinystories-rtn-w4a16"


@pytest.fixture
def planted(tmp_path):
    """A file outside the folder quench writes in, and a folder holding a link to it."""
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me\n")
    inside = tmp_path / "out"
    inside.mkdir()
    return outside, inside


@pytest.mark.parametrize("mode", ["w", "a", "wb", "ab"])
def test_open_owned_replaces_a_link_and_leaves_its_target(planted, mode):
    outside, inside = planted
    link = inside / "trials.jsonl"
    link.symlink_to(outside)
    with open_owned(link, mode) as fh:
        fh.write(b"mine\n" if "b" in mode else "mine\n")
    assert outside.read_text() == "keep me\n"
    assert not link.is_symlink() and link.read_text() == "mine\n"


def test_a_dangling_link_is_not_followed_to_create_its_target(planted):
    outside, inside = planted
    target = outside.with_name("created-elsewhere.txt")
    (inside / "server.log").symlink_to(target)
    os.close(owned_fd(inside / "server.log"))
    assert not target.exists() and (inside / "server.log").is_file()


def test_redaction_does_not_write_through_a_planted_temporary(planted, monkeypatch):
    outside, inside = planted
    log = inside / "quench.log"
    log.write_text("token hf_AbCdEfGhIjKlMnOpQrStUvWxYz012345\n")
    (inside / f".quench.log.redact-{os.getpid()}").symlink_to(outside)
    redact_file(log)
    assert outside.read_text() == "keep me\n"
    assert "hf_AbCd" not in log.read_text() and not log.is_symlink()


def test_a_run_replaces_a_log_link_instead_of_truncating_its_target(mirror, planted):
    outside, out = planted
    (out / NAME).mkdir()
    (out / NAME / "quench.log").symlink_to(outside)
    result = run_quench("run", str(DEFAULT_RECIPE), *small_run_args(out), "--until", "resolve")
    assert result.returncode == 0, result.stderr[-3000:]
    assert outside.read_text() == "keep me\n"
    log = out / NAME / "quench.log"
    assert not log.is_symlink() and "stage resolve" in log.read_text()
