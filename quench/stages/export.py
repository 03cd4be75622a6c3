"""export: the checkpoint the target engine loads, written (ModelOpt) or passed on, then validated.

ModelOpt's fake-quantized checkpoint becomes the unified HF checkpoint (hf_quant_config.json)
or, for TensorRT-LLM's legacy engine, the TensorRT-LLM checkpoint (config.json +
rank<N>.safetensors). compressed-tensors and dense checkpoints are what their engines load
as they are. Either way the offline validator (quench/checkpoints) must accept it: an engine
would otherwise find out on a GPU host, after the calibration was paid for.
"""

from __future__ import annotations

import contextlib
import io
import json
import time
import warnings
from pathlib import Path
from typing import Any

from quench import compat
from quench.checkpoints.validate import detect_kind, validate
from quench.contract.manifest import Manifest
from quench.contract.stage import Publishes, Stage, StageContext, StageResult
from quench.engines import get_engine
from quench.models import dir_size_bytes, load_model, load_tokenizer
from quench.progress import human_bytes
from quench.recipe.schema import Recipe
from quench.stages import register_stage


@register_stage
class ExportStage(Stage[Recipe]):
    name = "export"
    publishes = Publishes(model_dir="model_dir", priority=1)  # over quantize's
    libraries = ("nvidia-modelopt", "torch", "transformers", "safetensors")

    def config(self, recipe: Recipe) -> dict[str, Any]:
        target = recipe.target
        if target is None:
            return {}
        options = target.options
        return {"engine": target.engine,
                "backend": compat.backend_of(target.engine, target.backend),
                "dtype": options.get("dtype", "float16"), "tp_size": options.get("tp_size", 1),
                "model_dtype": recipe.model.dtype}

    def code_files(self) -> list[Path]:
        """The validator and the matrix decide what is written and accepted."""
        import quench.checkpoints as checkpoints

        here, rules = Path(checkpoints.__file__).parent, Path(compat.__file__).parent
        return [*super().code_files(), *sorted(here.glob("*.py")), here / "spec.yaml",
                *sorted(rules.glob("*.py")), rules / "matrix.yaml"]

    def skip_reason(self, recipe: Recipe, inputs: dict[str, Manifest]) -> str | None:
        if recipe.target is None:
            return "the recipe has no target engine"
        if not get_engine(recipe.target.engine).capabilities.served:
            return (f"engine {recipe.target.engine} evaluates the quantize stage's checkpoint "
                    "as it is")
        if inputs["model"].skipped:
            return "no quantized checkpoint (quantize was skipped)"
        return None

    def headline(self, manifest: Manifest) -> str:
        x = manifest.metrics
        sized = human_bytes(x["checkpoint_bytes"]) if "checkpoint_bytes" in x else ""
        return " ".join(p for p in (manifest.outputs.get("format"), sized) if p)

    def run(self, ctx: StageContext[Recipe]) -> StageResult:
        recipe = ctx.recipe
        quantized = ctx.inputs["model"].path("model_dir")
        source = ctx.inputs["source"].path("model_dir")
        cell = compat.cell_of(recipe)
        kind = cell.format if cell else detect_kind(quantized)
        start = time.perf_counter()
        if kind in ("modelopt-hf", "trtllm-checkpoint"):
            out = ctx.out_dir / "checkpoint"
            export_modelopt(quantized, out, kind, recipe)
            model_dir: str = "checkpoint"
        else:  # the quantize stage's checkpoint is already what the engine loads
            out, model_dir = quantized, str(quantized)
        source_config = json.loads((source / "config.json").read_text())
        if kind == "gguf":  # llama.cpp loads the GGUF file of the quantize stage's folder
            out = next(quantized.glob("*.gguf"))
            facts = gguf_facts(out)
        else:
            facts = validate(out, kind, source_config)
        outputs = {"model_dir": model_dir, "format": kind, "validation": facts,
                   "engine": recipe.target.engine, "backend": cell.backend if cell else None,
                   "source_model_dir": str(source)}
        metrics = {"export_seconds": round(time.perf_counter() - start, 3),
                   "checkpoint_bytes": out.stat().st_size if out.is_file() else dir_size_bytes(out)}
        return StageResult(outputs=outputs, metrics=metrics)


def export_modelopt(quantized: Path, out: Path, kind: str, recipe: Recipe) -> None:
    """Restores the fake-quantized model and writes ModelOpt's export for the target."""
    import torch

    options = recipe.target.options
    dtype = getattr(torch, options.get("dtype", "float16"))
    model = load_model(quantized, recipe.model.dtype, recipe.model.trust_remote_code)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            torch.inference_mode():
        warnings.simplefilter("ignore")
        from modelopt.torch.export import export_hf_checkpoint, export_tensorrt_llm_checkpoint

        if kind == "modelopt-hf":
            export_hf_checkpoint(model, dtype=dtype, export_dir=out)
        else:
            export_tensorrt_llm_checkpoint(
                model, _decoder_type(model), dtype, export_dir=out,
                inference_tensor_parallel=int(options.get("tp_size", 1)))
    if kind == "modelopt-hf":  # trtllm-serve and vLLM read the tokenizer from the same folder
        load_tokenizer(quantized, recipe.model.trust_remote_code).save_pretrained(out)


def gguf_facts(path: Path) -> dict[str, Any]:
    """What the GGUF's header says: readable, its tensor types and license keys."""
    from quench.gguf import read_gguf

    info = read_gguf(path)
    return {"file": path.name, "tensors": info.tensor_count, "tensor_types": info.tensor_types,
            "license": info.license, "base_models": info.base_models}


def _decoder_type(model: Any) -> str:
    """ModelOpt's name for the architecture (llama, qwen, ...)."""
    from modelopt.torch.export.model_utils import get_model_type

    return get_model_type(model) or model.config.model_type


def deployment_summary(export: Manifest | None, build: Manifest | None) -> dict[str, Any]:
    """The run report's deployment section: checkpoint format, validation, build status."""
    if export is None:
        return {}
    summary: dict[str, Any] = {"export": export.status}
    if not export.skipped:
        summary.update(format=export.outputs.get("format"),
                       validation=export.outputs.get("validation"),
                       checkpoint=str(export.path("model_dir")))
    if build is not None:
        summary["build"] = build.status
        if build.outputs.get("build_plan"):
            summary["build_plan"] = str(build.path("build_plan"))
    return summary


def deployment_markdown(summary: dict[str, Any]) -> list[str]:
    """The deployment section in Markdown."""
    if not summary or "format" not in summary:
        return []
    v = summary.get("validation") or {}
    lines = ["", "## Deployment", "",
             f"Checkpoint `{summary['format']}` at `{summary['checkpoint']}`: validated offline"
             + (f" (quant_algo {v.get('quant_algo')}, KV cache {v.get('kv_cache_quant_algo')})"
                if v.get("quant_algo") else "") + f", {v.get('tensors')} tensors."]
    if "build" in summary:
        lines.append(f"Build: {summary['build']}."
                     + (f" Commands: `{summary['build_plan']}`." if "build_plan" in summary
                        else ""))
    return lines
