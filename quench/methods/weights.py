"""Integer weight-only schemes shared by rtn and gptq: bits and group size from scheme + options."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field

from quench.methods import Storage
from quench.methods.kv_cache import KvCacheOptions, kv_cache_dtype
from quench.methods.rotations import Rotation, rotation_field

# Weight bits of each weight-only scheme; 3/4-bit default to groups of 128, 8-bit to channels.
WEIGHT_BITS = {"W3A16": 3, "W4A16": 4, "W8A16": 8}
DEFAULT_GROUP = {3: 128, 4: 128, 8: None}


def _at_least_one(value: int | str | None) -> int | str | None:
    if isinstance(value, int) and value < 1:
        raise ValueError("must be >= 1 or 'channel'")
    return value


# A weight group size option: weights per scale, "channel" (one per output channel) or unset.
GroupSize = Annotated[int | Literal["channel"] | None, AfterValidator(_at_least_one)]


class WeightOnlyOptions(KvCacheOptions):
    group_size: GroupSize = Field(
        None, description="Weights per scale group; 'channel' for one scale per output channel; "
        "unset: 128 at 3/4 bits, per channel at 8 bits."
    )
    symmetric: bool = Field(True, description="Symmetric (no zero point) or asymmetric.")
    rotation: Rotation = rotation_field()


def resolved_group_size(scheme: str, options: WeightOnlyOptions) -> int | None:
    """The group size in effect: an int, or None for per-channel."""
    value = options.group_size
    if value == "channel":
        return None
    return value if value is not None else DEFAULT_GROUP[WEIGHT_BITS[scheme]]


def weight_storage(scheme: str, options: WeightOnlyOptions) -> Storage:
    """Integer weights at the scheme's bits; a zero point per group when asymmetric."""
    return Storage(weight_bits=WEIGHT_BITS[scheme], group_size=resolved_group_size(scheme, options),
                   zero_points=not options.symmetric, kv_cache_dtype=kv_cache_dtype(options))


def weight_config_groups(scheme: str, options: WeightOnlyOptions) -> dict[str, Any]:
    """compressed-tensors config_groups for an integer weight-only scheme."""
    group = resolved_group_size(scheme, options)
    weights = {
        "num_bits": WEIGHT_BITS[scheme],
        "type": "int",
        "symmetric": options.symmetric,
        "strategy": "group" if group else "channel",
        "group_size": group,
    }
    return {"group_0": {"targets": options.targets, "weights": weights}}
