"""quantize: applies the recipe's method with llmcompressor and saves a reloadable checkpoint."""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from quench import llamacpp, methods, progress
from quench.compute import PhasePeaks, release_memory, resolve_device
from quench.contract.manifest import Manifest
from quench.contract.stage import Publishes, Stage, StageContext, StageResult
from quench.errors import StageError
from quench.mapped_weights import own_mapped_weights
from quench.methods import Method, get_method
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
from quench.stages.traced_globals import traced_globals_released
from quench.units import parse_size

RELOAD_PROMPT = "Once upon a time, there was a little girl"
WARNING = 30  # loguru's WARNING level number


@register_stage
class QuantizeStage(Stage):
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
        method module: a method's code shapes the checkpoint."""
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

    def run(self, ctx: StageContext) -> StageResult:
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

    def _quantize_and_check(self, ctx: StageContext, method: Method[Any], source: Path,
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
        warnings, quantized = _quantize(model, method, ctx)
        wall, cpu = time.perf_counter() - start_wall, time.process_time() - start_cpu
        phases.end("quantize")
        out = ctx.out_dir / "model"
        method.save(model, out, quantized, save_shard_size(recipe, offload))
        tokenizer.save_pretrained(out)
        fake = method.capabilities.fake_quantized
        errors = layer_weight_errors(source, model) if fake else None
        del model
        _release_session()
        phases.end("save")
        with stage_offload(recipe.compute, "quantize-reload") as reload_offload:
            check = reload_check(out, recipe, device, heldout, reference, method, reload_offload)
        shutil.rmtree(scratch, ignore_errors=True)
        phases.end("reload")
        return {"out": out, "warnings": warnings, "errors": errors, "wall": wall, "cpu": cpu,
                "check": check, "offloaded_bytes": disk, "owned_bytes": owned,
                "phases": phases.metrics()}


def save_shard_size(recipe: Recipe, offload: Offload | None) -> str:
    """output.max_shard_size; while offloading, at most OFFLOAD_SHARD_SIZE: transformers
    gathers a whole shard of an offloaded model in RAM before writing it."""
    wanted = recipe.output.max_shard_size
    if offload is None or parse_size(wanted) <= parse_size(OFFLOAD_SHARD_SIZE):
        return wanted
    return OFFLOAD_SHARD_SIZE


def _quantize(model: Any, method: Method[Any], ctx: StageContext) -> tuple[list[str], bool]:
    """The method's own library (ModelOpt), or llmcompressor's oneshot with its modifiers."""
    q = ctx.recipe.quantization
    warnings = method.quantize(model, q.scheme, q.options, _calibration_dataset(ctx))
    if warnings is not None:
        return warnings, True
    recipe_in = method.modifiers(q.scheme, q.options)
    return (_oneshot(model, method, recipe_in, ctx) if recipe_in else []), bool(recipe_in)


def _release_session() -> None:
    """llmcompressor's session keeps a reference to the model; drop it, and hand the freed
    memory back to the OS, before the checkpoint is reloaded."""
    from llmcompressor.core import reset_session

    reset_session()
    release_memory()


def _heldout(ctx: StageContext) -> list[list[int]]:
    calibration = ctx.inputs.get("calibration")
    if calibration is None or calibration.skipped:
        return []
    return calibration.outputs.get("heldout_input_ids", [])


def _calibration_dataset(ctx: StageContext) -> Any | None:
    """The tokenized calibration set, or None when the calibrate stage was skipped."""
    calibration = ctx.inputs.get("calibration")
    if calibration is None or calibration.skipped:
        return None
    import datasets

    return datasets.load_from_disk(str(calibration.path("dataset_dir")))


def _oneshot(model: Any, method: Method[Any], recipe_in: list[Any] | str, ctx: StageContext
             ) -> list[str]:
    """Runs llmcompressor's oneshot; returns the warnings it logged (they explain skips)."""
    from llmcompressor import oneshot
    from loguru import logger

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
        # oneshot shuffles the samples with an unseeded RandomSampler (torch's global RNG):
        # without a seed GPTQ's result changed from run to run (SmolLM2 perplexity 51.9-53.5)
        import torch

        torch.manual_seed(c.seed)
    if ctx.recipe.compute.pipeline != "auto":
        kwargs["pipeline"] = ctx.recipe.compute.pipeline
    # oneshot loads the config and processor itself: without this it refuses custom code
    kwargs["trust_remote_code_model"] = ctx.recipe.model.trust_remote_code
    warnings: list[str] = []
    sink = logger.add(
        lambda m: warnings.append(m.record["message"]),
        level="DEBUG",  # AWQ names each mapping it skips only at DEBUG level
        # METRIC (llmcompressor's per-module error/time lines) ranks above WARNING: not a warning.
        filter=lambda r: (r["level"].no >= WARNING and r["level"].name != "METRIC")
        or r["message"].startswith("Skipping "),
    )
    try:
        options = ctx.recipe.quantization.options
        with method.context(options), traced_globals_released(), \
                _layer_progress(model, recipe_in, method.targets(options)):
            oneshot(model=model, recipe=recipe_in, output_dir=None, **kwargs)
    finally:
        logger.remove(sink)
    return [w for w in warnings if "No accelerator available" not in w]


@contextlib.contextmanager
def _layer_progress(model: Any, recipe_in: list[Any] | str,
                    targets: tuple[list[str], list[str]] | None) -> Iterator[None]:
    """A bar over the modules GPTQ compresses, counted from its per-module `error` METRIC log
    line; a spinner for the other modifiers, which log nothing per module."""
    from loguru import logger

    gptq = isinstance(recipe_in, list) and any(
        type(m).__name__ == "GPTQModifier" for m in recipe_in)
    total = None
    if gptq and targets is not None:
        from compressed_tensors.utils import match_named_modules

        total = sum(1 for _ in match_named_modules(model, *targets))
    sink = logger.add(
        lambda _: progress.advance(),
        filter=lambda r: r["level"].name == "METRIC" and r["message"].startswith("error "))
    try:
        with progress.task("modules quantized (GPTQ)" if total else "llmcompressor oneshot",
                           total):
            yield
    finally:
        logger.remove(sink)


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
