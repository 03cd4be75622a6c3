"""Loading checkpoints with transformers, the one way every stage does it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.errors import StageError


def torch_dtype(name: str) -> Any:
    import torch

    return getattr(torch, name)


def load_model(path: Path, dtype: str, trust_remote_code: bool = False) -> Any:
    """A causal LM in eval mode on CPU; a broken checkpoint becomes a StageError naming it."""
    from transformers import AutoModelForCausalLM

    try:
        model = AutoModelForCausalLM.from_pretrained(
            path, dtype=torch_dtype(dtype), trust_remote_code=trust_remote_code
        )
    except Exception as exc:  # transformers raises many types for a bad checkpoint
        raise StageError(f"cannot load the checkpoint in {path}: {type(exc).__name__}: {exc}")
    return model.eval()


def load_tokenizer(path: Path, trust_remote_code: bool = False) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except Exception as exc:
        raise StageError(f"cannot load the tokenizer in {path}: {type(exc).__name__}: {exc}")


def dir_size_bytes(path: Path) -> int:
    """Bytes on disk of the files in a folder (what a user downloads)."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
