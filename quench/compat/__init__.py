"""Can the recipe's checkpoint run on its target? Answered from matrix.yaml before any work.

The look-ups live in `quench.compat.rules`; the rules themselves, with their sources, in
`quench/compat/matrix.yaml`.
"""

from __future__ import annotations

from quench.compat.rules import (
    Cell,
    Gpu,
    Verdict,
    backend_of,
    cell_of,
    check,
    export_format,
    first_rule,
    gpu_arch,
    matrix,
    sized_gpus,
)

__all__ = ["Cell", "Gpu", "Verdict", "backend_of", "cell_of", "check", "export_format",
           "first_rule", "gpu_arch", "matrix", "sized_gpus"]
