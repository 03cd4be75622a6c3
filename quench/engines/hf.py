"""hf: transformers in the main environment, the reference every served engine is compared to."""

from __future__ import annotations

from quench.engines import Engine, register_engine


@register_engine
class HfEngine(Engine):
    name = "hf"  # the base's capabilities: in-process, no server, no build
