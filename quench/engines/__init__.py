"""Inference engines: one module each, registered with @register_engine and found at start-up.

The interface (`Engine`, `ServedEngine`, `EngineCapabilities`) lives in `quench.engines.base`;
typed `target.options` in `quench.engines.options`.
"""

from __future__ import annotations

from quench.engines.base import (
    ENGINES,
    IN_PROCESS,
    REFERENCE_ENGINE,
    SERVED,
    Engine,
    EngineCapabilities,
    ServedEngine,
    Server,
    engine_names,
    get_engine,
    installed_versions,
    register_engine,
)

__all__ = ["ENGINES", "IN_PROCESS", "REFERENCE_ENGINE", "SERVED", "Engine", "EngineCapabilities",
           "ServedEngine", "Server", "engine_names", "get_engine", "installed_versions",
           "register_engine"]
