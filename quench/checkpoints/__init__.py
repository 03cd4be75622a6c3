"""Offline validation of deployable checkpoints, without TensorRT-LLM (which cannot load here).

Checks what an engine would trip on at load time, from config files and safetensors headers
only: required config keys, allowed quant_algo / kv_cache_quant_algo values, rank files against
the world size, and tensor names, dtypes and shapes against the model's geometry. A truncated
or corrupt file is a problem like any other; every problem is reported at once.
"""

from __future__ import annotations

import json
import struct
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from quench.errors import QuenchError, StageError

KINDS = ("trtllm-checkpoint", "modelopt-hf", "compressed-tensors", "hf")


class CheckpointError(StageError):
    """A checkpoint an engine would refuse or misread; the message lists every problem."""


@cache
def spec() -> dict[str, Any]:
    """The accepted values (spec.yaml), with the documentation each comes from."""
    return yaml.safe_load((Path(__file__).with_name("spec.yaml")).read_text())


def read_json(path: Path, problems: list[str]) -> dict[str, Any] | None:
    """A JSON object file, or None with the reason added to problems."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        problems.append(f"{path.name}: missing")
        return None
    except (OSError, ValueError) as exc:
        problems.append(f"{path.name}: not valid JSON ({exc})")
        return None
    if not isinstance(data, dict):
        problems.append(f"{path.name}: not a JSON object")
        return None
    return data


def read_header(path: Path, problems: list[str]) -> dict[str, dict[str, Any]] | None:
    """A safetensors file's tensor table (name -> dtype, shape), after the truncation check."""
    from quench.models import check_safetensors

    try:
        check_safetensors(path)
    except (StageError, OSError) as exc:
        problems.append(str(exc))
        return None
    with path.open("rb") as fh:
        (size,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(size))
    header.pop("__metadata__", None)
    return header


def check_linear(where: str, name: str, entry: dict[str, Any], shape: tuple[int, int],
                 layout: dict[str, Any] | None, tensors: dict[str, Any],
                 problems: list[str]) -> None:
    """A Linear's weight against the geometry: its (out, in) shape, packed for int4, and the
    quant_algo's dtype and scale tensors. `where` prefixes each problem (e.g. a rank file)."""
    pack = layout["pack"] if layout else 1
    want = [shape[0] // pack, shape[1]]
    if list(entry["shape"]) != want:
        problems.append(f"{where}{name}.weight has shape {entry['shape']}, expected {want} from "
                        "the model geometry" + (f" ({pack} int4 values per byte)" if pack > 1
                                                else ""))
    if layout is None:
        return
    if entry["dtype"] != layout["weight"]:
        problems.append(f"{where}{name}.weight is {entry['dtype']}, the quant_algo stores "
                        f"{layout['weight']}")
    lacking = [s for s in layout["scales"] if f"{name}.{s}" not in tensors]
    if lacking:
        problems.append(f"{where}{name} lacks {lacking}")


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
