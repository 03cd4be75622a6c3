"""What a method's quantize() is given and gives back: typed, so no backend reads a recipe."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Calibration:
    """The calibration settings a backend needs (from the recipe and the calibrate stage)."""

    dataset: Any | None  # a `datasets.Dataset` of input_ids; None: the calibrate stage skipped
    num_samples: int
    max_seq_length: int
    seed: int  # seeds torch's global RNG, which orders llm-compressor's samples
    pipeline: str  # compute.pipeline: llm-compressor's calibration pipeline, or "auto"
    trust_remote_code: bool


@dataclass(frozen=True)
class Quantized:
    """The outcome the quantize stage reports and saves by."""

    warnings: tuple[str, ...]  # the library's warnings worth reporting (they explain skips)
    quantized: bool  # False: the model was left as loaded (method none): saved uncompressed
