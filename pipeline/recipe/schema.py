"""The recipe schema (pydantic v2): every field a user may write, with its default and range."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from pipeline.methods import get_method, method_names
from pipeline.strict import StrictModel


class ModelSpec(StrictModel):
    id: str = Field(description="Hugging Face hub id (e.g. org/name) or a local checkpoint folder.")
    revision: str | None = Field(None, description="Hub revision (branch, tag or commit).")
    dtype: Literal["float32", "bfloat16", "float16"] = Field(
        "float32", description="dtype the model is loaded in for quantization and evaluation."
    )
    trust_remote_code: bool = Field(False, description="Allow the checkpoint's own Python code.")


class CalibrationSpec(StrictModel):
    source: str = Field(
        "wikitext2-valid",
        description="Built-in name (see README), a local .txt/.jsonl/.parquet file, "
        "or a `datasets` hub id.",
    )
    config_name: str | None = Field(None, description="`datasets` config name (hub ids only).")
    split: str = Field("train", description="`datasets` split (hub ids only).")
    text_field: str = Field("text", description="Column/key holding the text (jsonl, parquet).")
    num_samples: int = Field(64, ge=1, le=100_000, description="Samples drawn for calibration.")
    max_seq_length: int = Field(256, ge=8, le=131_072, description="Samples are truncated to this.")
    seed: int = Field(0, ge=0, description="Seed of the sample draw.")


class QuantizationSpec(StrictModel):
    method: str = Field("none", description="Quantization method; `none` is the baseline.")
    scheme: str | None = Field(None, description="Scheme of the method (e.g. W4A16).")
    options: dict[str, Any] = Field(default_factory=dict, description="Method-specific options.")

    @model_validator(mode="after")
    def _check_method(self) -> QuantizationSpec:
        method = get_method(self.method)
        if method is None:
            raise ValueError(
                f"method: unknown method {self.method!r}; allowed: {', '.join(method_names())}"
            )
        if self.scheme is None:
            self.scheme = method.default_scheme
        if self.scheme not in method.schemes:
            allowed = ", ".join(str(s) for s in method.schemes)
            raise ValueError(
                f"scheme: {self.scheme!r} is not allowed for method {self.method!r}; "
                f"allowed: {allowed}"
            )
        try:
            self.options = method.options_model.model_validate(self.options).model_dump()
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            message = first["msg"].removeprefix("Value error, ")
            if first["type"] == "extra_forbidden":
                allowed = ", ".join(method.options_model.model_fields) or "none"
                message = f"unknown option for method {self.method!r}; allowed: {allowed}"
            raise ValueError(f"options.{where}: {message}") from None
        return self


class PerplexitySpec(StrictModel):
    dataset: str = Field("wikitext2", description="Built-in name, local text file or hub id.")
    config_name: str | None = Field(None, description="`datasets` config name (hub ids only).")
    split: str = Field("test", description="`datasets` split (hub ids only).")
    text_field: str = Field("text", description="Column/key holding the text.")
    window: int = Field(
        256, ge=16, le=131_072, description="Text tokens per window (a BOS, if added, is extra)."
    )
    stride: int = Field(256, ge=1, description="Tokens between window starts (<= window).")
    add_bos: bool = Field(True, description="Prepend the tokenizer's BOS token to every window.")
    max_windows: int | None = Field(None, ge=1, description="Evaluate only the first N windows.")
    batch_size: int = Field(8, ge=1, le=1024, description="Windows per forward pass.")
    top_k: int = Field(
        10, ge=1, le=256, description="Baseline log-probs kept per token for KL divergence."
    )

    @model_validator(mode="after")
    def _check_stride(self) -> PerplexitySpec:
        if self.stride > self.window:
            raise ValueError(f"stride: {self.stride} must be <= window ({self.window})")
        return self


class EvaluationSpec(StrictModel):
    perplexity: PerplexitySpec | None = Field(
        default_factory=PerplexitySpec, description="Perplexity protocol; null disables it."
    )


class TrackingSpec(StrictModel):
    backend: Literal["mlflow", "none"] = Field("mlflow", description="Where runs are logged.")
    experiment: str = Field("quench", min_length=1, description="MLflow experiment name.")
    tracking_uri: str | None = Field(
        None,
        description="MLflow tracking URI; default $MLFLOW_TRACKING_URI, "
        "else sqlite:///<output.dir>/mlflow.db.",
    )


class OutputSpec(StrictModel):
    dir: str = Field("artifacts", description="Root of the stage cache, reports and MLflow store.")


class Recipe(StrictModel):
    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="Run name: the folder under output.dir and the MLflow run name.",
    )
    description: str = Field("", description="Free text, shown in the report.")
    model: ModelSpec
    calibration: CalibrationSpec = Field(default_factory=CalibrationSpec)
    quantization: QuantizationSpec = Field(default_factory=QuantizationSpec)
    evaluation: EvaluationSpec = Field(default_factory=EvaluationSpec)
    tracking: TrackingSpec = Field(default_factory=TrackingSpec)
    output: OutputSpec = Field(default_factory=OutputSpec)
