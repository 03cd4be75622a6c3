"""Which kind a checkpoint folder is, and whether it is valid for that kind."""


from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from quench.errors import QuenchError, StageError

KINDS = ("trtllm-checkpoint", "modelopt-hf", "compressed-tensors", "hf")


class CheckpointError(StageError):
    """A checkpoint an engine would refuse or misread; the message lists every problem."""


def detect_kind(path: Path) -> str:
    """Which of KINDS the folder holds, from its config files."""
    config = _json_or_empty(path / "config.json")
    if "architecture" in config and "architectures" not in config:
        return "trtllm-checkpoint"
    if (path / "hf_quant_config.json").is_file():
        return "modelopt-hf"
    qc = config.get("quantization_config") or {}
    return "compressed-tensors" if qc.get("quant_method") == "compressed-tensors" else "hf"


def validate(path: Path, kind: str | None = None,
             source_config: dict[str, Any] | None = None) -> dict[str, Any]:
    """Facts about a valid checkpoint; CheckpointError listing every problem otherwise.

    source_config: the unquantized model's config.json, to compare the geometry against.
    """
    from quench.checkpoints import hf, trtllm

    path = Path(path)
    kind = kind or detect_kind(path)
    if kind not in KINDS:
        raise QuenchError(f"unknown checkpoint kind {kind!r}; known: {', '.join(KINDS)}")
    if not path.is_dir():
        raise CheckpointError(f"{path}: no such checkpoint folder")
    problems: list[str] = []
    checker = trtllm.check if kind == "trtllm-checkpoint" else hf.check
    facts = checker(path, kind, source_config, problems)
    if problems:
        raise CheckpointError(f"{kind} checkpoint {path} rejected:\n  " + "\n  ".join(problems))
    return {"kind": kind, **facts}


def _json_or_empty(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
