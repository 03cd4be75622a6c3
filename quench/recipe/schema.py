"""The recipe schema (pydantic v2): every field a user may write, with its default and range."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, SerializeAsAny, ValidationError, WithJsonSchema, model_validator

from quench.errors import UnknownName
from quench.methods import MethodOptions, get_method
from quench.recipe.evaluation import EvaluationSpec
from quench.recipe.gate import GateSpec
from quench.strict import NoOptions, StrictModel, first_error, shorten
from quench.units import SIZE_PATTERN

# A run name is a folder name (with suffixes such as `.tmp-<pid>`: well under 255 bytes) and
# the MLflow run and registered-model name; 100 characters leave room for both.
MAX_NAME_CHARS = 100


class ModelSpec(StrictModel):
    id: str = Field(
        description="Hugging Face hub id (e.g. org/name), a local checkpoint folder, or a local "
        ".gguf file (dequantized once by the resolve stage); relative paths are from the working "
        "directory.",
    )
    revision: str | None = Field(None, description="Hub revision (branch, tag or commit).")
    gguf_file: str | None = Field(
        None, pattern=r"(?i)^[^/\\]+\.gguf$",
        description="A GGUF file inside the hub repo, mirror folder or local folder `id` (as "
        "transformers' `gguf_file=`); the resolve stage dequantizes it once into a dense "
        "checkpoint that every later stage uses.",
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="dtype the model is loaded in for quantization and evaluation; "
        "auto: the checkpoint's `torch_dtype` (bfloat16 for a GGUF file, which records none).",
    )
    trust_remote_code: bool = Field(
        False, description="Allow the checkpoint's own Python code; required when its "
        "config.json has `auto_map` (`quench validate` warns, `quench run` refuses). When true it "
        "reaches transformers, llm-compressor's `oneshot`, the tokenizers, lm-eval and vLLM.",
    )


class CalibrationSpec(StrictModel):
    source: str = Field(
        "wikitext2-valid",
        description="Built-in name (wikitext2-valid: the mirror's copy, else the excerpt bundled "
        "with quench), a local .txt (one record per line), .jsonl/.json or .parquet file (.gz "
        "too, except parquet), or a `datasets` hub id (org/name).",
    )
    config_name: str | None = Field(None, description="`datasets` config name (hub ids only).")
    split: str = Field("train", description="`datasets` split (hub ids only).")
    text_field: str = Field(
        "text", description="Column/key holding the text (jsonl, parquet, hub ids)."
    )
    num_samples: int = Field(
        64, ge=1, le=100_000,
        description="Records drawn for calibration (an error if the source has fewer).",
    )
    max_seq_length: int = Field(
        256, ge=8, le=131_072, description="Records are truncated to this many tokens."
    )
    seed: int = Field(
        0, ge=0, description="Seed of the draw, and of the order llm-compressor feeds the samples "
        "in (its `oneshot` shuffles them with torch's global RNG, so a seeded GPTQ run is "
        "reproducible).",
    )


class QuantizationSpec(StrictModel):
    method: str = Field(
        "none", description="Quantization method (a registered method name); `none` is the "
        "baseline."
    )
    scheme: str | None = Field(
        None, description="One of the method's schemes (e.g. W4A16); null: the method's default."
    )
    # The method's own options model, validated in _check_method and handed to it typed.
    options: Annotated[SerializeAsAny[MethodOptions | NoOptions], WithJsonSchema(
        {"additionalProperties": True, "title": "Options", "type": "object"})] = Field(
        default_factory=NoOptions,
        description="The method's own options; an unknown key is an error.")

    @model_validator(mode="before")
    @classmethod
    def _check_method(cls, data: Any) -> Any:
        """Resolves the method and scheme, then validates options with the method's model."""
        if not isinstance(data, dict):
            return data
        data, name = dict(data), data.get("method", "none")
        if not isinstance(name, str) or not isinstance(data.get("scheme") or "", str):
            return data  # the field types say what is wrong
        try:
            method = get_method(name)
        except UnknownName as exc:
            raise ValueError(f"method: {exc}") from None
        scheme = data["scheme"] = data.get("scheme") or method.default_scheme
        if scheme not in method.schemes:
            allowed = ", ".join(str(s) for s in method.schemes)
            raise ValueError(
                f"scheme: {shorten(scheme)} is not allowed for method {shorten(name)}; "
                f"allowed: {allowed}"
            )
        data["options"] = _method_options(method, name, data.get("options"))
        return data


