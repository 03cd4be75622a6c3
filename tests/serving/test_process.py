"""A process's life: the group stopped on every way out, the port retry, health and the log,
with real child process groups (a shell and its sleeps, Python's http.server)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from quench.errors import StageError
from quench.serving import process
from tests.engines.helpers import busy_port

# a shell with two children: three processes in the group the shell leads
SHELL_TREE = ["sh", "-c", "sleep 300 & sleep 300 & wait"]
# the same, ignoring SIGTERM (inherited by the sleeps): only SIGKILL stops it
STUBBORN = ["sh", "-c", "trap '' TERM; sleep 300 & sleep 300 & wait"]


def _wait_members(pgid: int, count: int) -> None:
    deadline = time.monotonic() + 10
    while len(process.group_processes(pgid)) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(process.group_processes(pgid)) >= count


def test_group_stopped_when_the_block_ends(tmp_path: Path):
    with process.running(SHELL_TREE, tmp_path, None, tmp_path / "log") as proc:
        _wait_members(proc.pid, 3)
    assert process.group_processes(proc.pid) == [] and proc.returncode is not None


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_group_stopped_when_the_block_raises(tmp_path: Path, error: type[BaseException]):
    with pytest.raises(error), process.running(SHELL_TREE, tmp_path, None,
                                                tmp_path / "log") as proc:
        _wait_members(proc.pid, 3)
        raise error
    assert process.group_processes(proc.pid) == []


def test_sigterm_ignored_then_sigkill(tmp_path: Path):
    proc = process.start(STUBBORN, tmp_path, None, tmp_path / "log")
    _wait_members(proc.pid, 3)
    start = time.monotonic()
    process.stop_process_group(proc, grace=1)
    assert process.group_processes(proc.pid) == []
    assert proc.returncode == -9 and time.monotonic() - start >= 1


def test_log_starts_with_the_command_line(tmp_path: Path):
    code = process.run_logged(["sh", "-c", "echo hello"], tmp_path, None, tmp_path / "log", "x")
    assert code == 0
    assert (tmp_path / "log").read_text() == "$ sh -c 'echo hello'\nhello\n"


def test_run_logged_timeout_stops_the_group(tmp_path: Path):
    pids: list[int] = []
    with pytest.raises(StageError, match=r"^sleeper took over 1 s; log "):
        cmd = ["sh", "-c", "sleep 300 & echo $$; wait"]
        process.run_logged(cmd, tmp_path, None, tmp_path / "log", "sleeper", timeout=1)
    pids.append(int((tmp_path / "log").read_text().splitlines()[1]))
    assert process.group_processes(pids[0]) == []


def test_check_logged_failure_names_the_error(tmp_path: Path):
    cmd = ["sh", "-c", "echo 'ValueError: bad flag'; exit 3"]
    with pytest.raises(StageError) as err:
        process.check_logged(cmd, tmp_path, None, tmp_path / "b.log", "trtllm-build")
    assert str(err.value).startswith(f"trtllm-build failed (exit 3); last lines of "
                                     f"{tmp_path / 'b.log'}:\n")
    assert "  ValueError: bad flag" in str(err.value)


def _http_server(directory: Path, port: int) -> list[str]:
    """Python's file server: GET /health is 200 once `health` exists in directory."""
    return [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
            "--directory", str(directory)]


def test_serving_yields_once_healthy_and_stops_after(tmp_path: Path):
    (tmp_path / "health").write_text("ok")
    with process.serving(lambda port: _http_server(tmp_path, port), "file server", tmp_path,
                         None, tmp_path / "server.log", 30, poll=0.1) as (proc, port):
        assert process.healthy(f"http://127.0.0.1:{port}")
        assert process.alive(process.Server(f"http://127.0.0.1:{port}", "m", proc.pid,
                                            tmp_path / "server.log"))
    assert process.group_processes(proc.pid) == []
    assert not process.healthy(f"http://127.0.0.1:{port}")


def test_port_taken_before_the_server_binds_is_retried(tmp_path: Path):
    """The first start finds its port in use ("Address already in use"): a new port is tried."""
    (tmp_path / "health").write_text("ok")
    calls: list[int] = []
    with busy_port() as sock:
        taken = sock.getsockname()[1]

        def command(port: int) -> list[str]:
            calls.append(port)
            return _http_server(tmp_path, taken if len(calls) == 1 else port)

        with process.serving(command, "file server", tmp_path, None, tmp_path / "server.log",
                             30, poll=0.1) as (_proc, port):
            assert process.healthy(f"http://127.0.0.1:{port}") and port != taken
    assert len(calls) == 2


def test_no_free_port_after_the_attempts(tmp_path: Path):
    with busy_port() as sock:
        taken = sock.getsockname()[1]
        with pytest.raises(StageError, match="file server: no free port after 2 attempts"), \
                process.serving(lambda _port: _http_server(tmp_path, taken), "file server",
                                tmp_path, None, tmp_path / "server.log", 30, attempts=2,
                                poll=0.1):
            pass


def test_server_exiting_at_start_up_is_an_error_with_its_log(tmp_path: Path):
    cmd = ["sh", "-c", "echo 'RuntimeError: no kernel'; exit 3"]
    with pytest.raises(StageError) as err, process.serving(
            lambda _port: cmd, "vllm server", tmp_path, None, tmp_path / "server.log", 30,
            poll=0.1):
        pass
    assert str(err.value).startswith("vllm server exited with code 3 during start-up")
    assert "  RuntimeError: no kernel" in str(err.value)


def test_server_never_healthy_times_out_and_is_stopped(tmp_path: Path):
    cmd = ["sh", "-c", "echo $$; sleep 300 & wait"]
    with pytest.raises(StageError, match=r"never not healthy after 1 s \(target.options."
                                         r"startup_timeout_s\)"), \
            process.serving(lambda _port: cmd, "never", tmp_path, None, tmp_path / "s.log", 1,
                            poll=0.1):
        pass
    pgid = int((tmp_path / "s.log").read_text().splitlines()[1])
    assert process.group_processes(pgid) == []


def test_port_in_use_picks_another():
    with busy_port() as sock:
        taken = sock.getsockname()[1]
        chosen = process.pick_port(taken)
        assert chosen != taken
    assert process.pick_port(chosen) == chosen  # free: the preferred one is kept


def test_log_tail_puts_the_error_first(tmp_path: Path):
    log = tmp_path / "server.log"
    log.write_text("RuntimeError: boom\n" + "".join(f"line {i}\n" for i in range(40))
                   + "nanobind: leaked 4 instances!\n - leaked type x\n")
    tail = process.log_tail(log, lines=5).splitlines()
    assert tail[0] == "  error: RuntimeError: boom"
    assert tail[1:] == [f"  line {i}" for i in range(35, 40)]


def test_venv_environ_puts_the_venv_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    env = process.venv_environ(tmp_path, VLLM_CACHE_ROOT="/c")
    assert env["PATH"].startswith(f"{tmp_path / 'bin'}:") and env["VIRTUAL_ENV"] == str(tmp_path)
    assert "PYTHONPATH" not in env and env["VLLM_CACHE_ROOT"] == "/c"
    assert env["HF_HUB_OFFLINE"] == "1"
