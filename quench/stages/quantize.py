"""quantize: the recipe's method quantizes the loaded model; the stage saves and reloads it."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from quench import llamacpp, methods
from quench.compute import PhasePeaks, release_memory, resolve_device
from quench.contract.manifest import Manifest
from quench.contract.stage import Publishes, Stage, StageContext, StageResult
from quench.errors import StageError
from quench.mapped_weights import own_mapped_weights
from quench.methods import Method, get_method
from quench.methods.quantizing import Calibration
from quench.metrics.fidelity import (
    checkpoint_weight_errors,
    layer_weight_errors,
    linear_module_names,
    output_cosine,
    save_logits,
)
from quench.models import check_safetensors, load_model, load_tokenizer
from quench.offload import OFFLOAD_SHARD_SIZE, Offload, offloaded_bytes, stage_offload
from quench.progress import human_bytes
from quench.recipe.schema import Recipe
from quench.sources import file_sha256
from quench.stages import quantize_files, register_stage
from quench.stages.quantize_files import format_details, quantize_metrics, run_without_model
from quench.units import parse_size

RELOAD_PROMPT = "Once upon a time, there was a little girl"


@register_stage
class QuantizeStage(Stage[Recipe]):
    name = "quantize"
    publishes = Publishes(model_dir="model_dir")  # <output>/<run>/model
    libraries = ("torch", "transformers", "llmcompressor", "compressed-tensors", "nvidia-modelopt")

    def config(self, recipe: Recipe) -> dict[str, Any]:
        return {
            "quantization": recipe.quantization.model_dump(),
            "dtype": recipe.model.dtype,
            "trust_remote_code": recipe.model.trust_remote_code,
            "device": resolve_device(recipe.compute.device),
            "pipeline": recipe.compute.pipeline,
            "max_shard_size": recipe.output.max_shard_size,
        }

    def fingerprint(self, recipe: Recipe) -> dict[str, Any]:
        """A raw llmcompressor recipe file is an input: its content enters the key."""
        q = recipe.quantization
        method = get_method(q.method)
        recipe_file = method.input_file(q.options)
        found = {"recipe_file": file_sha256(recipe_file)} if recipe_file else {}
        return {**found, **method.tool_versions()}  # llama.cpp's build, for method gguf

    def code_files(self) -> list[Path]:
        """The stage modules (this one and the files-only path whose helpers it shares) and every
        method module, the llm-compressor backend's too: a method's code shapes the checkpoint."""
        tools = Path(llamacpp.__file__).parent  # the GGUF method's converter and quantizer
        return (super().code_files() + [Path(quantize_files.__file__)]
                + sorted(Path(methods.__file__).parent.glob("*.py")) + sorted(tools.glob("*.py")))

    def headline(self, manifest: Manifest) -> str:
        x, parts = manifest.metrics, []
        if "size_bytes" in x:
            parts.append(f"size {human_bytes(x['size_bytes'])}")
        if "quantize_wall_seconds" in x:
            parts.append(f"quantized in {x['quantize_wall_seconds']:.1f}s")
        return ", ".join(parts)

    def run(self, ctx: StageContext[Recipe]) -> StageResult:
        """Load once, quantize in place, save, drop the model, then check the saved checkpoint
        alone: the stage never holds two dense copies."""
        method = get_method(ctx.recipe.quantization.method)
        source = ctx.inputs["model"].path("model_dir")
        if not method.capabilities.loads_model:
            return run_without_model(ctx, method, source)
        with stage_offload(ctx.recipe.compute, "quantize") as offload:
            done = self._quantize_and_check(ctx, method, source, offload)
        recipe, out, errors, check = ctx.recipe, done["out"], done["errors"], done["check"]
        if errors is None:
            modules = linear_module_names(source, recipe.model.trust_remote_code)
            errors = checkpoint_weight_errors(source, out, modules)
        config = json.loads((out / "config.json").read_text())
        outputs = {
            "model_dir": "model",
            "format": check["format"] or format_details(config.get("quantization_config")),
            "backend": method.capabilities.backend,
            "quantization_config": config.get("quantization_config"),
            "layer_weight_errors": errors,
            "library_warnings": done["warnings"],
            "shards": sorted(p.name for p in out.glob("*.safetensors")),
        }
        metrics = {**quantize_metrics(done["wall"], done["cpu"], out, errors), **done["phases"]}
        if done["owned_bytes"]:  # moved out of the mapped checkpoint before quantizing
            metrics["owned_weight_bytes"] = done["owned_bytes"]
        if offload_folder := recipe.compute.offload_folder:
            metrics["offloaded_bytes"] = done["offloaded_bytes"]  # read from disk per layer
            outputs["offload_folder"] = offload_folder
        if check["output_cosine"] is not None:
            metrics["output_cosine"] = check["output_cosine"]
        return StageResult(outputs=outputs, metrics=metrics)

    def _quantize_and_check(self, ctx: StageContext[Recipe], method: Method[Any], source: Path,
                            offload: Offload | None) -> dict[str, Any]:
        """The model's one life in this stage: load, quantize, save, drop; then the reload."""
        recipe = ctx.recipe
        device = ctx.config["device"]
        phases = PhasePeaks()
        on_device = method.capabilities.loads_on_device
        model = load_model(source, recipe.model.dtype, recipe.model.trust_remote_code,
                           device=device if on_device else "cpu", offload=offload)
        disk = offloaded_bytes(model) if offload else 0
        # offloaded weights are not mapped
        replaces = method.capabilities.replaces_weights
        owned = own_mapped_weights(model) if replaces and not offload else 0
        tokenizer = load_tokenizer(source, recipe.model.trust_remote_code)
        heldout = _heldout(ctx)
        scratch = ctx.out_dir / ".scratch"
        reference = save_logits(model, heldout, scratch) if heldout else []
        phases.end("load")
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        q = recipe.quantization
        done = method.quantize(model, q.scheme, q.options, _calibration(ctx))
        wall, cpu = time.perf_counter() - start_wall, time.process_time() - start_cpu
        phases.end("quantize")
        out = ctx.out_dir / "model"
        method.save(model, out, done.quantized, save_shard_size(recipe, offload))
        tokenizer.save_pretrained(out)
        fake = method.capabilities.fake_quantized
        errors = layer_weight_errors(source, model) if fake else None
        del model
        method.release()  # the library's references to the model, before the reload
        release_memory()
        phases.end("save")
        with stage_offload(recipe.compute, "quantize-reload") as reload_offload:
            check = reload_check(out, recipe, device, heldout, reference, method, reload_offload)
        shutil.rmtree(scratch, ignore_errors=True)
        phases.end("reload")
        return {"out": out, "warnings": list(done.warnings), "errors": errors, "wall": wall,
                "cpu": cpu, "check": check, "offloaded_bytes": disk, "owned_bytes": owned,
                "phases": phases.metrics()}


