"""evaluate: perplexity of a saved checkpoint, per window, and KL vs the baseline's stored
distribution (a top-k bound everywhere, exact on a subset)."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

import numpy as np

from quench import progress
from quench.compute import PhasePeaks, resolve_device
from quench.contract.manifest import Manifest
from quench.contract.stage import Stage, StageContext, StageResult
from quench.errors import StageError
from quench.metrics.kl import EXACT_KL_FLOOR
from quench.metrics.perplexity import (
    Scores,
    Windows,
    make_windows,
    score_windows,
    scored_positions,
)
from quench.metrics.reference import Reference, ReferenceWriter, open_reference
from quench.models import load_model, load_tokenizer
from quench.offload import offloaded_bytes, stage_offload
from quench.recipe.schema import Recipe
from quench.sources import fingerprint_path
from quench.stages import register_stage
from quench.text_sources import TextSource, load_texts, resolve_text_source


def perplexity_source(recipe: Recipe) -> TextSource:
    p = recipe.evaluation.perplexity
    return resolve_text_source(
        p.dataset, p.config_name, p.split, p.text_field, "evaluation.perplexity.dataset"
    )


@register_stage
class EvaluateStage(Stage[Recipe]):
    name = "evaluate"
    libraries = ("torch", "transformers", "tokenizers", "compressed-tensors")

    def config(self, recipe: Recipe) -> dict[str, Any]:
        ppl = recipe.evaluation.perplexity
        return {
            "perplexity": ppl.model_dump() if ppl else None,
            "dtype": recipe.model.dtype,
            "device": resolve_device(recipe.compute.device),
            "trust_remote_code": recipe.model.trust_remote_code,
        }

    def fingerprint(self, recipe: Recipe) -> dict[str, Any]:
        if recipe.evaluation.perplexity is None:
            return {}
        source = perplexity_source(recipe)
        files = fingerprint_path(source.path) if source.kind == "file" else {}
        return {"source": source.describe(), "files": files}

    def skip_reason(self, recipe: Recipe, inputs: dict[str, Manifest]) -> str | None:
        if recipe.evaluation.perplexity is None:
            return "evaluation.perplexity is not set"
        return None

    def code_files(self) -> list[Path]:
        """This module and the scoring code it runs (windows, top-k, KL, the stored reference)."""
        import quench.metrics.kl as kl
        import quench.metrics.perplexity as perplexity
        import quench.metrics.reference as reference

        return [*super().code_files(), *(Path(m.__file__) for m in (perplexity, kl, reference))]

    def headline(self, manifest: Manifest) -> str:
        x = manifest.metrics
        if "perplexity" not in x:
            return ""
        text = f"perplexity {x['perplexity']:.4g}"
        if "kl_divergence" in x:
            text += f", KL {x['kl_divergence']:.3g}"
        if "top1_agreement" in x:
            text += f", top-1 {x['top1_agreement']:.1%}"
        return text

    def run(self, ctx: StageContext[Recipe]) -> StageResult:
        spec, recipe = ctx.recipe.evaluation.perplexity, ctx.recipe
        model_dir = ctx.inputs["model"].path("model_dir")
        windows, protocol = prepare_windows(recipe, model_dir)
        reference, note = _reference(ctx.inputs.get("reference"), protocol)
        writer = None
        if "reference" not in ctx.inputs:  # a baseline: keep what candidates compare against
            writer = ReferenceWriter(ctx.out_dir / "topk", scored_positions(windows), spec.top_k,
                                     spec.exact_kl_tokens)
        phases = PhasePeaks()
        with stage_offload(recipe.compute, self.name) as offload:
            model = load_model(model_dir, recipe.model.dtype, recipe.model.trust_remote_code,
                               device=ctx.config["device"], offload=offload)
            disk = offloaded_bytes(model) if offload else None
            phases.end("load")
            with progress.task("perplexity windows", len(windows.inputs)):
                scores = score_windows(model, windows, spec.batch_size, writer, reference)
            del model
            phases.end("score")
        result = _result(ctx.out_dir, scores, protocol, note)
        result.metrics.update(phases.metrics())
        if disk is not None:
            result.metrics["offloaded_bytes"] = disk  # read back from disk per layer
        if writer is not None:
            result.outputs.update(topk="topk", exact_kl_tokens=writer.close())
        return result


def prepare_windows(recipe: Recipe, model_dir: Path) -> tuple[Windows, dict[str, Any]]:
    """The recipe's evaluation windows for this model's tokenizer, and the protocol they record."""
    spec = recipe.evaluation.perplexity
    assert spec is not None
    tokenizer = load_tokenizer(model_dir, recipe.model.trust_remote_code)
    source = perplexity_source(recipe)
    texts = load_texts(source)
    text = "\n".join(texts)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    bos = tokenizer.bos_token_id if spec.add_bos else None
    if spec.add_bos and bos is None:
        raise StageError(f"evaluation.perplexity.add_bos: {model_dir} has no BOS token")
    try:
        windows = make_windows(ids, spec.window, spec.stride, bos, spec.max_windows)
    except ValueError as exc:
        raise StageError(f"evaluation.perplexity: {exc}") from None
    protocol = {
        "source": source.describe(),
        "records": len(texts),
        "text_sha256": hashlib.sha256(text.encode()).hexdigest(),
        "joiner": "\\n",
        # Equal token ids mean equal windows, whatever files the tokenizer was saved as.
        "windows_sha256": hashlib.sha256(windows.inputs.tobytes()).hexdigest(),
        "window": spec.window, "stride": spec.stride, "bos_id": bos,
        "windows": len(windows.inputs), "dropped_tail_tokens": windows.dropped_tail_tokens,
    }
    return windows, protocol


def _reference(
    manifest: Manifest | None, protocol: dict[str, Any]
) -> tuple[Reference | None, str | None]:
    """The baseline's stored arrays when its protocol matches ours, else a note saying why not."""
    if manifest is None:
        return None, None
    if manifest.skipped or "topk" not in manifest.outputs:
        return None, "the baseline evaluation kept no top-k log-probabilities"
    theirs = manifest.outputs["protocol"]
    differ = sorted(k for k in protocol if protocol[k] != theirs.get(k))
    if differ:
        return None, f"the baseline's protocol differs in {differ}"
    reference = open_reference(manifest.path("topk"))
    if not len(reference.exact):
        return reference, ("the baseline kept no full-vocabulary subset "
                           "(evaluation.perplexity.exact_kl_tokens: 0): the KL divergence is a "
                           "lower bound of unknown tightness")
    return reference, None


