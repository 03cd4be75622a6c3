"""Quantization methods: one module each, registered with @register_method and found at start-up.

The interface lives in `quench.methods.base`, what a scheme stores in `quench.methods.storage`
and the shape rules every grouped or block-wise scheme obeys in `quench.methods.shapes`.
"""

from __future__ import annotations

from quench.methods.base import (
    METHODS,
    Method,
    MethodCapabilities,
    MethodOptions,
    ModuleOptions,
    get_method,
    method_names,
    register_method,
)
from quench.methods.storage import Storage, WorkingSet
from quench.strict import NoOptions

__all__ = ["METHODS", "Method", "MethodCapabilities", "MethodOptions", "ModuleOptions",
           "NoOptions", "Storage", "WorkingSet", "get_method", "method_names", "register_method"]