def save_shard_size(recipe: Recipe, offload: Offload | None) -> str:
    """output.max_shard_size; while offloading, at most OFFLOAD_SHARD_SIZE: transformers
    gathers a whole shard of an offloaded model in RAM before writing it."""
    wanted = recipe.output.max_shard_size
    if offload is None or parse_size(wanted) <= parse_size(OFFLOAD_SHARD_SIZE):
        return wanted
    return OFFLOAD_SHARD_SIZE


def _heldout(ctx: StageContext[Recipe]) -> list[list[int]]:
    calibration = ctx.inputs.get("calibration")
    if calibration is None or calibration.skipped:
        return []
    return calibration.outputs.get("heldout_input_ids", [])


def _calibration(ctx: StageContext[Recipe]) -> Calibration:
    """The calibration settings the method's backend needs; no dataset when calibrate skipped."""
    calibration, c = ctx.inputs.get("calibration"), ctx.recipe.calibration
    dataset = None
    if calibration is not None and not calibration.skipped:
        import datasets

        dataset = datasets.load_from_disk(str(calibration.path("dataset_dir")))
    return Calibration(dataset=dataset, num_samples=c.num_samples,
                       max_seq_length=c.max_seq_length, seed=c.seed,
                       pipeline=ctx.recipe.compute.pipeline,
                       trust_remote_code=ctx.recipe.model.trust_remote_code)


def reload_check(path: Path, recipe: Recipe, device: str, heldout: list[list[int]],
                 reference: list[Path], method: Any, offload: Offload | None = None
                 ) -> dict[str, Any]:
    """Loads the saved checkpoint with transformers: its logits must be finite; measures the
    output cosine against the original's saved logits, and reads the method's format facts.
    The reloaded model is freed before returning: a transformers model is a reference cycle,
    which without a collection outlived this function into the weight-error pass (measured:
    a second dense copy at the stage's peak, 4.4 instead of 3.2 GiB on a 2.2 GB model)."""
    import torch

    for shard in path.glob("*.safetensors"):
        check_safetensors(shard)
    trust = recipe.model.trust_remote_code
    model = load_model(path, recipe.model.dtype, trust, device=device, offload=offload)
    try:
        tokenizer = load_tokenizer(path, trust)
        ids = tokenizer(RELOAD_PROMPT, return_tensors="pt").input_ids.to(device)
        with torch.no_grad():
            logits = model(ids).logits
        if not torch.isfinite(logits).all():
            raise StageError(f"{path}: the saved checkpoint gives non-finite logits on reload")
        cosine = output_cosine(model, heldout, reference) if reference else None
        return {"format": method.format_details(model), "output_cosine": cosine}
    finally:
        del model
        release_memory()
