"""quantize: applies the recipe's method with llmcompressor and saves a reloadable checkpoint."""

from __future__ import annotations

import json
import resource
import time
from pathlib import Path
from typing import Any

from pipeline import methods
from pipeline.errors import StageError
from pipeline.methods import get_method
from pipeline.models import check_safetensors, dir_size_bytes, load_model, load_tokenizer
from pipeline.recipe.schema import Recipe
from pipeline.stages import Stage, StageContext, StageResult, register_stage

RELOAD_PROMPT = "Once upon a time, there was a little girl"


@register_stage
class QuantizeStage(Stage):
    name = "quantize"
    libraries = ("torch", "transformers", "llmcompressor", "compressed-tensors")

    def config(self, recipe: Recipe) -> dict[str, Any]:
        return {
            "quantization": recipe.quantization.model_dump(),
            "dtype": recipe.model.dtype,
            "trust_remote_code": recipe.model.trust_remote_code,
        }

    def code_files(self) -> list[Path]:
        """The stage module and every method module: a method's code shapes the checkpoint."""
        return super().code_files() + sorted(Path(methods.__file__).parent.glob("*.py"))

    def run(self, ctx: StageContext) -> StageResult:
        recipe = ctx.recipe
        method = get_method(recipe.quantization.method)
        source = ctx.inputs["model"].path("model_dir")
        trust = recipe.model.trust_remote_code
        model = load_model(source, recipe.model.dtype, trust)
        tokenizer = load_tokenizer(source, trust)
        modifiers = method.modifiers(recipe.quantization.scheme, recipe.quantization.options)
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        if modifiers:
            _oneshot(model, modifiers, ctx)
        wall, cpu = time.perf_counter() - start_wall, time.process_time() - start_cpu
        out = ctx.out_dir / "model"
        model.save_pretrained(out, save_compressed=bool(modifiers))
        tokenizer.save_pretrained(out)
        for shard in out.glob("*.safetensors"):
            check_safetensors(shard)
        check = reload_check(out, recipe.model.dtype, trust)
        config = json.loads((out / "config.json").read_text())
        size = dir_size_bytes(out)
        outputs = {
            "model_dir": "model",
            "format": config.get("quantization_config", {}).get("quant_method", "dense"),
            "quantization_config": config.get("quantization_config"),
            "reload_check": check,
        }
        metrics = {
            "quantize_wall_seconds": round(wall, 3),
            "quantize_cpu_seconds": round(cpu, 3),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "size_bytes": size,
        }
        return StageResult(outputs=outputs, metrics=metrics)


def _oneshot(model: Any, modifiers: list[Any], ctx: StageContext) -> None:
    from llmcompressor import oneshot

    kwargs: dict[str, Any] = {}
    calibration = ctx.inputs.get("calibration")
    if calibration is not None and not calibration.skipped:
        import datasets

        c = ctx.recipe.calibration
        kwargs = {
            "dataset": datasets.load_from_disk(str(calibration.path("dataset_dir"))),
            "num_calibration_samples": c.num_samples,
            "max_seq_length": c.max_seq_length,
        }
    oneshot(model=model, recipe=modifiers, output_dir=None, **kwargs)


def reload_check(path: Path, dtype: str, trust_remote_code: bool) -> dict[str, Any]:
    """Loads the saved checkpoint with transformers and checks its logits are finite."""
    import torch

    model = load_model(path, dtype, trust_remote_code)
    tokenizer = load_tokenizer(path, trust_remote_code)
    ids = tokenizer(RELOAD_PROMPT, return_tensors="pt").input_ids
    with torch.no_grad():
        logits = model(ids).logits
    if not torch.isfinite(logits).all():
        raise StageError(f"{path}: the saved checkpoint gives non-finite logits on reload")
    return {"prompt_tokens": int(ids.shape[1]), "logits_finite": True}