def _result(out: Path, s: Scores, protocol: dict[str, Any], note: str | None) -> StageResult:
    per_window = {"nll_sum": np.asarray(s.nll_sum), "tokens": np.asarray(s.tokens)}
    outputs: dict[str, Any] = {"protocol": protocol, "per_window": "per_window.npz",
                               "mlflow_artifacts": ["per_window.npz"]}
    tokens = int(sum(s.tokens))
    nll = float(sum(s.nll_sum)) / tokens
    metrics = {"perplexity": math.exp(nll), "nll_per_token": nll, "tokens": tokens,
               "windows": len(s.tokens)}
    if s.kl_sum:
        per_window["kl_sum"] = np.asarray(s.kl_sum)
        per_window["top1_agree"] = np.asarray(s.top1_agree)
        metrics.update(_kl_metrics(s, tokens))
    if note:
        outputs["kl_note"] = note
    np.savez(out / "per_window.npz", **per_window)
    return StageResult(outputs=outputs, metrics=metrics)


def _kl_metrics(s: Scores, tokens: int) -> dict[str, float]:
    """The bound on every position, and on the exact subset the exact KL and the bound's share."""
    metrics = {"kl_divergence": float(sum(s.kl_sum)) / tokens,
               "top1_agreement": float(sum(s.top1_agree)) / tokens,
               "topk_mass": s.topk_mass_sum / tokens}
    if s.exact_tokens:
        exact = s.kl_exact_sum / s.exact_tokens
        bound = s.kl_bound_subset_sum / s.exact_tokens
        metrics.update(kl_exact_subset=exact, kl_bound_subset=bound, kl_exact_tokens=s.exact_tokens)
        if exact > EXACT_KL_FLOOR:
            metrics["kl_bound_ratio"] = bound / exact
    return metrics
