"""The recipe's `evaluation` section: perplexity, lm-eval tasks and served throughput."""

from __future__ import annotations

from pydantic import Field, model_validator

from quench.strict import StrictModel


class PerplexitySpec(StrictModel):
    dataset: str = Field("wikitext2", description="Built-in name (wikitext2: the mirror's copy, "
                         "else the bundled excerpt), local text file or hub id (org/name).")
    config_name: str | None = Field(None, description="`datasets` config name (hub ids only).")
    split: str = Field("test", description="`datasets` split (hub ids only).")
    text_field: str = Field("text", description="Column/key holding the text (jsonl, parquet, "
                            "hub ids).")
    window: int = Field(
        256, ge=16, le=131_072, description="Text tokens per window (a BOS, if added, is extra)."
    )
    stride: int = Field(256, ge=1, description="Tokens between window starts (<= window).")
    add_bos: bool = Field(True, description="Prepend the tokenizer's BOS token to every window.")
    max_windows: int | None = Field(None, ge=1, description="Evaluate only the first N windows.")
    batch_size: int = Field(8, ge=1, le=1024, description="Windows per forward pass.")
    top_k: int = Field(
        1024, ge=1, le=4096, description="Baseline log-probs kept per token for the KL "
        "divergence bound (float16 values with int32 ids: 6 bytes per k and token on disk, 6 KB "
        "per scored token at 1024); lower it for long evaluations and read `kl_bound_ratio`.",
    )
    exact_kl_tokens: int = Field(
        256, ge=0, le=65_536, description="The baseline also keeps its full-vocabulary "
        "distribution (float16 log-probs, 2 bytes x vocabulary per token) for the first N scored "
        "tokens, where the candidate gets the exact KL and the bound's ratio to it; 0: none.",
    )

    @model_validator(mode="after")
    def _check_stride(self) -> PerplexitySpec:
        if self.stride > self.window:
            raise ValueError(f"stride: {self.stride} must be <= window ({self.window})")
        return self


class LmEvalSpec(StrictModel):
    tasks: list[str] = Field(
        min_length=1,
        description="Distinct lm-eval task names: built-in ones (`lm-eval ls tasks`, e.g. piqa, "
        "arc_easy, lambada_openai, wikitext) or tasks defined by a YAML under evals/. An unknown "
        "name is an error that suggests close matches.",
    )
    num_fewshot: int | None = Field(
        None, ge=0, le=100, description="Few-shot examples per prompt; null: each task's default."
    )
    limit: int | None = Field(
        None, ge=1, description="Evaluate only the first N documents of each task; null: all."
    )
    batch_size: int = Field(
        16, ge=1, le=1024,
        description="Requests per forward pass (hf) or per call (served engines).",
    )
    engines: list[str] = Field(
        default_factory=lambda: ["hf"], min_length=1,
        description="Engines evaluated: hf (transformers, the reference) and served ones such "
        "as vllm; target.engine is added. An engine unavailable on the host is recorded as "
        "skipped.",
    )

    @model_validator(mode="after")
    def _check_names(self) -> LmEvalSpec:
        from quench.engines import ENGINES

        for field, names in (("tasks", self.tasks), ("engines", self.engines)):
            repeated = sorted({n for n in names if names.count(n) > 1})
            if repeated:
                raise ValueError(f"{field}: listed more than once: {', '.join(repeated)}")
        unknown = [e for e in self.engines if e not in ENGINES]
        if unknown:
            raise ValueError(f"engines: {ENGINES.unknown(unknown[0])}")
        return self


class ThroughputSpec(StrictModel):
    concurrency: list[int] = Field(
        default_factory=lambda: [1, 8, 32], min_length=1,
        description="Concurrent requests of each sweep level, distinct (one report row per "
        "level).",
    )
    input_len: int = Field(128, ge=1, le=131_072, description="Prompt tokens per request.")
    output_len: int = Field(
        128, ge=1, le=131_072, description="Generated tokens per request (end of text ignored)."
    )
    num_prompts: int = Field(
        64, ge=1, le=100_000, description="Requests per level; at least the largest concurrency."
    )
    seed: int = Field(0, ge=0, description="Seed of the random prompt set (same at every level).")
    warmups: int = Field(1, ge=0, le=100, description="Unmeasured requests before each level.")
    timeout_s: float = Field(
        1800, gt=0, description="Longest a level may take before the stage fails."
    )

    @model_validator(mode="after")
    def _check_levels(self) -> ThroughputSpec:
        if any(c < 1 for c in self.concurrency) or len(set(self.concurrency)) != len(
            self.concurrency
        ):
            raise ValueError(f"concurrency: {self.concurrency} must be distinct integers >= 1")
        if self.num_prompts < max(self.concurrency):
            raise ValueError(f"num_prompts: {self.num_prompts} is less than the largest "
                             f"concurrency ({max(self.concurrency)})")
        return self


class EvaluationSpec(StrictModel):
    perplexity: PerplexitySpec | None = Field(
        default_factory=PerplexitySpec, description="Perplexity protocol; null disables it."
    )
    lm_eval: LmEvalSpec | None = Field(
        None, description="lm-eval tasks on the baseline and the quantized model; null: none."
    )
    throughput: ThroughputSpec | None = Field(
        None, description="Concurrency sweep on the target engine's server (needs `target`); "
        "null: none.",
    )