def _method_options(method: Any, name: str, options: Any) -> StrictModel:
    """The options as the method's model; a ValidationError becomes one `options.<key>` line."""
    try:
        return method.parse_options(options)
    except ValidationError as exc:
        raise ValueError(first_error(exc, "options", method.options_model.model_fields,
                                     f"option for method {shorten(name)}",
                                     echo_input=False)) from None


class TrackingSpec(StrictModel):
    backend: Literal["mlflow", "none"] = Field("mlflow", description="Where runs are logged.")
    experiment: str = Field("quench", min_length=1, description="MLflow experiment name.")
    tracking_uri: str | None = Field(
        None,
        description="MLflow tracking URI; default $MLFLOW_TRACKING_URI, "
        "else sqlite:///<output.dir>/mlflow.db.",
    )
    timeout_s: float = Field(
        15.0, gt=0, le=600, strict=True,
        description="Longest one tracking call may take, HTTP retries included, before the run "
        "goes on without the tracking store (the run is kept for `quench sync`).",
    )
    retries: int = Field(
        2, ge=0, le=10, strict=True,
        description="HTTP retries of a failed tracking call (within timeout_s).",
    )
    tags: dict[str, str] = Field(
        default_factory=dict,
        description="More tags on the run's MLflow parent run (quench's own `quench.*` tags win "
        "on a clash; `quench sweep` sets quench.sweep and quench.sweep.trial).",
    )


class TargetSpec(StrictModel):
    engine: str = Field(description="Engine the artifact is deployed on (a registered engine "
                        "name).")
    backend: str | None = Field(
        None, description="Engine backend, where an engine has several (tensorrt-llm: pytorch, "
        "the default, LLM API without an engine build; or tensorrt, the legacy `trtllm-build`)."
    )
    gpu: str | None = Field(
        None, description="GPU the artifact is meant for, by name (e.g. H100, A100-80G, L4; a "
        "memory suffix is ignored, an unknown name is an error), or cpu; null: cpu. A GPU target "
        "is skipped on a machine without one."
    )
    environment: str | None = Field(
        None, description="Python environment (venv folder, relative to the working directory, "
        "e.g. a GPU host's CUDA build) the engine runs in; default: $QUENCH_HOME/envs/<engine>, "
        "which `quench setup <engine>` creates."
    )
    options: dict[str, Any] = Field(
        default_factory=dict, description="The engine's typed options; an unknown key is an "
        "error with a \"did you mean\" suggestion.")

    @model_validator(mode="after")
    def _check_engine(self) -> TargetSpec:
        from quench.engines import ENGINES

        if self.engine not in ENGINES:
            raise ValueError(f"engine: {ENGINES.unknown(self.engine)}")
        return self


class LicenseSpec(StrictModel):
    intended_use: Literal["commercial", "research", "internal"] = Field(
        "commercial",
        description="What the artifact is for: commercial (a product or business use), research "
        "(non-commercial research), internal (evaluation inside an organisation, not production).",
    )
    distribution: Literal["none", "internal", "public"] = Field(
        "internal", description="Who receives the artifact: nobody, your organisation, the public."
    )
    allow_unknown: bool = Field(
        False, description="Warn instead of failing when a model's license cannot be determined."
    )
    declared: dict[str, str] = Field(
        default_factory=dict,
        description="License of a model whose card cannot be read, by model id or path "
        "(e.g. {org/model: apache-2.0}); recorded as declared by the recipe.",
    )
    base_models: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Parents of a model whose card names none (a repackage or merge without "
        "base_model), by model id or path, e.g. {TheBloke/Llama-2-7B-GGUF: "
        "[meta-llama/Llama-2-7b-hf]}; walked as if its card said so, which clears the \"looks "
        "like a derivative\" finding.",
    )
    artifact_name: str | None = Field(
        None, description="Name the artifact is published under; default: the recipe name. "
        "Naming rules (Llama 3.x: must begin with \"Llama\") are checked against it, with -, _ "
        "and spaces as one separator; a name that differs only in case or separators warns, and "
        "for a quantization (any method but none) a missing prefix warns with the clause instead "
        "of failing public distribution.",
    )


class CostSpec(StrictModel):
    usd_per_hour: float | None = Field(
        None, gt=0, description="Price of the machine the throughput sweep runs on, USD/hour; "
        "default: the GPU price table's price for target.gpu (`quench plan` prints it); needed "
        "for target.gpu cpu.",
    )
    gpu_usd_per_hour: dict[str, float] = Field(
        default_factory=dict, description="Overrides of the GPU price table, USD/hour by GPU "
        "name (e.g. {H100: 3.0}), used by `quench plan` and the throughput stage.",
    )


