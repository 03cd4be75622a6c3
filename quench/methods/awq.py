"""AWQ: activation-aware weight scaling (AWQModifier) followed by 4-bit weight quantization."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

from pydantic import Field

from quench.gpu import accelerator_present
from quench.methods import Method, MethodCapabilities, Storage, WorkingSet, register_method
from quench.methods.kv_cache import KvCacheOptions, kv_cache_dtype, kv_cache_scheme


class AWQOptions(KvCacheOptions):
    group_size: int = Field(128, ge=1, description="Weights per scale group.")
    duo_scaling: bool = Field(True, description="Scale search uses activations and weights.")
    # llmcompressor 0.14 divides by (n_grid - 2) when duo_scaling is on: below 3 it crashes.
    n_grid: int = Field(20, ge=3, le=100, description="Grid points of the scale search.")
    # llmcompressor's AWQ leaves out AutoAWQ's clipping search (vllm-project/llm-compressor#1177);
    # its maintainers point to the mse weight observer instead (#1600). Measured
    # (docs/benchmarks/awq-vs-gptq.md): it helps on TinyStories-656K but not RTN on SmolLM2,
    # so the default stays.
    observer: Literal["minmax", "mse"] = Field(
        "minmax", description="Weight range observer of the final quantization: minmax "
        "(llmcompressor's default) or mse (searches a shrunk range per group, AutoAWQ's "
        "clipping in spirit).")


# Float32 copies of one decoder layer's weights that AWQ's scale search holds at its peak: fitted
# to the scaling benchmark (`make bench-scaling`, 0.4 and 2.2 GB models: 321 and 352 MiB over the
# loaded model, flat once the mapped checkpoint is moved into owned memory; replaces_weights).
AWQ_LAYER_COPIES = 1.5

# Option value -> llmcompressor weight observer (memoryless_minmax is what it picks when none is
# given). The memoryless names avoid its "Overriding weight observer" warning.
WEIGHT_OBSERVERS = {"minmax": "memoryless_minmax", "mse": "memoryless_mse"}


@register_method
class AWQ(Method[AWQOptions]):
    name = "awq"
    schemes = ("W4A16_ASYM", "W4A16")
    default_scheme = "W4A16_ASYM"
    options_model = AWQOptions
    # AWQModifier assigns weight.data for each grid point
    capabilities = MethodCapabilities(replaces_weights=True)

    def needs_calibration(self, scheme: str, options: AWQOptions) -> bool:
        return True

    def working_set(self, scheme: str, options: AWQOptions) -> WorkingSet:
        return WorkingSet(layer_float32_copies=AWQ_LAYER_COPIES, cached_activations=True)

    def storage(self, scheme: str, options: AWQOptions) -> Storage:
        return Storage(weight_bits=4, group_size=options.group_size,
                       zero_points=scheme == "W4A16_ASYM", kv_cache_dtype=kv_cache_dtype(options))

    def modifiers(self, scheme: str, options: AWQOptions) -> list[Any]:
        from llmcompressor.modifiers.quantization import QuantizationModifier
        from llmcompressor.modifiers.transform.awq import AWQModifier

        weights = {
            "num_bits": 4, "type": "int", "symmetric": scheme == "W4A16",
            "strategy": "group", "group_size": options.group_size,
            "observer": WEIGHT_OBSERVERS[options.observer],
        }
        groups = {"group_0": {"targets": options.targets, "weights": weights}}
        return [
            AWQModifier(duo_scaling=options.duo_scaling, n_grid=options.n_grid),
            QuantizationModifier(config_groups=groups, ignore=options.ignore,
                                 kv_cache_scheme=kv_cache_scheme(options)),
        ]

    def context(self, options: AWQOptions) -> Any:
        return cpu_pin_memory_workaround()


@contextmanager
def cpu_pin_memory_workaround() -> Iterator[None]:
    """Makes IntermediatesCache.pin_memory a no-op while no accelerator is present.

    llmcompressor 0.14's AWQ pins its cached activations unconditionally, and pinning needs an
    accelerator: on a CPU-only host AWQ fails with "Cannot access accelerator device when none
    is available". Pinning only speeds up host-to-device copies, so skipping it on CPU changes
    no result. tests/methods/test_awq_upstream.py fails once upstream no longer needs this.
    """
    if accelerator_present():
        yield
        return
    from llmcompressor.pipelines.cache import IntermediatesCache

    original = IntermediatesCache.pin_memory
    IntermediatesCache.pin_memory = lambda self, *args, **kwargs: None
    try:
        yield
    finally:
        IntermediatesCache.pin_memory = original
