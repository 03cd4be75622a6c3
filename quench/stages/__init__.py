"""Stages: one module each, registered with @register_stage and found at start-up.

The base class and its context live in `quench.contract.stage`; this package holds the
stages themselves and their registry.
"""

from __future__ import annotations

from quench.contract.stage import Stage
from quench.registry import Registry

STAGES: Registry[Stage] = Registry("stage", __name__)
register_stage = STAGES.register


def get_stage(name: str) -> Stage:
    """A new instance of the registered stage `name`; UnknownName naming the allowed ones."""
    return STAGES.get(name)()
