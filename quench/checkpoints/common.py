"""What the checker of every kind uses: the accepted values (spec.yaml), the config and
safetensors header readers, and the check of a Linear's weight against the geometry."""

from __future__ import annotations

import json
import struct
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from quench.errors import StageError


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
