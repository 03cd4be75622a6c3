"""llamacpp_kl: llama.cpp's own KL divergence of a GGUF against its source, a second and
independent measurement beside `evaluate` (quench's, on the same weights dequantized).

The source checkpoint is converted to an F32 GGUF with the same converter, llama-perplexity
saves its logits over the recipe's perplexity text, then scores the quantized GGUF against
them (mean, median, 99 % and max KLD, same top token, RMS Δp, PPL ratio). Only for method
gguf; the temporary F32 file and logits are removed when the stage ends.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from quench.contract.manifest import Manifest
from quench.contract.stage import Stage, StageContext, StageResult
from quench.llamacpp import convert, perplexity, tools
from quench.models import load_tokenizer
from quench.recipe.schema import Recipe
from quench.stages import register_stage
from quench.stages.evaluate import perplexity_source
from quench.text_sources import load_texts

PREFIX = "llamacpp_"  # its metrics in report.json and MLflow: llamacpp_kld_mean, ...
DEFAULT_CHUNKS = 64  # chunks scored when evaluation.perplexity.max_windows is not set


@register_stage
class LlamaCppKlStage(Stage[Recipe]):
    name = "llamacpp_kl"
    libraries = ("transformers", "tokenizers")

    def config(self, recipe: Recipe) -> dict[str, Any]:
        ppl = recipe.evaluation.perplexity
        return {"perplexity": ppl.model_dump() if ppl else None, "llama.cpp": tools.build_version()}

    def code_files(self) -> list[Path]:
        return [*super().code_files(), Path(perplexity.__file__), Path(convert.__file__)]

    def skip_reason(self, recipe: Recipe, inputs: dict[str, Manifest]) -> str | None:
        if recipe.evaluation.perplexity is None:
            return "evaluation.perplexity is not set"
        if inputs["model"].skipped or "gguf_file" not in inputs["model"].outputs:
            return "llama.cpp's KL cross-check is for a GGUF (method gguf)"
        return tools.unavailable_reason()

    def headline(self, manifest: Manifest) -> str:
        x = manifest.metrics
        if f"{PREFIX}kld_mean" not in x:
            return ""
        return (f"llama.cpp KLD {x[PREFIX + 'kld_mean']:.4g} (99 % {x[PREFIX + 'kld_p99']:.3g}),"
                f" PPL ratio {x[PREFIX + 'ppl_ratio']:.4f}")

    def run(self, ctx: StageContext[Recipe]) -> StageResult:
        spec = ctx.recipe.evaluation.perplexity
        assert spec is not None
        quantized = ctx.inputs["model"]
        gguf = quantized.path("model_dir") / quantized.outputs["gguf_file"]
        source = ctx.inputs["source"].path("model_dir")
        chunks = spec.max_windows or DEFAULT_CHUNKS
        log = ctx.out_dir / "llama.cpp.log"
        with tempfile.TemporaryDirectory(prefix=".work-", dir=ctx.out_dir) as work_dir:
            work = Path(work_dir)
            text = write_text(ctx.recipe, source, work / "text.txt", spec.window, chunks)
            base = convert.convert(source, work / "base-f32.gguf", "f32", work, log)
            logits = perplexity.save_base_logits(base, text, work / "base.kld", spec.window,
                                                 chunks, log)
            found = perplexity.kl_divergence(gguf, logits, log)
        outputs = {"protocol": {"tool": "llama-perplexity", "context": spec.window,
                                "chunks": chunks, "scored": "second half of each chunk",
                                "base": "source converted to F32"}, "log": log.name}
        metrics = {PREFIX + k: v for k, v in {**found, "chunks": chunks}.items()}
        return StageResult(outputs=outputs, metrics=metrics)


def write_text(recipe: Recipe, source: Path, out: Path, window: int, chunks: int) -> Path:
    """The perplexity text, cut to what `chunks` chunks read (with room to spare) and passed
    through the model's own tokenizer: characters a vocabulary without byte tokens cannot
    encode (TinyStories) are dropped, which llama.cpp's tokenizer would fail on."""
    tokenizer = load_tokenizer(source, recipe.model.trust_remote_code)
    text = "\n".join(load_texts(perplexity_source(recipe)))
    ids = tokenizer(text, add_special_tokens=False)["input_ids"][: (chunks + 2) * window * 2]
    out.write_text(tokenizer.decode(ids, skip_special_tokens=True))
    return out
