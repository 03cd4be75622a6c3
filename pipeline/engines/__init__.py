"""Inference engines: one module each, registered with @register_engine and found at start-up.

An engine either evaluates in the main environment (`hf`, the reference) or serves the
checkpoint as an OpenAI-compatible server on 127.0.0.1 from its own environment (`vllm`,
`tensorrt-llm`). The checkpoint folder on disk is the only thing the two sides share.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar

from pipeline.engines.options import NoOptions, parse_options
from pipeline.registry import Registry
from pipeline.strict import StrictModel


@dataclass(frozen=True)
class Server:
    """A running OpenAI-compatible server: where to reach it and where its log is."""

    base_url: str  # e.g. "http://127.0.0.1:8123" (no trailing /v1)
    model: str  # the served model name, as clients must send it
    pid: int
    log_path: Path


class Engine:
    """Base class. Serving engines implement serve(); `hf` evaluates in-process instead."""

    name: ClassVar[str]
    served: ClassVar[bool] = True  # False: evaluated in the main environment, no server
    make_target: ClassVar[str | None] = None  # the make target that creates its environment
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

    def unavailable_reason(self) -> str | None:
        """Why this engine cannot run on this machine (missing environment, no CUDA), or None."""
        return None

    def model_unsupported_reason(self, model_dir: Path) -> str | None:
        """Why this engine build cannot serve model_dir (e.g. a head size it has no kernel for)."""
        return None

    def versions(self) -> dict[str, str]:
        """Versions of the engine's own packages (they enter the cache key of stages using it)."""
        return {}

    @contextmanager
    def serve(self, model_dir: Path, workdir: Path, options: dict[str, Any],
              trust_remote_code: bool = False) -> Iterator[Server]:
        """Starts a server for model_dir, yields it once healthy, and always stops it;
        trust_remote_code: the recipe's model.trust_remote_code (the server loads the model)."""
        raise NotImplementedError(f"engine {self.name!r} does not serve")
        yield  # pragma: no cover


def installed_versions(env_dir: Path, names: Collection[str]) -> dict[str, str]:
    """Versions of the distributions `names` installed in a venv, read without importing them."""
    found: dict[str, str] = {}
    for site in env_dir.glob("lib/python3*/site-packages"):
        for dist in metadata.distributions(path=[str(site)]):
            name = (dist.metadata["Name"] or "").lower()
            if name in names:
                found[name] = dist.version
    return found


ENGINES: Registry[Engine] = Registry("engine", __name__)
register_engine = ENGINES.register


def get_engine(name: str, environment: str | None = None) -> Engine:
    """A new instance of the registered engine `name` (environment: recipe target.environment)."""
    cls = ENGINES.get(name)
    if cls is None:
        raise KeyError(f"no engine {name!r}; registered: {ENGINES.names()}")
    return cls(environment)


def engine_names() -> list[str]:
    return ENGINES.names()
