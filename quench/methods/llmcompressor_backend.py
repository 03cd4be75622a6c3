"""The llm-compressor backend the llm-compressor methods share: `oneshot` with a method's
modifiers, its log sinks (library warnings, per-module progress) and its session's release.

llmcompressor, loguru and torch are imported inside the functions: the methods registry
imports this module at its first look-up, and `quench validate` must stay light.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

from quench import progress
from quench.methods.quantizing import Calibration, Quantized
from quench.methods.traced_globals import traced_globals_released

WARNING = 30  # loguru's WARNING level number
Targets = tuple[list[str], list[str]]  # compressed-tensors targets and ignore patterns


def quantize(model: Any, recipe: list[Any] | str, calibration: Calibration,
             context: AbstractContextManager[Any], counted: Targets | None) -> Quantized:
    """Runs `oneshot` with `recipe` inside the method's `context`; an empty recipe quantizes
    nothing. `counted`: the modules llm-compressor logs one METRIC `error` line for (GPTQ),
    for a progress bar; None: a spinner."""
    if not recipe:
        return Quantized(warnings=(), quantized=False)
    warnings = oneshot(model, recipe, calibration, context, counted)
    return Quantized(warnings=tuple(warnings), quantized=True)


def oneshot(model: Any, recipe: list[Any] | str, calibration: Calibration,
            context: AbstractContextManager[Any], counted: Targets | None) -> list[str]:
    """Runs llmcompressor's oneshot; returns the warnings it logged (they explain skips)."""
    from llmcompressor import oneshot as run_oneshot

    kwargs = oneshot_kwargs(calibration)
    if calibration.dataset is not None:
        # oneshot shuffles the samples with an unseeded RandomSampler (torch's global RNG):
        # without a seed GPTQ's result changed from run to run (SmolLM2 perplexity 51.9-53.5)
        import torch

        torch.manual_seed(calibration.seed)
    with warnings_logged() as warnings, context, traced_globals_released(), \
            layer_progress(model, counted):
        run_oneshot(model=model, recipe=recipe, output_dir=None, **kwargs)
    return [w for w in warnings if "No accelerator available" not in w]


def oneshot_kwargs(calibration: Calibration) -> dict[str, Any]:
    """oneshot's data, pipeline and remote-code arguments."""
    kwargs: dict[str, Any] = {}
    if calibration.dataset is not None:
        kwargs = {"dataset": calibration.dataset,
                  "num_calibration_samples": calibration.num_samples,
                  "max_seq_length": calibration.max_seq_length}
    if calibration.pipeline != "auto":
        kwargs["pipeline"] = calibration.pipeline
    # oneshot loads the config and processor itself: without this it refuses custom code
    kwargs["trust_remote_code_model"] = calibration.trust_remote_code
    return kwargs


@contextlib.contextmanager
def warnings_logged() -> Iterator[list[str]]:
    """The messages llm-compressor logs at WARNING and above, and the modules it skips."""
    from loguru import logger

    warnings: list[str] = []
    sink = logger.add(
        lambda m: warnings.append(m.record["message"]),
        level="DEBUG",  # AWQ names each mapping it skips only at DEBUG level
        # METRIC (llmcompressor's per-module error/time lines) ranks above WARNING: not a warning.
        filter=lambda r: (r["level"].no >= WARNING and r["level"].name != "METRIC")
        or r["message"].startswith("Skipping "),
    )
    try:
        yield warnings
    finally:
        logger.remove(sink)


@contextlib.contextmanager
def layer_progress(model: Any, counted: Targets | None) -> Iterator[None]:
    """A bar over the modules GPTQ compresses, counted from its per-module `error` METRIC log
    line; a spinner for the other modifiers, which log nothing per module."""
    from loguru import logger

    total = None
    if counted is not None:
        from compressed_tensors.utils import match_named_modules

        total = sum(1 for _ in match_named_modules(model, *counted))
    sink = logger.add(
        lambda _: progress.advance(),
        filter=lambda r: r["level"].name == "METRIC" and r["message"].startswith("error "))
    try:
        with progress.task("modules quantized (GPTQ)" if total else "llmcompressor oneshot",
                           total):
            yield
    finally:
        logger.remove(sink)


def release_session() -> None:
    """llmcompressor's session keeps a reference to the model: dropped before the reload."""
    from llmcompressor.core import reset_session

    reset_session()
