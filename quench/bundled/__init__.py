"""Files quench ships inside its package: recipes, sweeps, lm-eval task YAMLs and data excerpts.

They are found with importlib.resources, so an installed wheel finds them as a checkout does
(a checkout's top-level `recipes/`, `sweeps/` and `evals/` are links into this folder).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def bundled_dir(kind: str) -> Path:
    """The bundled folder `kind` (recipes, sweeps, evals, data) as a file-system path."""
    return Path(str(resources.files(__name__).joinpath(kind)))
