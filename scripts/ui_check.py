"""`make ui-check`: quench's runs table in a real browser. Starts `mlflow server` on a store (a
free loopback port), opens the link `make ui` prints for the newest quench experiment in
headless Chromium (Debian's /usr/bin/chromium, a fresh profile, through playwright), saves a
screenshot and checks that the runs table and quench's headline columns are on the page
(the columns past them are a scroll away, and not in the DOM until then).

tests/tracking/test_server.py uses open_page() and expected_columns() on its own server.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# on the page once the runs table has rows (its column picker and a run's status cell)
TABLE_TEXT = ("Run Name", "Created")


def expected_columns(client: Any, experiment_id: str) -> list[str]:
    """The headline columns (quench.tracking.ui) the experiment's pipeline runs have: the
    view puts them first, so they are on screen without scrolling."""
    from quench.tracking.ui import DROP, HEADLINE, PARENT_RUNS, TAGS

    runs = client.search_runs([experiment_id], PARENT_RUNS, max_results=200)
    metrics = {k for r in runs for k in r.data.metrics}
    tags = {k for r in runs for k in r.data.tags}
    return ([m for m in HEADLINE if m in metrics] + sorted(k for k in metrics if DROP.match(k))
            + [t for t in TAGS[:1] if t in tags])


def open_page(url: str, png: Path, expect: list[str], timeout_s: float = 120) -> str:
    """Opens url in headless Chromium with an empty profile, waits until every text in
    `expect` is on the page (or the timeout), saves a full-page screenshot to png and
    returns the page's text."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="quench-chromium-") as profile, \
            sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(
            profile, executable_path=str(CHROMIUM), headless=True, args=FLAGS,
            viewport={"width": 2400, "height": 1100})
        try:
            page = browser.new_page()
            page.goto(url, wait_until="domcontentloaded", timeout=timeout_s * 1000)
            # on a timeout the caller says what is missing; the screenshot shows why
            with contextlib.suppress(PlaywrightTimeout):
                page.wait_for_function(
                    "want => want.every(t => document.body.innerText.includes(t))",
                    arg=[*TABLE_TEXT, *expect], timeout=timeout_s * 1000, polling=500)
            page.wait_for_timeout(1000)  # let the grid finish laying out
            png.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(png), full_page=True)
            return page.inner_text("body")
        finally:
            browser.close()


def missing(text: str, expect: list[str]) -> list[str]:
    return [t for t in (*TABLE_TEXT, *expect) if t not in text]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(store: str, artifacts: Path, log: Path) -> tuple[subprocess.Popen, str]:
    """`mlflow server` as `make ui` starts it, on a free port; waits for /health."""
    port, mlflow = _free_port(), Path(sys.executable).parent / "mlflow"
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(mlflow), "server", "--backend-store-uri", store, "--default-artifact-root",
             artifacts.as_uri(), "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                return proc, url
        except OSError:
            time.sleep(0.3)
    stop(proc)
    raise SystemExit(f"mlflow server did not start; see {log}")


def stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", default=f"sqlite:///{Path('artifacts').resolve()}/mlflow.db")
    parser.add_argument("--out", type=Path, default=Path("artifacts/ui.png"))
    args = parser.parse_args(argv)
    if not CHROMIUM.is_file():
        print(f"{CHROMIUM} not found: apt-get install chromium (as .ci/run does)")
        return 2
    from mlflow.tracking import MlflowClient

    from quench.tracking.ui import PARENT_RUNS, publish_view, runs_page

    client = MlflowClient(tracking_uri=args.store)
    found = [e for e in client.search_experiments(order_by=["last_update_time DESC"])
             if client.search_runs([e.experiment_id], PARENT_RUNS, max_results=1)]
    if not found:
        print(f"no quench runs in {args.store}: run `make quantize` first")
        return 2
    exp = found[0]
    publish_view(client, exp.experiment_id, exp.tags)  # a store from before the view existed
    expect = expected_columns(client, exp.experiment_id)
    artifacts = args.out.resolve().parent / "mlartifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    proc, server = serve(args.store, artifacts, args.out.with_suffix(".server.log"))
    try:
        url = runs_page(server, exp.experiment_id)
        print(f"{exp.name}: {url}")
        text = open_page(url, args.out, expect)
    finally:
        stop(proc)
    lost = missing(text, expect)
    print(f"screenshot: {args.out}")
    if lost:
        print(f"not on the page: {', '.join(lost)}")
        return 1
    print(f"runs table with columns: {', '.join(expect)}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    raise SystemExit(main())
