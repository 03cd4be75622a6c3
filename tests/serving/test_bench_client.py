"""The one serving benchmark command line (golden), and a missing client environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from quench.errors import NotSetUp
from quench.serving import bench_client
from quench.serving.process import Server

PARAMS = {"input_len": 128, "output_len": 64, "num_prompts": 16, "seed": 0, "warmups": 1}
# Flags of `vllm bench serve` (vllm/benchmarks/serve.py add_cli_args, vLLM 0.1x)
CLIENT_FLAGS = {"--backend", "--base-url", "--endpoint", "--model", "--tokenizer",
                "--dataset-name", "--random-input-len", "--random-output-len",
                "--random-range-ratio", "--num-prompts", "--seed", "--max-concurrency",
                "--request-rate", "--num-warmups", "--ignore-eos", "--temperature",
                "--percentile-metrics", "--metric-percentiles", "--save-result", "--result-dir",
                "--result-filename", "--disable-tqdm"}


def test_bench_command_golden():
    cmd = bench_client.bench_command(["vllm", "bench", "serve"], "http://127.0.0.1:8000",
                                     "quench", Path("/tok"), 4, PARAMS, "/out", "bench_c4.json")
    assert cmd == [
        "vllm", "bench", "serve", "--backend", "openai", "--base-url", "http://127.0.0.1:8000",
        "--endpoint", "/v1/completions", "--model", "quench", "--tokenizer", "/tok",
        "--dataset-name", "random", "--random-input-len", "128", "--random-output-len", "64",
        "--random-range-ratio", "0", "--num-prompts", "16", "--seed", "0",
        "--max-concurrency", "4", "--request-rate", "inf", "--num-warmups", "1",
        "--ignore-eos", "--temperature", "0", "--percentile-metrics", "ttft,tpot,itl,e2el",
        "--metric-percentiles", "50,95,99", "--save-result", "--result-dir", "/out",
        "--result-filename", "bench_c4.json", "--disable-tqdm"]
    assert {p for p in cmd if p.startswith("--")} == CLIENT_FLAGS


def test_program_runs_vllms_main_with_the_envs_python():
    prog = bench_client.program(Path("/venv/bin/python"))
    assert prog[:2] == ["/venv/bin/python", "-c"]
    assert "from vllm.benchmarks.serve import add_cli_args, main" in prog[2]
    compile(prog[2], "<bench>", "exec")  # valid Python


def test_missing_client_environment_names_the_setup_command(tmp_path: Path, monkeypatch):
    server = Server("http://127.0.0.1:1", "m", 1, tmp_path / "log")
    with pytest.raises(NotSetUp, match=r"serving benchmark client unavailable: no vLLM "
                                       rf"environment at {tmp_path} .*`quench setup vllm`"):
        bench_client.run(tmp_path, server, tmp_path, 1, PARAMS, tmp_path, 10)
    monkeypatch.setenv("QUENCH_HOME", str(tmp_path))
    assert bench_client.default_env() == tmp_path / "envs" / "vllm"