class ComputeSpec(StrictModel):
    device: str = Field(
        "auto", pattern=r"^(auto|cpu|cuda(:[0-9]+)?)$",
        description="Device of every in-process stage (calibration, quantization, perplexity/KL, "
        "output cosine, hf lm-eval): auto (CUDA when torch sees a device, else CPU), cpu, cuda or "
        "cuda:N. The resolved device enters the cache keys.",
    )
    pipeline: Literal["auto", "sequential", "basic", "independent", "datafree"] = Field(
        "auto", description="llm-compressor calibration pipeline (`oneshot(pipeline=...)`); auto: "
        "llm-compressor's default, which runs calibrated modifiers layer by layer (sequential "
        "onloading: one decoder layer on the device at a time).",
    )
    offload_folder: str | None = Field(
        None, description="Disk offload for models bigger than host RAM: quantize, "
        "baseline_eval, evaluate and hf lm_eval load the model with compressed-tensors' "
        "offloading (host RAM up to max_cpu_memory, then this folder) and read offloaded weights "
        "back one module at a time; each stage uses its own sub-folder and removes it. null: the "
        "model is loaded whole (on the CPU while quantizing, as llm-compressor recommends for the "
        "sequential pipeline).",
    )
    max_cpu_memory: str | None = Field(
        None, pattern=SIZE_PATTERN,
        description="With offload_folder: host RAM the model's weights may take (e.g. 1GiB, "
        "500MB); the rest stays on disk. null: what is available minus 5 GB "
        "(compressed-tensors' default). `quench plan` predicts each stage's peak with it.",
    )

    @model_validator(mode="after")
    def _check_budget(self) -> ComputeSpec:
        if self.max_cpu_memory and not self.offload_folder:
            raise ValueError(f"max_cpu_memory: {self.max_cpu_memory!r} needs offload_folder (a "
                             "folder for the weights beyond it)")
        return self
    check_memory: bool = Field(
        True, description="`quench run` refuses, before any work, a recipe whose predicted peak "
        "host RAM or accelerator memory (as `quench plan` prints it) exceeds the machine's; "
        "`quench validate` warns.",
    )


class OutputSpec(StrictModel):
    dir: str = Field(
        "artifacts",
        description="Root of the stage cache, the run folders and reports, and the default "
        "MLflow store.",
    )
    max_shard_size: str = Field(
        "5GB", pattern=SIZE_PATTERN,
        description="Largest safetensors shard of a saved checkpoint (transformers' "
        "`max_shard_size`; a size such as 5GB, 500MB, 200KB or 1.5GiB); a bigger checkpoint "
        "gets model.safetensors.index.json.",
    )


class Recipe(StrictModel):
    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=MAX_NAME_CHARS,
        description="Run name: the folder under output.dir and the MLflow run name "
        f"(letters, digits, . _ -; at most {MAX_NAME_CHARS} characters). The loader sets it to "
        "the recipe file's name when it is missing; it is not inherited through `extends`.",
    )
    description: str = Field("", max_length=10_000, description="Free text, shown in the "
                             "report (anything that looks like a secret is redacted).")
    model: ModelSpec = Field(description="The base model to quantize.")
    calibration: CalibrationSpec = Field(
        default_factory=CalibrationSpec,
        description="Calibration data, used only by methods (and options) that need data.",
    )
    quantization: QuantizationSpec = Field(
        default_factory=QuantizationSpec, description="The quantization method, its scheme and "
        "its options."
    )
    evaluation: EvaluationSpec = Field(
        default_factory=EvaluationSpec, description="What is measured on the baseline and the "
        "quantized model: perplexity and KL, lm-eval tasks, served throughput."
    )
    target: TargetSpec | None = Field(
        None, description="Where the artifact is deployed; null: evaluated with `hf` only."
    )
    cost: CostSpec = Field(
        default_factory=CostSpec, description="Prices for $ per million output tokens."
    )
    tracking: TrackingSpec = Field(
        default_factory=TrackingSpec, description="Where runs are logged (MLflow) and how long "
        "tracking may take."
    )
    license: LicenseSpec = Field(
        default_factory=LicenseSpec, description="Intended use and distribution, checked against "
        "the licenses of the base model and its ancestors."
    )
    gate: GateSpec = Field(
        default_factory=GateSpec, description="Thresholds of `quench gate` for this recipe."
    )
    compute: ComputeSpec = Field(
        default_factory=ComputeSpec, description="Where stages compute and how big models are "
        "held: device, llm-compressor pipeline, offload folder, memory pre-flight."
    )
    output: OutputSpec = Field(
        default_factory=OutputSpec, description="Where run folders, the stage cache and the "
        "saved checkpoints go."
    )
