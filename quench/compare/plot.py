"""The Pareto plot: quality vs size, and quality vs throughput when runs measured it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

QUALITY = {"perplexity": ("candidate.perplexity", "perplexity (lower is better)"),
           "kl": ("candidate.kl_divergence", "KL divergence vs fp baseline (lower is better)")}


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both coordinates (both minimized)."""
    order = sorted(range(len(points)), key=lambda i: points[i])
    front, best = [], float("inf")
    for i in order:
        if points[i][1] < best:
            front.append(i)
            best = points[i][1]
    return front


def plot(data: dict[str, Any], quality: str, path: Path) -> list[str]:
    """Writes the PNG; returns notes (the frontier, and the runs left out for lack of data)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    key, label = QUALITY[quality]
    runs = data["runs"]
    panels = [("size", "size (MB)", lambda r: _mb(r["metrics"]["candidate.size_bytes"]), False)]
    top = max(data["throughput_levels"], default=None)
    if top is not None:
        panels.append(("throughput", f"output tokens/s at concurrency {top} (higher is better)",
                       lambda r: r["throughput"].get(str(top)), True))
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.8), squeeze=False)
    notes = []
    for ax, (name, xlabel, x_of, maximize) in zip(axes[0], panels, strict=True):
        notes += _panel(ax, runs, x_of, key, maximize, name)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
    fig.suptitle(f"quench compare: {label.split(' (')[0]} vs cost ({len(runs)} run(s))")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return notes


def _panel(ax: Any, runs: list[dict[str, Any]], x_of: Any, key: str, maximize: bool,
           name: str) -> list[str]:
    """One scatter with its front; notes name the front and the runs without data."""
    shown = [(r, x_of(r), r["metrics"][key]) for r in runs]
    missing = [r["name"] for r, x, y in shown if x is None or y is None]
    shown = [(r, x, y) for r, x, y in shown if x is not None and y is not None]
    notes = [f"not on the {name} panel: {', '.join(missing)} (not measured)"] if missing else []
    if not shown:
        ax.text(0.5, 0.5, "no run has both values", ha="center", transform=ax.transAxes)
        return notes
    front = pareto_front([(-x if maximize else x, y) for _, x, y in shown])
    ax.scatter([x for _, x, _ in shown], [y for _, _, y in shown], color="tab:blue", zorder=2)
    line = sorted((shown[i][1], shown[i][2]) for i in front)
    ax.plot([p[0] for p in line], [p[1] for p in line], color="tab:red", marker="o",
            markerfacecolor="none", markersize=11, zorder=1, label="Pareto front")
    for r, x, y in shown:
        ax.annotate(r["name"], (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.legend(loc="best", fontsize=8)
    names = ", ".join(shown[i][0]["name"] for i in front)
    return [*notes, f"Pareto front ({name}): {names}"]


def _mb(value: float | None) -> float | None:
    return None if value is None else value / 1e6
