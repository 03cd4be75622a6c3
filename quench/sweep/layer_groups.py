"""Decoder-layer groups as compressed-tensors ignore patterns, and the model's layer count read
from a finished run: what the sensitivity strategy needs to quantize one group at a time.

compressed-tensors matches an `re:` ignore entry with `re.match` (anchored at the start of the
module name, not at its end; `compressed_tensors.utils.match.match_name`), so a pattern here
starts with `(?:.*\\.)?` (any parent path) and ends each layer index with `\\.` (layer 1 must
not catch layer 10): `re:(?:.*\\.)?layers\\.(?:1|3)\\.` matches `model.layers.3.mlp.down_proj`
and nothing in `model.layers.13.` or `model.layers.30.`."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from quench.errors import QuenchError

LAYERS_PREFIX = r"(?:.*\.)?layers\."  # a decoder layer's parent path (model.layers., ...)


def layer_groups(num_layers: int, per_group: int) -> list[list[int]]:
    """Consecutive layer indices in groups of `per_group` (the last group may be smaller)."""
    return [list(range(start, min(start + per_group, num_layers)))
            for start in range(0, num_layers, per_group)]


def keep_pattern(layers: Iterable[int]) -> str | None:
    """The `re:` ignore entry that leaves exactly these decoder layers unquantized; None when
    there are none (nothing to add to the ignore list)."""
    indices = sorted(set(layers))
    if not indices:
        return None
    return "re:" + LAYERS_PREFIX + "(?:" + "|".join(str(i) for i in indices) + r")\."


def ignore_keeping(base_ignore: Sequence[str], layers: Iterable[int]) -> list[str]:
    """The base recipe's ignore list plus the pattern that keeps `layers` at full precision."""
    pattern = keep_pattern(layers)
    return [*base_ignore, pattern] if pattern else list(base_ignore)


def base_ignore(base_recipe: dict[str, Any]) -> list[str]:
    """quantization.options.ignore of the base recipe; the methods' default ["lm_head"]."""
    options = (base_recipe.get("quantization") or {}).get("options") or {}
    ignore = options.get("ignore")
    return list(ignore) if ignore is not None else ["lm_head"]


def layer_count_from_run(run_info: dict[str, Any] | None) -> int:
    """num_hidden_layers of the resolved model of a finished run (run.json -> resolve stage's
    manifest.json -> outputs.model_dir/config.json); a QuenchError says which link is missing."""
    try:
        folder = Path(run_info["nodes"]["resolve"]["dir"])  # type: ignore[index]
    except (KeyError, TypeError):
        raise QuenchError("strategy sensitivity: the baseline's run.json names no resolve stage "
                          "folder (nodes.resolve.dir); cannot read the model's layer count"
                          ) from None
    manifest = _read_json(folder / "manifest.json")
    model_dir = (manifest.get("outputs") or {}).get("model_dir")
    if not model_dir:
        raise QuenchError(f"strategy sensitivity: {folder / 'manifest.json'} has no "
                          "outputs.model_dir; cannot read the model's layer count")
    config = Path(model_dir) if Path(model_dir).is_absolute() else folder / model_dir
    config = config / "config.json"  # a relative output lies in the stage's own folder
    return layer_count_from_config(_read_json(config), config)


def layer_count_from_config(config: dict[str, Any], where: Path | str) -> int:
    """num_hidden_layers (or a multimodal model's text_config.num_hidden_layers)."""
    count = config.get("num_hidden_layers", (config.get("text_config") or {}).get(
        "num_hidden_layers"))
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise QuenchError(f"strategy sensitivity: {where}: num_hidden_layers is {count!r}, "
                          "expected a positive integer (the decoder layer count)")
    return count


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise QuenchError(f"strategy sensitivity: cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise QuenchError(f"strategy sensitivity: {path}: expected a JSON object")
    return data
