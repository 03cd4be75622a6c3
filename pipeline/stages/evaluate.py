"""evaluate: perplexity of a saved checkpoint, per window, and KL vs the baseline's top-k."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import progress
from pipeline.errors import StageError
from pipeline.metrics.perplexity import Scores, make_windows, score_windows
from pipeline.models import load_model, load_tokenizer
from pipeline.recipe.schema import Recipe
from pipeline.runner.manifest import Manifest
from pipeline.sources import TextSource, fingerprint_path, load_texts, resolve_text_source
from pipeline.stages import Stage, StageContext, StageResult, register_stage


def perplexity_source(recipe: Recipe) -> TextSource:
    p = recipe.evaluation.perplexity
    return resolve_text_source(
        p.dataset, p.config_name, p.split, p.text_field, "evaluation.perplexity.dataset"
    )


@register_stage
class EvaluateStage(Stage):
    name = "evaluate"
    libraries = ("torch", "transformers", "tokenizers", "compressed-tensors")

    def config(self, recipe: Recipe) -> dict[str, Any]:
        ppl = recipe.evaluation.perplexity
        return {
            "perplexity": ppl.model_dump() if ppl else None,
            "dtype": recipe.model.dtype,
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

    def run(self, ctx: StageContext) -> StageResult:
        spec, recipe = ctx.recipe.evaluation.perplexity, ctx.recipe
        model_dir = ctx.inputs["model"].path("model_dir")
        tokenizer = load_tokenizer(model_dir, recipe.model.trust_remote_code)
        source = perplexity_source(recipe)
        text = "\n".join(load_texts(source))
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
            "text_sha256": hashlib.sha256(text.encode()).hexdigest(),
            "joiner": "\\n",
            # Equal token ids mean equal windows, whatever files the tokenizer was saved as.
            "windows_sha256": hashlib.sha256(windows.inputs.tobytes()).hexdigest(),
            "window": spec.window, "stride": spec.stride, "bos_id": bos,
            "windows": len(windows.inputs), "dropped_tail_tokens": windows.dropped_tail_tokens,
        }
        reference, note = _reference(ctx.inputs.get("reference"), protocol)
        model = load_model(model_dir, recipe.model.dtype, recipe.model.trust_remote_code)
        top_k = None if "reference" in ctx.inputs else spec.top_k
        with progress.task("perplexity windows", len(windows.inputs)):
            scores = score_windows(model, windows, spec.batch_size, top_k, reference)
        return _result(ctx.out_dir, scores, protocol, note)


def _reference(
    manifest: Manifest | None, protocol: dict[str, Any]
) -> tuple[tuple[np.ndarray, np.ndarray] | None, str | None]:
    """The baseline's top-k arrays when its protocol matches ours, else a note saying why not."""
    if manifest is None:
        return None, None
    if manifest.skipped or "topk" not in manifest.outputs:
        return None, "the baseline evaluation kept no top-k log-probabilities"
    theirs = manifest.outputs["protocol"]
    differ = sorted(k for k in protocol if protocol[k] != theirs.get(k))
    if differ:
        return None, f"the baseline's protocol differs in {differ}"
    with np.load(manifest.path("topk")) as arrays:
        return (arrays["logprobs"], arrays["ids"]), None


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
        metrics["kl_divergence"] = float(sum(s.kl_sum)) / tokens
        metrics["top1_agreement"] = float(sum(s.top1_agree)) / tokens
    if note:
        outputs["kl_note"] = note
    if s.topk_logprobs:
        np.savez_compressed(
            out / "topk.npz",
            logprobs=np.concatenate(s.topk_logprobs),
            ids=np.concatenate(s.topk_ids),
        )
        outputs["topk"] = "topk.npz"
    np.savez(out / "per_window.npz", **per_window)
    return StageResult(outputs=outputs, metrics=metrics)
