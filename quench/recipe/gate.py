"""The recipe's `gate` section: the thresholds and statistics of `quench gate`."""

from __future__ import annotations

from pydantic import Field

from quench.strict import StrictModel


class GateSpec(StrictModel):
    baseline: str | None = Field(
        None, description="Default baseline of `quench gate`: a run id, a registry alias "
        "(<model>@<alias>), a recipe file relative to the working directory or a bundled "
        "recipe's name (run, or reused from cache); the bundled recipes name their family's "
        "`none` recipe (e.g. tinystories-none.yaml)."
    )
    max_perplexity_increase_pct: float | None = Field(
        5.0, ge=0, description="Largest allowed relative perplexity increase over the baseline, "
        "in %; null: not gated."
    )
    max_kl_divergence: float | None = Field(
        0.1, ge=0, description="Largest allowed KL divergence (nats/token) from the unquantized "
        "base model; null: not gated."
    )
    max_llamacpp_kld: float | None = Field(
        None, ge=0, description="Largest allowed mean KL divergence of a GGUF as "
        "llama-perplexity measures it (stage llamacpp_kl; interval from its standard error); "
        "null: not gated."
    )
    max_accuracy_drop: float | None = Field(
        0.02, ge=0, le=1, description="Largest allowed absolute drop of each lm-eval task's "
        "accuracy (`accuracy_metric`); null: not gated."
    )
    accuracy_metric: str = Field("acc", description="lm-eval per-document metric to gate.")
    min_throughput_ratio: float | None = Field(
        None, gt=0, description="Smallest allowed candidate/baseline output tokens/s ratio at "
        "each concurrency both runs measured; null: not gated."
    )
    alpha: float = Field(0.05, gt=0, lt=0.5, description="Intervals are at level 1 - alpha.")
    resamples: int = Field(2000, ge=200, le=100_000, description="Bootstrap resamples.")
    block_windows: int | None = Field(
        None, ge=1, description="Perplexity windows per bootstrap block; default n^(1/3)."
    )
    seed: int = Field(0, ge=0, description="Seed of the bootstrap.")
    allow_cross_model: bool = Field(
        False, description="Gate runs of different base models (weights or tokenizer by content "
        "digest) against each other on purpose; by default that is an error (exit 2)."
    )
