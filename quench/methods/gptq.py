"""GPTQ weight-only quantization (llmcompressor GPTQModifier) at 3, 4 or 8 bits."""

from typing import Any, Literal

from pydantic import Field

from quench.methods import Method, Storage, WorkingSet, register_method
from quench.methods.kv_cache import kv_cache_scheme
from quench.methods.rotations import rotation_modifiers, transform_kind
from quench.methods.weights import (
    WEIGHT_BITS,
    WeightOnlyOptions,
    weight_config_groups,
    weight_storage,
)


class GPTQOptions(WeightOnlyOptions):
    actorder: Literal["static", "group", "weight"] | None = Field(
        "static", description="Column order of quantization (activation ordering)."
    )
    dampening_frac: float = Field(0.01, gt=0, lt=1, description="Hessian dampening fraction.")
    block_size: int = Field(128, ge=1, description="Columns quantized per pass.")


@register_method
class GPTQ(Method[GPTQOptions]):
    name = "gptq"
    schemes = tuple(WEIGHT_BITS)
    default_scheme = "W4A16"
    options_model = GPTQOptions

    def needs_calibration(self, scheme: str, options: GPTQOptions) -> bool:
        return True

    def logs_each_module(self, scheme: str, options: GPTQOptions) -> bool:
        return True  # GPTQModifier

    def working_set(self, scheme: str, options: GPTQOptions) -> WorkingSet:
        return WorkingSet(hessians=True)

    def storage(self, scheme: str, options: GPTQOptions) -> Storage:
        return weight_storage(scheme, options)

    def transform(self, options: GPTQOptions) -> str:
        return transform_kind(options.rotation)

    def modifiers(self, scheme: str, options: GPTQOptions) -> list[Any]:
        from llmcompressor.modifiers.gptq import GPTQModifier

        return rotation_modifiers(options.rotation) + [
            GPTQModifier(
                config_groups=weight_config_groups(scheme, options),
                ignore=options.ignore,
                actorder=options.actorder,
                dampening_frac=options.dampening_frac,
                block_size=options.block_size,
                kv_cache_scheme=kv_cache_scheme(options),
            )
        ]
