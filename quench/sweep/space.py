"""The points a sweep can try: every variant combined with every combination of the axes.
A point is an ordered mapping of dotted recipe keys to values, applied over the base recipe."""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass
from typing import Any

Point = dict[str, Any]
MAX_POINTS = 100_000  # a space this large is enumerated lazily by no strategy here


@dataclass(frozen=True)
class Space:
    axes: dict[str, list[Any]]
    variants: list[dict[str, Any]]

    @property
    def size(self) -> int:
        size = max(1, len(self.variants))
        for values in self.axes.values():
            size *= len(values)
        return size

    def points(self) -> list[Point]:
        """Every point, variants outermost, in the order the file gives them."""
        keys = list(self.axes)
        points = []
        for variant in self.variants or [{}]:
            for combo in itertools.product(*(self.axes[k] for k in keys)):
                points.append({**variant, **dict(zip(keys, combo, strict=True))})
        return points

    def indices(self, point: Point) -> dict[str, int]:
        """The position of each of the point's values on its axis (and its variant's), for
        samplers that work on categorical indices."""
        found = {key: values.index(point[key]) for key, values in self.axes.items()}
        if self.variants:
            found["variant"] = next(i for i, v in enumerate(self.variants)
                                    if all(point.get(k) == x for k, x in v.items()))
        return found

    def point_at(self, indices: dict[str, int]) -> Point:
        variant = self.variants[indices.get("variant", 0)] if self.variants else {}
        return {**variant, **{k: self.axes[k][indices[k]] for k in self.axes}}


def point_id(point: Point) -> str:
    """A short stable hash of a point: the trial's name suffix, the same on every re-run."""
    text = json.dumps(point, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def describe(point: Point) -> str:
    """`key=value, ...` with the keys' last parts (quantization.options.group_size: group_size)."""
    if not point:
        return "(base recipe)"
    return ", ".join(f"{k.rsplit('.', 1)[-1]}={json.dumps(v, default=str)}"
                     for k, v in point.items())
