"""The compatibility matrix's look-ups: matrix.yaml read once, a recipe's cell, the first rule
matching it and the verdict; GPU names and sizes.

The recipe's method and scheme give a checkpoint producer and quantization family; the target
engine and backend give the checkpoint format the export stage writes; target.gpu gives the
architecture. The first rule of matrix.yaml matching all of them decides.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from quench.methods import get_method
from quench.recipe.schema import Recipe


@cache
def matrix() -> dict[str, Any]:
    return yaml.safe_load(Path(__file__).with_name("matrix.yaml").read_text())


@dataclass(frozen=True)
class Cell:
    """One point of the matrix: what a recipe would deploy, and where."""

    method: str
    scheme: str
    producer: str  # hf, compressed-tensors or modelopt
    quant: str  # quantization family, e.g. int8-w8a8, fp8, int4-awq
    format: str  # checkpoint format the engine loads: hf, compressed-tensors, modelopt-hf, ...
    engine: str
    backend: str | None
    gpu: str | None
    arch: str | None
    transform: str = "none"  # rotations the engine must apply: none, fused or online


@dataclass
class Verdict:
    """The matrix's answer for a recipe: problems (reject) and warnings, each with its source."""

    cell: Cell | None
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    rule: dict[str, Any] | None = None


@dataclass(frozen=True)
class Gpu:
    """A GPU `quench plan` sizes: nominal memory, compute capability (FP8 from 8.9), a price."""

    name: str
    arch: str
    memory_gib: float
    compute: float
    usd_per_hour: float


def gpu_arch(gpu: str | None) -> str | None:
    """Architecture of a GPU name (case and spaces ignored); None when unknown or unset."""
    if gpu is None:
        return None
    key = re.sub(r"-\d+GB?$", "", gpu.replace(" ", "").upper()).replace("-", "")  # A100-80G
    return next((spec["arch"] for name, spec in matrix()["gpus"].items() if name.upper() == key),
                None)


def sized_gpus() -> tuple[Gpu, ...]:
    """Every memory variant of matrix.yaml's `gpus` with a `plan` entry, smallest first."""
    gpus = [Gpu(variant, spec["arch"], memory, spec["compute"], price)
            for spec in matrix()["gpus"].values()
            for variant, (memory, price) in spec.get("plan", {}).items()]
    return tuple(sorted(gpus, key=lambda g: (g.memory_gib, g.usd_per_hour)))


def backend_of(engine: str, backend: str | None) -> str | None:
    """The backend the engine will use (its default when the recipe names none)."""
    spec = matrix()["engines"].get(engine, {"default": None})
    return backend if backend is not None else spec["default"]


def export_format(producer: str, engine: str, backend: str | None) -> str:
    """The checkpoint format the export stage writes for this engine/backend."""
    table = matrix()["exports"][producer]
    return table.get(f"{engine}/{backend}", table["*"])


def cell_of(recipe: Recipe) -> Cell | None:
    """The recipe's deployment point; None when it has no target or an unmapped method."""
    target, q = recipe.target, recipe.quantization
    if target is None:
        return None
    mapped = matrix()["methods"].get(q.method, {}).get(q.scheme)
    if mapped is None:
        return None
    producer, quant = mapped
    backend = backend_of(target.engine, target.backend)
    return Cell(q.method, q.scheme, producer, quant,
                export_format(producer, target.engine, backend), target.engine, backend,
                target.gpu, gpu_arch(target.gpu), get_method(q.method).transform(q.options))


def check(recipe: Recipe) -> Verdict:
    """The verdict for the recipe's target (empty when it has none)."""
    target = recipe.target
    if target is None:
        return Verdict(None)
    verdict = Verdict(None)
    _check_target_keys(recipe, verdict)
    if verdict.errors:
        return verdict
    cell = cell_of(recipe)
    verdict.cell = cell
    if cell is None:
        verdict.warnings.append(f"quantization.method {recipe.quantization.method!r} writes a "
                                "checkpoint quench cannot classify: its target support is not "
                                "checked")
        return verdict
    notice = matrix()["notices"].get(f"{cell.engine}/{cell.backend}")
    if notice:
        verdict.warnings.append(f"target: {notice['note']} [{_first(notice['source'])}]")
    if cell.arch is None and cell.engine != "hf":
        verdict.warnings.append("target.gpu is not set: GPU-architecture support of "
                                f"{cell.quant} on {cell.engine} is not checked")
    rule = first_rule(cell)
    verdict.rule = rule
    _apply(rule, cell, verdict)
    return verdict


def first_rule(cell: Cell) -> dict[str, Any] | None:
    """The first rule matching the cell (rules naming an architecture need one)."""
    for rule in matrix()["rules"]:
        if all(_matches(rule.get(key), getattr(cell, key))
               for key in ("engine", "backend", "format", "quant", "arch", "transform")):
            return rule
    return None


def _apply(rule: dict[str, Any] | None, cell: Cell, verdict: Verdict) -> None:
    where = f"{cell.engine}" + (f" ({cell.backend} backend)" if cell.backend else "") + (
        f" on {cell.gpu} ({cell.arch})" if cell.arch else "")
    what = (f"quantization.method {cell.method} scheme {cell.scheme} ({cell.quant}, "
            f"{cell.format} checkpoint" + (f", {cell.transform} rotations" if cell.transform
                                           != "none" else "") + ")")
    if rule is None:
        if cell.arch is not None:
            verdict.warnings.append(f"target: no documented support found for {what} on "
                                    f"{where}; not checked")
        return
    message = f"target: {what} on {where}: {rule['note']} [{_first(rule['source'])}]"
    if rule["verdict"] == "reject":
        verdict.errors.append(message)
    elif rule["verdict"] == "warn":
        verdict.warnings.append(message)


def _check_target_keys(recipe: Recipe, verdict: Verdict) -> None:
    target = recipe.target
    engine = matrix()["engines"].get(target.engine)
    if engine is not None and target.backend not in engine["backends"] + [None]:
        allowed = [b for b in engine["backends"] if b] or ["none (leave it unset)"]
        verdict.errors.append(f"target.backend: {target.backend!r} is not a backend of "
                              f"{target.engine}; allowed: {', '.join(allowed)}")
    if target.gpu is not None and gpu_arch(target.gpu) is None:
        verdict.errors.append(f"target.gpu: unknown GPU {target.gpu!r}; known: "
                              f"{', '.join(matrix()['gpus'])}")


def _matches(wanted: Any, value: Any) -> bool:
    """A rule field: absent or '*' matches anything; a list matches its members."""
    if wanted is None or wanted == "*":
        return True
    if value is None:
        return False
    return value in wanted if isinstance(wanted, list) else value == wanted


def _first(source: str) -> str:
    """The first citation of a source field (the whole text stays in matrix.yaml)."""
    return source.split(";")[0].strip()
