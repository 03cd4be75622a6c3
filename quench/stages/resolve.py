"""resolve: turns model.id into a local checkpoint folder and fingerprints its files.

A GGUF input is dequantized here, once, into a dense checkpoint in this stage's cache entry
(keyed by the file's digest, the recipe dtype, `auto` meaning bfloat16 here, and the shard
size); every later stage reads that checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from quench import gguf, lineage
from quench.compute import GGUF_AUTO_DTYPE
from quench.contract.manifest import Manifest
from quench.contract.stage import Stage, StageContext, StageResult
from quench.errors import StageError
from quench.gguf import dequantize_to_checkpoint
from quench.lineage import model_digests
from quench.models import check_safetensors
from quench.recipe.schema import Recipe
from quench.sources import (
    ResolvedModel,
    fingerprint_path,
    model_config,
    names_gguf,
    resolve_spec,
)
from quench.stages import register_stage


@register_stage
class ResolveStage(Stage[Recipe]):
    name = "resolve"
    libraries = ("huggingface-hub", "transformers", "gguf")

    def config(self, recipe: Recipe) -> dict[str, Any]:
        spec = recipe.model.model_dump()
        if names_gguf(recipe.model):
            return {**spec, "max_shard_size": recipe.output.max_shard_size}
        return {**spec, "dtype": None}  # a folder is used as it is, whatever the dtype

    def fingerprint(self, recipe: Recipe) -> dict[str, Any]:
        resolved = resolve_spec(recipe.model)
        return {"path": str(resolved.source), "origin": resolved.origin,
                "files": fingerprint_path(resolved.source)}

    def code_files(self) -> list[Path]:
        return [*super().code_files(), Path(gguf.__file__), Path(lineage.__file__)]

    def headline(self, manifest: Manifest) -> str:
        origin = manifest.outputs.get("origin")
        return f"from {origin}" if origin else ""

    def run(self, ctx: StageContext[Recipe]) -> StageResult:
        resolved = resolve_spec(ctx.recipe.model)
        outputs: dict[str, Any] = {"origin": resolved.origin}
        source_file = resolved.gguf_file
        if resolved.gguf_file is not None:
            dtype = ctx.recipe.model.dtype
            dtype = GGUF_AUTO_DTYPE if dtype == "auto" else dtype
            outputs.update(_dequantize(resolved, ctx.out_dir / "model", dtype,
                                       ctx.recipe.output.max_shard_size))
            folder = ctx.out_dir / "model"
        else:
            outputs["model_dir"] = str(resolved.path)
            folder = resolved.path
        config = model_config(ResolvedModel(folder, resolved.origin))
        weights = sorted(folder.glob("*.safetensors"))
        if not weights:
            raise StageError(f"model.id: {folder} holds no *.safetensors weights")
        outputs.update({
            "architectures": config.get("architectures", []),
            "model_type": config.get("model_type"),
            "weights": [w.name for w in weights],
            "tensors": sum(check_safetensors(w) for w in weights),
            # by content: the gate compares runs of the same base model only
            "digests": model_digests(folder, source_file),
        })
        return StageResult(outputs=outputs)


def _dequantize(resolved: ResolvedModel, out: Path, dtype: str, max_shard_size: str
                ) -> dict[str, Any]:
    """The GGUF's dense checkpoint and what its metadata says (license, types, base models)."""
    assert resolved.gguf_file is not None
    info = dequantize_to_checkpoint(resolved.gguf_file, out, dtype, max_shard_size)
    return {
        "model_dir": "model",
        "gguf": {"file": str(resolved.gguf_file), "architecture": info.architecture,
                 "name": info.name, "license": info.license, "base_models": info.base_models,
                 "tensor_types": info.tensor_types, "dtype": dtype},
    }
