"""The quantize stage for methods that never load the model (model_free): files in, files out.

Same contract as the loading path (quench/stages/quantize.py): it reads the resolve stage's
checkpoint, writes one `model` folder into the stage's own (atomically published) directory
and reports the same outputs and metrics. It never instantiates the model class: the
checkpoint is checked offline (config files and safetensors headers against the geometry,
quench/checkpoints) and weight errors are read shard by shard, one module at a time. The
evaluate stage is the first to load it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from quench import progress
from quench.checkpoints.common import read_header
from quench.checkpoints.validate import validate as validate_checkpoint
from quench.compute import peak_memory
from quench.contract.stage import StageContext, StageResult
from quench.methods import Method
from quench.metrics.fidelity import checkpoint_weight_errors, linear_module_names
from quench.models import dir_size_bytes
from quench.recipe.schema import Recipe


def run_without_model(ctx: StageContext[Recipe], method: Method[Any], source: Path) -> StageResult:
    """Quantizes the source checkpoint's files into <out>/model and checks the result."""
    q = ctx.recipe.quantization
    out = ctx.out_dir / "model"
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    with progress.task(f"files quantized ({method.capabilities.backend})", None):
        extra = method.quantize_files(source, out, q.scheme, q.options, ctx.config["device"],
                                      calibration=_calibration_dir(ctx),
                                      metadata=artifact_metadata(ctx))
    wall, cpu = time.perf_counter() - start_wall, time.process_time() - start_cpu
    source_config = json.loads((source / "config.json").read_text())
    facts = validate_checkpoint(out, method.capabilities.checkpoint_kind, source_config)
    modules = quantized_modules(out) or linear_module_names(
        source, ctx.recipe.model.trust_remote_code)
    errors = checkpoint_weight_errors(source, out, modules)
    qc = json.loads((out / "config.json").read_text()).get("quantization_config")
    outputs = {
        "model_dir": "model",
        "format": extra.pop("format", None) or format_details(qc),
        "backend": method.capabilities.backend,
        "quantization_config": qc,
        "layer_weight_errors": errors,
        "library_warnings": extra.pop("warnings", []),
        "shards": facts["files"],
        "loaded_model": False,
        **extra,
    }
    metrics = quantize_metrics(wall, cpu, out, errors)
    if extra.get("artifact"):  # the file the engine loads (a GGUF) is the checkpoint's size
        metrics["size_bytes"] = (out / extra["artifact"]).stat().st_size
    return StageResult(outputs=outputs, metrics=metrics)


def _calibration_dir(ctx: StageContext[Recipe]) -> Path | None:
    calibration = ctx.inputs.get("calibration")
    if calibration is None or calibration.skipped:
        return None
    return calibration.path("dataset_dir")


def artifact_metadata(ctx: StageContext[Recipe]) -> dict[str, str | int]:
    """The license stage's verdict as GGUF metadata keys (general.license, general.base_model.*)
    for formats that carry them."""
    license_stage = ctx.inputs.get("license")
    if license_stage is None or license_stage.skipped:
        return {}
    verdict = license_stage.outputs.get("verdict") or {}
    keys: dict[str, str | int] = {"general.name": ctx.recipe.name, "general.quantized_by": "quench"}
    if verdict.get("licenses"):
        keys["general.license"] = ", ".join(verdict["licenses"])
    lineage = json.loads(license_stage.path("license_json").read_text()).get("lineage") or {}
    bases = [m["model"] for m in lineage.get("models", [])[:1] if m.get("model")]
    if bases:
        keys["general.base_model.count"] = len(bases)
    for i, base in enumerate(bases):
        keys[f"general.base_model.{i}.name"] = base.rsplit("/", 1)[-1]
        if base.count("/") == 1 and not Path(base).exists():  # a hub id
            keys[f"general.base_model.{i}.organization"] = base.split("/")[0]
            keys[f"general.base_model.{i}.repo_url"] = f"https://huggingface.co/{base}"
    return keys


def quantize_metrics(wall: float, cpu: float, out: Path, errors: dict[str, float]
                     ) -> dict[str, float]:
    """The quantize stage's timing, memory, size and weight-error metrics (both paths)."""
    return {
        "quantize_wall_seconds": round(wall, 3),
        "quantize_cpu_seconds": round(cpu, 3),
        "peak_rss_mb": peak_memory()["peak_rss_bytes"] / 2**20,
        "size_bytes": dir_size_bytes(out),
        "weight_error_mean": sum(errors.values()) / len(errors) if errors else 0.0,
        "weight_error_max": max(errors.values(), default=0.0),
    }


def format_details(qc: dict[str, Any] | None) -> dict[str, Any]:
    """The compressed-tensors facts a deployer asks first: format, bits, groups, what's ignored."""
    if not qc:
        return {"quant_method": "dense"}
    groups = {}
    for name, group in (qc.get("config_groups") or {}).items():
        w, a = group.get("weights") or {}, group.get("input_activations") or {}
        groups[name] = {
            "weights": f"{w.get('type')}{w.get('num_bits')} {w.get('strategy')}"
                       + (f" g{w['group_size']}" if w.get("group_size") else ""),
            "activations": (f"{a.get('type')}{a.get('num_bits')} {a.get('strategy')} "
                            f"{'dynamic' if a.get('dynamic') else 'static'}") if a else None,
        }
    return {"quant_method": qc.get("quant_method"), "format": qc.get("format"),
            "groups": groups, "ignore": qc.get("ignore"),
            "kv_cache_scheme": qc.get("kv_cache_scheme")}


def quantized_modules(folder: Path) -> list[str]:
    """Modules the checkpoint stores a weight scale for, from its safetensors headers."""
    problems: list[str] = []
    names = set()
    for shard in sorted(folder.glob("*.safetensors")):
        for tensor in read_header(shard, problems) or {}:
            if tensor.endswith(".weight_scale"):
                names.add(tensor.removesuffix(".weight_scale"))
    return sorted(names)
