"""llama.cpp: a GGUF served by `llama-server` (OpenAI-compatible, on 127.0.0.1), the CPU and
edge engine. The server comes from `quench setup llama.cpp` (quench/llamacpp/tools.py); it
serves the GGUF that method `gguf` leaves in the model folder, and the throughput stage drives
it with the same benchmark client as vLLM."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from pydantic import Field

from quench.engines import SERVED, ServedEngine, Server, register_engine
from quench.engines.options import parse_options
from quench.errors import StageError
from quench.llamacpp import tools
from quench.llamacpp.quantize import threads
from quench.serving.process import HOST, serving
from quench.strict import StrictModel

SERVED_NAME = "quench"


class LlamaCppOptions(StrictModel):
    """target.options of engine llama.cpp (llama-server's flags of the same names)."""

    parallel: int = Field(8, ge=1, le=512, description="Server slots: requests decoded "
                          "together (llama-server --parallel).")
    ctx_size: int | None = Field(None, ge=64, le=1_048_576, description="Context of all "
                                 "slots together, in tokens (--ctx-size; each slot gets "
                                 "ctx_size / parallel); default: 1024 per slot.")
    threads: int | None = Field(None, ge=1, le=1024, description="CPU threads (--threads); "
                                "default: the cores this process may use.")
    port: int | None = Field(None, ge=1, le=65535, description="Preferred server port; "
                             "another free one is taken if it is busy.")
    startup_timeout_s: float = Field(300, gt=0, le=86_400, description="Longest wait for "
                                     "the server's /health.")
    extra_args: list[str] = Field(default_factory=list, description="More llama-server "
                                  "flags, as written (e.g. [--n-gpu-layers, '99']).")


@register_engine
class LlamaCppEngine(ServedEngine):
    name = "llama.cpp"
    capabilities = replace(SERVED, prompt_logprobs=False)  # no echo in /v1/completions
    options_model = LlamaCppOptions
    setup_target = "llama.cpp"
    # llama-server (cpp-httplib) closes a keep-alive connection idle for 5 s; the client's
    # pool then reuses a closing one and the request fails ("Can not write request body":
    # 2 of 32 at one request on SmolLM2 F32). A connection per request avoids it.
    client_headers = {"Connection": "close"}
    memory_note = ("llama-server maps the GGUF and allocates an f16 KV cache for ctx_size tokens "
                   "at start-up; the prediction sizes the recipe's scheme at the serving dtype "
                   "and the KV cache for the largest concurrency.")

    def environment_problem(self, options: dict[str, Any] | None = None) -> str | None:
        return tools.unavailable_reason()

    def versions(self) -> dict[str, str]:
        return {"llama.cpp": tools.build_version()}

    def load_warnings(self, options: dict[str, Any], tokens: int) -> list[str]:
        """A slot must hold a whole request (input_len + output_len): llama-server refuses a
        prompt that does not fit its slot's context."""
        try:
            typed = parse_options(LlamaCppOptions, options, self.name)
        except ValueError:
            return []  # option_errors() reports it
        if slot_context(typed) >= tokens:
            return []
        return [f"target.options: llama-server gives each of its {typed.parallel} slots "
                f"{slot_context(typed)} tokens, fewer than a request's {tokens} "
                "(input_len + output_len): raise ctx_size"]

    def model_unsupported_reason(self, model_dir: Path) -> str | None:
        found = sorted(Path(model_dir).glob("*.gguf"))
        if len(found) != 1:
            return (f"llama.cpp serves one GGUF file; {model_dir} holds {len(found)} "
                    "(quantization.method gguf writes it)")
        return None

    @contextmanager
    def serve(self, model_dir: Path, workdir: Path, options: dict[str, Any],
              trust_remote_code: bool = False) -> Iterator[Server]:
        self.require_environment(options)
        problem = self.model_unsupported_reason(model_dir)
        if problem is not None:
            raise StageError(problem)
        try:
            typed = parse_options(LlamaCppOptions, options, self.name)
        except ValueError as exc:
            raise StageError(str(exc)) from None
        workdir.mkdir(parents=True, exist_ok=True)
        gguf = next(Path(model_dir).glob("*.gguf"))
        with serving(lambda port: self.command(gguf, port, typed), "llama-server", workdir,
                     None, workdir / "server.log", typed.startup_timeout_s,
                     typed.port) as (proc, port):
            yield Server(f"http://{HOST}:{port}", SERVED_NAME, proc.pid,
                         workdir / "server.log")

    def command(self, gguf: Path, port: int, options: LlamaCppOptions) -> list[str]:
        return [str(tools.tool_path("llama-server")), "--model", str(gguf), "--host", HOST,
                "--port", str(port), "--alias", SERVED_NAME,
                "--parallel", str(options.parallel), "--ctx-size", str(slot_context(options)
                                                                        * options.parallel),
                "--threads", str(options.threads or threads()), "--no-webui",
                *options.extra_args]


def slot_context(options: LlamaCppOptions) -> int:
    """Tokens each server slot holds."""
    return options.ctx_size // options.parallel if options.ctx_size else 1024
