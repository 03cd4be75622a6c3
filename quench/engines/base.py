"""The engine interface: `Engine` (evaluated in the main environment), `ServedEngine`, their
capabilities record and the registry every engine module registers with.

An engine either evaluates in the main environment (`hf`, the reference: `Engine`) or serves
the checkpoint as an OpenAI-compatible server on 127.0.0.1 from its own environment
(`ServedEngine`: `vllm`, `tensorrt-llm`). The folder on disk is the only thing the two sides
share. What an engine can do is data (`EngineCapabilities`), read by the stages.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from quench.engines.options import parse_options
from quench.errors import NotSetUp
from quench.methods.storage import Storage
from quench.registry import Registry
from quench.serving import bench_client
from quench.serving.process import Server
from quench.strict import NoOptions, StrictModel

if TYPE_CHECKING:
    from quench.contract.manifest import Manifest

@dataclass(frozen=True)
class EngineCapabilities:
    """What an engine does, as data the stages read (no hasattr, no engine names)."""

    served: bool = False  # serve(): an OpenAI-compatible server from its own environment
    benchmark: bool = False  # benchmark(): the throughput stage can sweep its server
    builds: bool = False  # serves what the build stage makes (its manifest's model_dir)
    # its completions API returns the prompt's log-probabilities (echo), which lm-eval's
    # loglikelihood tasks (every task quench bundles) need; llama-server's does not
    prompt_logprobs: bool = True


REFERENCE_ENGINE = "hf"  # the in-process reference that served engines' results are compared to
IN_PROCESS = EngineCapabilities()
SERVED = EngineCapabilities(served=True, benchmark=True)


class Engine:
    """Base class: an engine evaluated in the main environment (`hf`); see ServedEngine."""

    name: ClassVar[str]
    capabilities: ClassVar[EngineCapabilities] = IN_PROCESS
    setup_target: ClassVar[str | None] = None  # the `quench setup` target of its environment
    options_model: ClassVar[type[StrictModel]] = NoOptions  # what `target.options` may hold

    def __init__(self, environment: str | None = None) -> None:
        # recipe `target.environment`: the venv the engine runs from; None: the default one
        self.environment = environment

    def option_errors(self, options: dict[str, Any]) -> list[str]:
        """Pre-flight (`quench validate`): problems with target.options, read as options_model."""
        try:
            parse_options(self.options_model, options, self.name)
        except ValueError as exc:
            return [str(exc)]
        return []

    def unavailable_reason(self, options: dict[str, Any] | None = None) -> str | None:
        """Why this engine cannot run on this machine (missing environment, no CUDA), or None;
        options: the recipe's target.options (None: the defaults)."""
        return self.environment_problem(options)

    def environment_problem(self, options: dict[str, Any] | None = None) -> str | None:
        """What is wrong with the engine's environment (not set up, not a venv with the engine),
        naming what fixes it; None when it is usable or this machine cannot run the engine
        anyway. A problem is an error before a run, where a machine that cannot is a skip."""
        return None

    def require_environment(self, options: dict[str, Any] | None = None) -> None:
        """Raises NotSetUp (exit 2) with the environment's problem, if it has one."""
        problem = self.environment_problem(options)
        if problem is not None:
            raise NotSetUp(problem)

    def check_model(self, scheme: str, storage: Storage | None, config: dict[str, Any]
                    ) -> list[str]:
        """Pre-flight (`quench validate`, the recipe's target engine): why this engine would
        refuse the checkpoint `scheme` writes (what `storage` says it stores) for the model of
        `config` (its config.json); empty when it loads it."""
        return []

    def model_unsupported_reason(self, model_dir: Path) -> str | None:
        """Why this engine build cannot serve model_dir (e.g. a head size it has no kernel for)."""
        return None

    def load_warnings(self, options: dict[str, Any], tokens: int) -> list[str]:
        """Pre-flight: what may fail serving requests of `tokens` tokens (input + output)."""
        return []

    def versions(self) -> dict[str, str]:
        """Versions of the engine's own packages (they enter the cache key of stages using it)."""
        return {}

    def loads_from(self, inputs: Mapping[str, Manifest]) -> Manifest:
        """The upstream manifest whose `model_dir` this engine loads: the build stage's when
        the engine builds (and the node has one), the `model` input's otherwise."""
        if self.capabilities.builds and "build" in inputs:
            return inputs["build"]
        return inputs["model"]


class ServedEngine(Engine):
    """An engine that serves the checkpoint (OpenAI-compatible, on 127.0.0.1) and is measured
    with the shared serving benchmark client (quench/serving/bench_client.py)."""

    capabilities: ClassVar[EngineCapabilities] = SERVED
    client_headers: ClassVar[dict[str, str]] = {}  # sent by the benchmark client
    # what the throughput stage's measured memory includes beside the predicted weights + KV
    memory_note: ClassVar[str] = (
        "vLLM reserves its KV cache up front (VLLM_CPU_KVCACHE_SPACE on CPU, "
        "gpu_memory_utilization on GPU), and the measured figure includes the runtime "
        "(Python, torch, compiled graphs) of every server process.")

    @contextmanager
    def serve(self, model_dir: Path, workdir: Path, options: dict[str, Any],
              trust_remote_code: bool = False) -> Iterator[Server]:
        """Starts a server for model_dir, yields it once healthy, and always stops it;
        trust_remote_code: the recipe's model.trust_remote_code (the server loads the model)."""
        raise NotImplementedError(f"engine {self.name!r} has no serve()")
        yield  # pragma: no cover

    @property
    def client_env(self) -> Path:
        """The vLLM environment the benchmark client runs from (default: the quench home's)."""
        return bench_client.default_env()

    def benchmark(self, server: Server, tokenizer: Path, concurrency: int,
                  params: dict[str, Any], out_dir: Path, timeout: float) -> dict[str, Any]:
        """The serving benchmark client at one concurrency; its saved JSON result."""
        return bench_client.run(self.client_env, server, tokenizer, concurrency, params,
                                out_dir, timeout, self.client_headers)


def installed_versions(env_dir: Path, names: Collection[str]) -> dict[str, str]:
    """Versions of the distributions `names` installed in a venv, read without importing them."""
    found: dict[str, str] = {}
    for site in env_dir.glob("lib/python3*/site-packages"):
        for dist in metadata.distributions(path=[str(site)]):
            name = (dist.metadata["Name"] or "").lower()
            if name in names:
                found[name] = dist.version
    return found


ENGINES: Registry[Engine] = Registry("engine", "quench.engines")
register_engine = ENGINES.register


def get_engine(name: str, environment: str | None = None) -> Engine:
    """A new instance of the registered engine `name` (environment: recipe target.environment);
    UnknownName naming the allowed ones."""
    return ENGINES.get(name)(environment)


def engine_names() -> list[str]:
    """Every registered engine name, sorted."""
    return ENGINES.names()
