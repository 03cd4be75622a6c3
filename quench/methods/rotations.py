"""Weight rotations in front of a weight scheme: SpinQuant (fused) or QuIP (online Hadamard).

Both are llm-compressor 0.14 transform modifiers (llmcompressor.modifiers.transform) that run
before the quantizer in the same `oneshot`. What the checkpoint then holds differs, and decides
where it can be served (quench/compat/matrix.yaml, `transform:` rules):
- spinquant: SpinQuantModifier R1 + R2 (Hadamard), fused into the weights (offline locations
  only); the embeddings are untied, so a tied model gains a dense lm_head. Any engine that
  loads the scheme loads it.
- quip: QuIPModifier's input rotation `v` (random Hadamard): one inverse half fused into the
  weights, the other applied to each Linear's input at run time; the checkpoint stores the
  matrices (`<module>.v_input.weight`) and `transform_config`. The engine must apply them:
  vLLM does (CompressedTensorsLinearTransformMethod); transformers 5.17 drops them, which
  attach_online_transforms() makes up for in quench's own loader.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

Rotation = Literal["none", "spinquant", "quip"]
TransformKind = Literal["none", "fused", "online"]  # matrix.yaml rules match on it
KIND: dict[str, TransformKind] = {"none": "none", "spinquant": "fused", "quip": "online"}
TRANSFORM_WEIGHT = re.compile(r"\.[A-Za-z0-9]+_(input|output)\.weight$")


def rotation_field() -> Any:
    """The `rotation` option of a weight scheme's options model (rtn, gptq)."""
    return Field("none", description="Rotate weights before quantizing: spinquant (R1+R2 "
                 "Hadamard, fused into the weights), quip (online input Hadamard: the engine "
                 "must apply it), or none.")


def rotation_modifiers(rotation: Rotation) -> list[Any]:
    """The llm-compressor transform modifiers to run before the quantizer (none: [])."""
    if rotation == "spinquant":
        from llmcompressor.modifiers.transform import SpinQuantModifier

        return [SpinQuantModifier(rotations=["R1", "R2"], transform_type="hadamard")]
    if rotation == "quip":
        from llmcompressor.modifiers.transform import QuIPModifier

        return [QuIPModifier(rotations=["v"], transform_type="random-hadamard")]
    return []


def transform_kind(rotation: Rotation) -> TransformKind:
    """What the checkpoint asks of the engine: nothing, fused rotations, or online ones."""
    return KIND[rotation]


def attach_online_transforms(model: Any, path: Path) -> int:
    """Applies a compressed-tensors checkpoint's online transforms to a model transformers
    loaded (it ignores `transform_config` and drops the stored matrices), with the stored
    matrices; returns how many were loaded. Fused (weight_*) transforms are already in the
    weights and are left out."""
    config = json.loads((Path(path) / "config.json").read_text())
    stored = (config.get("quantization_config") or {}).get("transform_config") or {}
    if not stored.get("config_groups"):
        return 0
    from compressed_tensors.transform import TransformConfig, apply_transform_config

    groups = {}
    for name, scheme in TransformConfig.model_validate(stored).config_groups.items():
        online = [args for args in scheme.apply if args.is_online()]
        if online:
            groups[name] = scheme.model_copy(update={"apply": online})
    if not groups:
        return 0
    apply_transform_config(model, TransformConfig(config_groups=groups))
    tensors = _transform_tensors(Path(path))
    missing = [k for k in model.load_state_dict(tensors, strict=False).unexpected_keys]
    if missing:
        raise ValueError(f"{path}: stored transform matrices with no module: {missing[:3]}")
    return len(tensors)


def _transform_tensors(path: Path) -> dict[str, Any]:
    from safetensors import safe_open

    tensors = {}
    for shard in sorted(path.glob("*.safetensors")):
        with safe_open(str(shard), "pt") as f:
            names = [k for k in f.keys() if TRANSFORM_WEIGHT.search(k)]  # noqa: SIM118
            tensors.update({k: f.get_tensor(k) for k in names})
    return tensors
