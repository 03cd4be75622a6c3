"""Fixtures for the tracking set-ups: each server is stopped, and checked gone, at teardown."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .servers import MlflowServer, group_members, start_mlflow_server


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[Callable[[str], MlflowServer]]:
    """Starts `mlflow server` processes on free loopback ports; stops every one afterwards."""
    started: list[MlflowServer] = []

    def start(backend_uri: str) -> MlflowServer:
        server = start_mlflow_server(backend_uri, tmp_path / f"server{len(started)}")
        started.append(server)
        return server

    yield start
    for server in started:
        began = time.perf_counter()
        left = server.stop()
        print(f"\nmlflow server on port {server.port}: ready in {server.startup_s:.1f} s, "
              f"stopped in {time.perf_counter() - began:.1f} s")
        assert not left, f"processes left behind by mlflow server: {left}"
        assert not group_members(server.proc.pid)
