"""tensorrt-llm: TensorRT-LLM 1.x serving (`trtllm-serve`), engine builds and `trtllm-bench`.

TensorRT-LLM cannot be installed on machines without CUDA (its wheels download from NVIDIA's
index, and `import tensorrt_llm` needs libcuda.so.1), so it is never imported here: every
command runs in the recipe's environment (a venv, `target.environment`; default: the quench
home's `envs/tensorrt-llm`, made on a GPU host by `quench setup tensorrt-llm`) or container
(`target.options.container`, e.g. NVIDIA's TensorRT-LLM release image). This module only knows
the commands, checks whether they can run, and serves on a GPU host (process life:
quench/serving/process.py; measured with the shared benchmark client, from the default vLLM
environment). It serves what the build stage makes (`capabilities.builds`). The flags follow
the 1.x command references (trtllm-build, trtllm-serve, trtllm-bench; see
docs/how-to/tensorrt-llm.md).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from quench import home
from quench.engines import (
    EngineCapabilities,
    ServedEngine,
    Server,
    installed_versions,
    register_engine,
)
from quench.engines.options import parse_options as parse_engine_options
from quench.errors import StageError
from quench.gpu import cuda_device_count
from quench.serving.process import HOST, serving
from quench.strict import StrictModel

VERSIONS_OF = ("tensorrt_llm", "tensorrt-llm", "tensorrt", "torch", "transformers")
BACKENDS = ("pytorch", "tensorrt")
BUILD_KEYS = ("backend", "tokenizer")  # serve options the build stage adds (its serve_options)


class TrtllmOptions(StrictModel):
    """target.options of the tensorrt-llm engine."""

    max_batch_size: int = Field(8, ge=1, description="Requests scheduled at once (build, serve, "
                                "bench).")
    max_input_len: int = Field(1024, ge=1, description="Longest prompt (trtllm-build).")
    max_seq_len: int = Field(2048, ge=2, description="Longest prompt + output; more than "
                             "max_input_len.")
    max_num_tokens: int | None = Field(None, ge=1, description="Batched tokens per step; "
                                       "default: TensorRT-LLM's.")
    tp_size: int = Field(1, ge=1, description="Tensor-parallel GPUs (checkpoint ranks).")
    dtype: Literal["float16", "bfloat16"] = Field(
        "float16", description="dtype of the exported checkpoint's unquantized tensors.")
    kv_cache_free_gpu_memory_fraction: float = Field(
        0.9, gt=0, le=1, description="Free GPU memory given to the KV cache after the weights.")
    extra_llm_api_options: dict[str, Any] = Field(
        default_factory=dict, description="LLM API settings written to a YAML file and passed "
        "as --extra_llm_api_options (e.g. {kv_cache_config: {dtype: fp8}}).")
    container: str | None = Field(None, description="Run the commands in this container image "
                                  "(e.g. NVIDIA's TensorRT-LLM release) with `docker run --gpus "
                                  "all` instead of target.environment.")
    port: int | None = Field(None, ge=1, le=65535, description="trtllm-serve port; default: free.")
    startup_timeout_s: float = Field(1800, gt=0, description="Longest wait for trtllm-serve.")

    @model_validator(mode="after")
    def _check_lengths(self) -> TrtllmOptions:
        if self.max_input_len >= self.max_seq_len:
            raise ValueError(f"max_input_len {self.max_input_len} must be < max_seq_len "
                             f"{self.max_seq_len}")
        return self


def parse_options(options: dict[str, Any]) -> TrtllmOptions:
    """target.options as TrtllmOptions; ValueError naming the key otherwise."""
    return parse_engine_options(TrtllmOptions, options, "tensorrt-llm")



@register_engine
class TensorRtLlmEngine(ServedEngine):
    name = "tensorrt-llm"
    options_model = TrtllmOptions
    setup_target = "tensorrt-llm"  # on a GPU host; or NVIDIA's container (options.container)
    capabilities: ClassVar[EngineCapabilities] = EngineCapabilities(
        served=True, benchmark=True, builds=True)

    @property
    def env_dir(self) -> Path:
        """target.environment (relative to the working directory), else the quench home's."""
        if self.environment:
            return Path(self.environment).expanduser().resolve()
        return home.env_dir(self.name)

    def unavailable_reason(self, options: dict[str, Any] | None = None) -> str | None:
        if cuda_device_count() == 0:
            return "no CUDA device"
        container = (options or {}).get("container")
        if container:
            return None if shutil.which("docker") else "docker not found (target.options.container)"
        return self.environment_problem(options)

    def environment_problem(self, options: dict[str, Any] | None = None) -> str | None:
        """Only where it could run (CUDA, no container): a venv without tensorrt_llm."""
        if cuda_device_count() == 0 or (options or {}).get("container"):
            return None
        if {"tensorrt_llm", "tensorrt-llm"} & set(self.versions()):
            return None
        if self.environment:
            return f"target.environment: {self.env_dir} has no tensorrt_llm installed"
        return (f"tensorrt-llm environment {self.env_dir} missing: run "
                f"`{home.setup_command(self.name)}`, or set target.options.container to "
                "NVIDIA's TensorRT-LLM release image")

    def versions(self) -> dict[str, str]:
        return installed_versions(self.env_dir, VERSIONS_OF)

    def model_unsupported_reason(self, model_dir: Path) -> str | None:
        """trtllm-serve loads HF-layout checkpoints; quench's ModelOpt evaluation copy is not."""
        if (Path(model_dir) / "modelopt_state.pth").is_file():
            return ("a ModelOpt fake-quantized evaluation checkpoint: TensorRT-LLM loads the "
                    "build stage's model_dir (the export's checkpoint or the built engine)")
        return None

    def command_prefix(self, options: TrtllmOptions, mounts: list[Path],
                       network: bool = False) -> list[str]:
        """How a TensorRT-LLM command is started: the env's bin/ or `docker run ... IMAGE`."""
        if not options.container:
            return []
        args = ["docker", "run", "--rm", "--gpus", "all", "--ipc", "host", "--ulimit",
                "memlock=-1", "--ulimit", "stack=67108864"]
        if network:
            args += ["--network", "host"]
        for path in sorted({str(p) for p in mounts}):
            args += ["-v", f"{path}:{path}"]
        return [*args, options.container]

    def tool(self, name: str, options: TrtllmOptions) -> str:
        """A TensorRT-LLM executable: plain in a container, from bin/ of the environment."""
        return name if options.container else str(self.env_dir / "bin" / name)

    @contextmanager
    def serve(self, model_dir: Path, workdir: Path, options: dict[str, Any],
              trust_remote_code: bool = False) -> Iterator[Server]:
        """trtllm-serve on 127.0.0.1; options are target.options plus, from the build stage,
        `backend` (default pytorch) and `tokenizer` (an engine folder has none).
        trust_remote_code is not passed on (not verified against trtllm-serve here)."""
        reason = self.unavailable_reason(options)
        if reason:
            raise StageError(f"tensorrt-llm: {reason}")
        try:
            opts = parse_options({k: v for k, v in options.items() if k not in BUILD_KEYS})
        except ValueError as exc:
            raise StageError(str(exc)) from None
        workdir.mkdir(parents=True, exist_ok=True)
        tokenizer = options.get("tokenizer")
        with serving(lambda port: self.serve_argv(Path(model_dir), workdir, opts, port,
                                                  options.get("backend", "pytorch"), tokenizer),
                     "trtllm-serve", workdir, {**os.environ, "PYTHONUNBUFFERED": "1"},
                     workdir / "server.log", opts.startup_timeout_s, opts.port,
                     poll=2) as (proc, port):
            yield Server(f"http://{HOST}:{port}", str(model_dir), proc.pid,
                         workdir / "server.log")

    def serve_argv(self, model_dir: Path, workdir: Path, opts: TrtllmOptions, port: int,
                   backend: str, tokenizer: str | Path | None) -> list[str]:
        """The full trtllm-serve command here (with the container prefix when there is one)."""
        extra = write_extra_options(opts, workdir)
        return self.command_prefix(opts, [model_dir, workdir], network=True) + serve_command(
            self.tool("trtllm-serve", opts), model_dir, backend, opts, port, extra=extra,
            tokenizer=Path(tokenizer) if tokenizer else None)


