"""The docs site: `mkdocs build --strict` passes, and its home page renders in a real browser."""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Chromium on a closed network: no background connections, no first-run, a fresh profile.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site built with --strict (a broken link, anchor or nav entry fails it)."""
    out = tmp_path_factory.mktemp("site")
    mkdocs = Path(sys.executable).with_name("mkdocs")
    proc = subprocess.run([str(mkdocs), "build", "--strict", "--site-dir", str(out)], cwd=REPO,
                          capture_output=True, text=True, env={**os.environ,
                                                               "NO_MKDOCS_2_WARNING": "1"})
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out


def test_every_docs_page_is_in_the_site(site: Path) -> None:
    pages = sorted(p.relative_to(REPO / "docs") for p in (REPO / "docs").rglob("*.md"))
    for page in pages:
        built = page.with_suffix("") / "index.html" if page.name != "index.md" else \
            page.with_name("index.html")
        assert (site / built).is_file(), f"docs/{page} was not built"


@pytest.fixture()
def served(site: Path):
    """The built site over HTTP on 127.0.0.1, as `make docs-serve` shows it."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="no Chromium (Debian package chromium)")
def test_home_page_in_a_browser(served: str, tmp_path: Path) -> None:
    base = [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*base, "--dump-dom", served], capture_output=True, text=True,
                         timeout=120).stdout
    for text in ("quench", "Getting started", "How-to guides", "Concepts", "Reference",
                 "Developer guide", "Benchmarks", "Your model on your GPU host"):
        assert text in dom, f"{text!r} is not on the rendered home page"
    shot = tmp_path / "home.png"
    subprocess.run([*base, f"--screenshot={shot}", "--window-size=1280,900", served],
                   capture_output=True, timeout=120, check=True)
    assert shot.stat().st_size > 10_000  # a rendered page, not a blank one
