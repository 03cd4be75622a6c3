"""AutoRound: sign-gradient tuning of rounding and clipping per decoder layer (AutoRoundModifier).

llm-compressor 0.14's modifier drives the installed `auto-round` package one decoder layer at a
time inside `oneshot`'s sequential pipeline, so the checkpoint is compressed-tensors like every
other llm-compressor method (bench/autoround_compare.py measures it against auto-round's own
entry point on the same calibration).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from quench.methods import Method, ModuleOptions, Storage, register_method
from quench.methods.weights import GroupSize

# scheme -> (weight bits, symmetric); 4-bit schemes default to groups of 128, 8-bit to channels
SCHEMES = {"W4A16": (4, True), "W4A16_ASYM": (4, False), "W8A16": (8, True)}
DEFAULT_GROUP = {4: 128, 8: None}


class AutoRoundOptions(ModuleOptions):
    group_size: GroupSize = Field(
        None, description="Weights per scale group; 'channel': one scale per output channel; "
        "unset: 128 at 4 bits, per channel at 8 bits.")
    iters: int = Field(200, ge=1, le=10_000, description="Tuning steps per decoder layer (the "
                       "AutoRound paper's default 200; 0 would be plain rounding).")
    lr: float | None = Field(None, gt=0, le=1, description="Sign-SGD learning rate; unset: "
                             "1/iters (auto-round's default).")
    batch_size: int = Field(8, ge=1, le=1024, description="Calibration samples per tuning "
                            "step (of calibration.num_samples; sequence length is "
                            "calibration.max_seq_length).")
    enable_torch_compile: bool = Field(False, description="torch.compile the tuning loop "
                                       "(needs a C++ compiler; off: compiling costs more than "
                                       "it saves on small models and on CPU).")


def resolved_group_size(scheme: str, options: AutoRoundOptions) -> int | None:
    """The group size in effect: an int, or None for per-channel."""
    if options.group_size == "channel":
        return None
    bits = SCHEMES[scheme][0]
    return options.group_size if options.group_size is not None else DEFAULT_GROUP[bits]


@register_method
class AutoRound(Method[AutoRoundOptions]):
    name = "autoround"
    schemes = tuple(SCHEMES)
    default_scheme = "W4A16"
    options_model = AutoRoundOptions

    def needs_calibration(self, scheme: str, options: AutoRoundOptions) -> bool:
        return True

    def storage(self, scheme: str, options: AutoRoundOptions) -> Storage:
        bits, symmetric = SCHEMES[scheme]
        return Storage(weight_bits=bits, group_size=resolved_group_size(scheme, options),
                       zero_points=not symmetric)

    def modifiers(self, scheme: str, options: AutoRoundOptions) -> list[Any]:
        from llmcompressor.modifiers.autoround import AutoRoundModifier

        bits, symmetric = SCHEMES[scheme]
        group = resolved_group_size(scheme, options)
        weights = {"num_bits": bits, "type": "int", "symmetric": symmetric,
                   "strategy": "group" if group else "channel", "group_size": group}
        groups = {"group_0": {"targets": options.targets, "weights": weights}}
        return [AutoRoundModifier(config_groups=groups, ignore=options.ignore,
                                  iters=options.iters, lr=options.lr,
                                  batch_size=options.batch_size,
                                  enable_torch_compile=options.enable_torch_compile)]