def write_extra_options(options: TrtllmOptions, workdir: Path) -> Path | None:
    """target.options.extra_llm_api_options as the YAML file trtllm-serve/-bench read."""
    if not options.extra_llm_api_options:
        return None
    import yaml

    path = workdir / "extra_llm_api_options.yaml"
    path.write_text(yaml.safe_dump(options.extra_llm_api_options, sort_keys=True))
    return path


def build_command(tool: str, checkpoint: Path, engine_dir: Path, quant_algo: str | None,
                  kv_cache_quant_algo: str | None, options: TrtllmOptions) -> list[str]:
    """trtllm-build for a TensorRT-LLM checkpoint (legacy engine). The quantization itself is in
    the checkpoint's config.json; `--gemm_plugin auto` takes its GEMMs from there, and FP8 with
    an FP8 KV cache also gets FP8 context attention."""
    cmd = [tool, "--checkpoint_dir", str(checkpoint), "--output_dir", str(engine_dir),
           "--gemm_plugin", "auto", "--max_batch_size", str(options.max_batch_size),
           "--max_input_len", str(options.max_input_len), "--max_seq_len",
           str(options.max_seq_len)]
    if options.max_num_tokens:
        cmd += ["--max_num_tokens", str(options.max_num_tokens)]
    if quant_algo == "FP8" and kv_cache_quant_algo == "FP8":
        cmd += ["--use_paged_context_fmha", "enable", "--use_fp8_context_fmha", "enable"]
    return cmd + ["--workers", str(options.tp_size)]


