"""A full disk says why: a run whose output folder fills up mid-run prints the error and the
log's path on the terminal (whatever state the log is in), keeps its MLflow record for
`quench sync`, and leaves no 0-byte file and no temporary behind.

The output folder is a small tmpfs mounted in a private mount namespace (`unshare`), so that
nothing outside the test sees it; where namespaces are not allowed the test skips."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ..conftest import DEFAULT_RECIPE, REPO

pytestmark = pytest.mark.e2e

MOUNT = "/tmp/quench-full-disk"  # inside the private namespace only
SIZE = "3m"  # the TinyStories run needs more: it fills up after quantize


def _namespace() -> list[str]:
    """unshare's arguments for a private mount namespace (as root, or in a user namespace)."""
    base = ["unshare", "-m"] if os.geteuid() == 0 else ["unshare", "-rm"]
    probe = subprocess.run([*base, "sh", "-c", f"mkdir -p {MOUNT} && mount -t tmpfs -o "
                            f"size=1m tmpfs {MOUNT}"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"no private tmpfs here ({probe.stderr.strip()[:200]})")
    return base


def test_a_full_output_disk_prints_the_error_and_the_log_path(mirror):
    out = f"{MOUNT}/out"
    script = (
        f"mkdir -p {MOUNT} && mount -t tmpfs -o size={SIZE} tmpfs {MOUNT} && "
        f"{sys.executable} -m quench run {DEFAULT_RECIPE} output.dir={out} "
        f"tracking.tracking_uri=sqlite:///{out}/mlflow.db "
        "evaluation.perplexity.max_windows=8; echo \"exit=$?\"; "
        # lock files are empty by design (flock); any other empty file is a cut-off write
        f"echo empty:; find {out} -type f -size 0 ! -name '*.lock' ! -path '*/.locks/*'; "
        "echo leftovers:; "
        f"find {out} -name '.*.tmp-*' -o -name '.tmp-*'"
    )
    done = subprocess.run([*_namespace(), "sh", "-c", script], cwd=REPO, capture_output=True,
                          text=True, timeout=900)
    head, _, rest = done.stdout.rpartition("exit=")
    code, _, listing = rest.partition("\n")
    empty, _, leftovers = listing.partition("leftovers:")
    assert code.strip() not in ("", "0"), done.stdout + done.stderr
    log = f"{out}/tinystories-rtn-w4a16/quench.log"
    error = [x for x in done.stderr.splitlines() if x.startswith("error: ")]
    assert error and "no space left on the device" in error[-1], done.stderr
    assert "(No space left on device)" in error[-1] and "free some and run again" in error[-1]
    assert log in done.stderr, done.stderr  # where to look, even when the log is cut short
    assert empty.replace("empty:", "").split() == [], empty
    assert leftovers.split() == [], leftovers
