"""Whether each stage's predicted peak (stage_memory.py) fits the host, and the disk-offload
settings that would make it fit: the pre-flight's memory check and `quench plan`'s advice."""

from __future__ import annotations

from quench.compute import resolve_device
from quench.errors import QuenchError
from quench.geometry import Geometry
from quench.recipe.schema import Recipe
from quench.stage_memory import GIB, machine_memory, predict, sizes


class MemoryShortfall(QuenchError):
    """A step's predicted peak exceeds this machine: an error for `run`, a warning for
    `validate` (the recipe may be meant for a bigger host)."""


REMEDY = {"quantize": "a smaller model.dtype, disk offload or a GPU (compute.device)",
          "baseline_eval": "a smaller evaluation.perplexity.batch_size, disk offload or a GPU",
          "evaluate": "a smaller evaluation.perplexity.batch_size, disk offload or a GPU",
          "lm_eval": "a smaller evaluation.lm_eval.batch_size, disk offload or a GPU"}
OFFLOAD_HEADROOM = 0.8  # an offload budget leaves a fifth of the host's RAM free


def check_fits(recipe: Recipe, shape: Geometry) -> None:
    """Raises MemoryShortfall, with the numbers and the offload settings that would fit,
    when a step cannot fit this machine."""
    device = resolve_device(recipe.compute.device)
    host, accelerator = machine_memory(device)
    problems = []
    for s in predict(recipe, shape, host_bytes=host):
        if s.host_bytes > host:
            problems.append(f"{s.step} needs ~{s.host_bytes / GIB:.1f} GiB of host RAM, this "
                            f"machine has {host / GIB:.1f} GiB ({s.note}; try "
                            f"{REMEDY[s.step]})")
        if accelerator is not None and s.accelerator_bytes > accelerator:
            problems.append(f"{s.step} needs ~{s.accelerator_bytes / GIB:.1f} GiB on {device}, "
                            f"which has {accelerator / GIB:.1f} GiB ({s.note}; try "
                            f"{REMEDY[s.step]})")
    if problems:
        advice = offload_advice(recipe, shape, host)
        raise MemoryShortfall("compute.check_memory: the recipe does not fit this machine: "
                              + "; ".join(problems) + (f". {advice}" if advice else "")
                              + " (compute.check_memory: false tries anyway)")


def offload_advice(recipe: Recipe, shape: Geometry, host: int) -> str | None:
    """The disk-offload settings under which every step fits `host`, with their predicted
    peak; None when offloading is already on or would not fit either."""
    if recipe.compute.offload_folder:
        return None
    budget = suggested_budget(recipe, shape, host)
    if budget is None:
        return None
    trial = recipe.model_copy(deep=True)
    trial.compute.offload_folder = "offload"
    trial.compute.max_cpu_memory = f"{budget // 2**20}MiB"
    peak = max(s.host_bytes for s in predict(trial, shape, host_bytes=host))
    return (f"With disk offload it fits: compute.offload_folder: <a folder with "
            f"{sizes(recipe, shape).model / GIB:.0f} GiB free> and compute.max_cpu_memory: "
            f"{trial.compute.max_cpu_memory} (predicted peak {peak / GIB:.1f} GiB)")


def suggested_budget(recipe: Recipe, shape: Geometry, host: int) -> int | None:
    """The largest compute.max_cpu_memory whose predicted peak stays within OFFLOAD_HEADROOM
    of `host` (bytes, whole MiB), or None when even an empty budget does not fit."""
    trial = recipe.model_copy(deep=True)
    trial.compute.offload_folder = "offload"

    def peak(budget: int) -> float:
        trial.compute.max_cpu_memory = f"{budget // 2**20}MiB"
        return max(s.host_bytes for s in predict(trial, shape, "cpu", host))

    limit = OFFLOAD_HEADROOM * host
    if peak(0) > limit:
        return None
    low, high = 0, int(sizes(recipe, shape).model) // 2**20 + 1  # MiB; peak grows with budget
    while low < high:  # the largest budget whose peak is within the limit
        middle = (low + high + 1) // 2
        low, high = (middle, high) if peak(middle * 2**20) <= limit else (low, middle - 1)
    return low * 2**20