def serve_command(tool: str, model: Path, backend: str, options: TrtllmOptions, port: int,
                  extra: Path | None = None, tokenizer: Path | None = None,
                  host: str = "127.0.0.1") -> list[str]:
    """trtllm-serve: an HF-layout checkpoint (pytorch) or an engine folder (tensorrt)."""
    if backend not in BACKENDS:
        raise ValueError(f"target.backend: {backend!r} not one of {BACKENDS}")
    cmd = [tool, str(model), "--host", host, "--port", str(port), "--backend", backend,
           "--max_batch_size", str(options.max_batch_size), "--tp_size", str(options.tp_size),
           "--kv_cache_free_gpu_memory_fraction", str(options.kv_cache_free_gpu_memory_fraction)]
    if backend == "pytorch":  # an engine has its lengths built in
        cmd += ["--max_seq_len", str(options.max_seq_len)]
        if options.max_num_tokens:
            cmd += ["--max_num_tokens", str(options.max_num_tokens)]
    if tokenizer is not None:
        cmd += ["--tokenizer", str(tokenizer)]
    if extra is not None:
        cmd += ["--extra_llm_api_options", str(extra)]
    return cmd


def bench_command(tool: str, model: str, model_path: Path, dataset: Path, backend: str,
                  options: TrtllmOptions, report: Path, concurrency: int | None = None,
                  engine_dir: Path | None = None, extra: Path | None = None) -> list[str]:
    """trtllm-bench throughput on a prepared dataset; --engine_dir for the legacy engine."""
    cmd = [tool, "--model", model, "--model_path", str(model_path), "throughput",
           "--dataset", str(dataset), "--backend", backend,
           "--max_batch_size", str(options.max_batch_size),
           "--kv_cache_free_gpu_mem_fraction", str(options.kv_cache_free_gpu_memory_fraction),
           "--tp", str(options.tp_size), "--report_json", str(report)]
    if backend == "tensorrt":
        if engine_dir is None:
            raise ValueError("trtllm-bench with the tensorrt backend needs the engine folder")
        cmd += ["--engine_dir", str(engine_dir)]  # max_seq_len is the engine's
    else:
        cmd += ["--max_seq_len", str(options.max_seq_len)]
    if options.max_num_tokens:
        cmd += ["--max_num_tokens", str(options.max_num_tokens)]
    if concurrency:
        cmd += ["--concurrency", str(concurrency)]
    if extra is not None:
        cmd += ["--extra_llm_api_options", str(extra)]
    return cmd


def write_bench_dataset(path: Path, vocab_size: int, input_len: int, output_len: int,
                        num_requests: int, seed: int) -> Path:
    """trtllm-bench's dataset format (one JSON per line: task_id, input_ids, output_tokens):
    seeded random token ids of fixed lengths, as its prepare_dataset token-norm-dist with
    stdev 0 and vLLM's random dataset make."""
    import random

    rng = random.Random(seed)
    with path.open("w") as fh:
        for task in range(num_requests):
            ids = [rng.randrange(vocab_size) for _ in range(input_len)]
            fh.write(json.dumps({"task_id": task, "input_ids": ids,
                                 "output_tokens": output_len}) + "\n")
    return path
