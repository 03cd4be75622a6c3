"""calibrate: draws a seeded, truncated, tokenized calibration set and records its lineage."""

from __future__ import annotations

import random
from typing import Any

from quench.contract.manifest import Manifest
from quench.contract.stage import Stage, StageContext, StageResult
from quench.errors import StageError
from quench.methods import get_method
from quench.models import load_tokenizer
from quench.recipe.schema import Recipe
from quench.sources import fingerprint_path
from quench.stages import register_stage
from quench.text_sources import TextSource, load_texts, resolve_text_source

HELDOUT_SAMPLES = 4  # records not drawn for calibration, for the output-cosine check


def calibration_source(recipe: Recipe) -> TextSource:
    c = recipe.calibration
    return resolve_text_source(c.source, c.config_name, c.split, c.text_field, "calibration.source")


@register_stage
class CalibrateStage(Stage[Recipe]):
    name = "calibrate"
    libraries = ("transformers", "tokenizers", "datasets")

    def config(self, recipe: Recipe) -> dict[str, Any]:
        return recipe.calibration.model_dump()

    def fingerprint(self, recipe: Recipe) -> dict[str, Any]:
        if self.skip_reason(recipe, {}):
            return {}
        source = calibration_source(recipe)
        files = fingerprint_path(source.path) if source.kind == "file" else {}
        return {"source": source.describe(), "files": files}

    def skip_reason(self, recipe: Recipe, inputs: dict[str, Manifest]) -> str | None:
        q = recipe.quantization
        method = get_method(q.method)
        if method is not None and not method.needs_calibration(q.scheme, q.options):
            # no method name: this skipped entry is shared by every data-free recipe
            return "the quantization method and scheme need no calibration data"
        return None

    def headline(self, manifest: Manifest) -> str:
        x = manifest.metrics
        if "calibration_samples" not in x:
            return ""
        return (f"{x['calibration_samples']:.0f} samples, "
                f"{x.get('calibration_tokens', 0):,.0f} tokens")

    def run(self, ctx: StageContext[Recipe]) -> StageResult:
        import datasets

        c = ctx.recipe.calibration
        source = calibration_source(ctx.recipe)
        texts = load_texts(source, "calibration.source")
        where = source.path or source.hub_path
        if not texts:
            raise StageError(f"calibration.source: {where} holds no non-empty text")
        if len(texts) < c.num_samples:
            raise StageError(
                f"calibration.num_samples: asked for {c.num_samples}, but {where} holds only "
                f"{len(texts)} non-empty records"
            )
        rng = random.Random(c.seed)
        chosen = rng.sample(range(len(texts)), c.num_samples)
        rest = sorted(set(range(len(texts))) - set(chosen))
        heldout = rng.sample(rest, min(HELDOUT_SAMPLES, len(rest)))
        tokenizer = load_tokenizer(ctx.inputs["model"].path("model_dir"),
                                   ctx.recipe.model.trust_remote_code)
        encoded = tokenizer(
            [texts[i] for i in chosen], truncation=True, max_length=c.max_seq_length
        )
        lengths = [len(ids) for ids in encoded["input_ids"]]
        dataset = datasets.Dataset.from_dict(
            {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}
        )
        dataset.save_to_disk(str(ctx.out_dir / "tokenized"))
        # exactly num_samples records leave none held out (the reload check then skips)
        heldout_ids = tokenizer([texts[i] for i in heldout], truncation=True,
                                max_length=c.max_seq_length)["input_ids"] if heldout else []
        lineage = {
            "source": source.describe(),
            "digest": fingerprint_path(source.path) if source.kind == "file" else None,
            "records_available": len(texts),
            "num_samples": c.num_samples,
            "seed": c.seed,
            "max_seq_length": c.max_seq_length,
            "tokens": sum(lengths),
            "truncated_samples": sum(n >= c.max_seq_length for n in lengths),
        }
        outputs = {"dataset_dir": "tokenized", "lineage": lineage, "record_indices": chosen,
                   "heldout_input_ids": [ids for ids in heldout_ids if len(ids) > 1]}
        metrics = {"calibration_tokens": sum(lengths), "calibration_samples": len(lengths)}
        return StageResult(outputs=outputs, metrics=metrics)
