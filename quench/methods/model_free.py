"""Data-free quantization shard by shard, never instantiating the model (model_free_ptq).

llm-compressor 0.14's `model_free_ptq` reads the safetensors shards, quantizes each 2-D weight
whose module name the targets match (norms skipped), and writes compressed-tensors shards plus
config.json: no transformers model class, one shard at a time in RAM (with its quantized copy:
~2.5x the shard; for a single-shard model that is more than loading it: 1.47 vs 1.28 GB on
SmolLM2, docs/benchmarks/tinystories.md). For sharded models too big to load, or architectures
transformers cannot build. Only schemes with no calibrated activations are possible (its
validate_config refuses static activations), so the method's schemes are the data-free ones; a
calibrated scheme is a `quench validate` error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from quench.methods import Method, MethodCapabilities, ModuleOptions, Storage, register_method

# scheme -> Storage; integer weight schemes take options.group_size (the presets' is 128)
STORAGE = {
    "FP8_DYNAMIC": Storage(weight_bits=8, weight_type="float", activation_bits=8,
                           activation_type="float"),
    # one scale per 128x128 block: fewer than per channel, sized as per channel (an upper bound)
    "FP8_BLOCK": Storage(weight_bits=8, weight_type="float", activation_bits=8,
                         activation_type="float"),
    "W8A8": Storage(weight_bits=8, activation_bits=8),
    "W4A16": Storage(weight_bits=4, group_size=128),
    "W4A16_ASYM": Storage(weight_bits=4, group_size=128, zero_points=True),
    "W8A16": Storage(weight_bits=8),
}
GROUPED = ("W4A16", "W4A16_ASYM")


class ModelFreeOptions(ModuleOptions):
    # Tensors are matched by module name only (no classes without a model): `Linear` means
    # every 2-D weight, so the embeddings must be ignored by name.
    ignore: list[str] = Field(default_factory=lambda: ["lm_head", "re:.*embed_tokens$"],
                              description="Module names (or `re:` patterns) left in full "
                              "precision: names only, every other 2-D weight but norms is "
                              "quantized.")
    group_size: int = Field(128, ge=1, description="Weights per scale group (W4A16, "
                            "W4A16_ASYM; the others are per channel or 128x128 blocks).")
    max_workers: int = Field(1, ge=1, le=64, description="Shards quantized concurrently "
                             "(each one is in RAM while it is processed).")


@register_method
class ModelFree(Method[ModelFreeOptions]):
    name = "model_free"
    schemes = tuple(STORAGE)
    default_scheme = "FP8_DYNAMIC"
    options_model = ModelFreeOptions
    capabilities = MethodCapabilities(loads_model=False)

    def storage(self, scheme: str, options: ModelFreeOptions) -> Storage:
        base = STORAGE[scheme]
        if scheme not in GROUPED:
            return base
        return Storage(weight_bits=4, group_size=options.group_size,
                       zero_points=base.zero_points)

    def modifiers(self, scheme: str, options: ModelFreeOptions) -> list[Any]:
        return []  # never used: quantize_files() does the work

    def quantize_files(self, source: Path, out: Path, scheme: str, options: ModelFreeOptions,
                       device: str, calibration: Path | None = None,
                       metadata: dict[str, str | int] | None = None) -> dict[str, Any]:
        """Writes the quantized checkpoint (and the source's other files) into `out`."""
        from compressed_tensors.quantization import preset_name_to_scheme
        from llmcompressor.entrypoints.model_free import model_free_ptq

        preset = preset_name_to_scheme(scheme, options.targets)
        if scheme in GROUPED:
            preset.weights.group_size = options.group_size
        elif scheme == "W8A16":  # the compressed-tensors preset groups by 128; rtn's is per channel
            preset.weights.strategy, preset.weights.group_size = "channel", None
        model_free_ptq(str(source), str(out), scheme=preset, ignore=options.ignore,
                       max_workers=options.max_workers, device=device)
        return {}
