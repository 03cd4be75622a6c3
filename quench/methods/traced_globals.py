"""Frees what llm-compressor's torch.fx tracing registers for the life of the process.

llm-compressor 0.14's sequential pipeline (GPTQ, AWQ, SmoothQuant, AutoRound...) recompiles
the forward of every ancestor of the decoder layers in a copy of its module's globals holding
`self` (llmcompressor/pipelines/sequential/ast_helpers.py, `autowrap_forward`), and runs each
traced subgraph's generated code in a globals dict of its own (helpers.py, `Subgraph.forward`).
Both codes call `torch.fx.wrap(...)` at their top level, and `wrap` stores the caller's globals
in torch's module-level `_wrapped_fns_to_patch` dict forever (torch/fx/_symbolic_trace.py,
`wrap`). Through those dicts the traced model (the LlamaModel under LlamaForCausalLM: every
layer and the embedding) stayed alive after `oneshot` returned, for the rest of the run.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def traced_globals_released() -> Iterator[None]:
    """Around `oneshot`: drops the `torch.fx.wrap` registrations made meanwhile by code run in
    a copied or generated globals dict; a real module's registration (an import) is kept."""
    from torch.fx import _symbolic_trace

    registry = _symbolic_trace._wrapped_fns_to_patch
    before = set(registry)
    try:
        yield
    finally:
        modules = {id(vars(m)) for m in list(sys.modules.values()) if hasattr(m, "__dict__")}
        for key in [k for k, scope in registry.items()
                    if k not in before and id(scope) not in modules]:
            del registry[key]
