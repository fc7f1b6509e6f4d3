"""Matplotlib figures of the callback's history (matplotlib is optional: ``pip install "lightning-topo[plot]"``).

* :func:`betti_depth_figure` — b0, b1, b2 and Omega against layer depth for one evaluation;
* :func:`decay_figure` — the decay rate and theta over epochs;
* :func:`omega_heatmap_figure` — Omega for every epoch x layer.

Every function takes the plain-Python records of ``TopologyCallback.history``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

__all__ = [
    "betti_depth_figure",
    "betti_vs_depth",
    "decay_figure",
    "figures_of",
    "omega_heatmap_figure",
    "require_matplotlib",
]

Record = dict[str, Any]


def require_matplotlib() -> Any:
    """Import ``matplotlib.pyplot`` or explain how to install it."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise ImportError(
            'Topology figures need matplotlib: pip install "lightning-topo[plot]" (or pip install matplotlib).'
        ) from err
    return plt


def _nanmean(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return sum(finite) / len(finite) if finite else math.nan


def betti_vs_depth(record: Record) -> tuple[list[str], dict[str, list[float]]]:
    """Layer names and the series ``b0``, ``b1``, (``b2``), ``omega`` over depth from one history record.

    Betti numbers are averaged over classes (NaN classes left out), as logged.
    """
    names = list(record["layers"])
    dims = max((len(rows[0]) for rows in (record["layers"][n]["betti"] for n in names) if rows), default=3)
    series: dict[str, list[float]] = {f"b{k}": [] for k in range(dims)}
    for name in names:
        rows = record["layers"][name]["betti"]
        for k in range(dims):
            series[f"b{k}"].append(_nanmean([row[k] for row in rows]) if rows else math.nan)
    series["omega"] = [record["layers"][n]["omega"] for n in names]
    return names, series


def betti_depth_figure(record: Record, title: str | None = None) -> Any:
    """Betti numbers and Omega against layer depth for one evaluation (one line per series)."""
    plt = require_matplotlib()
    names, series = betti_vs_depth(record)
    depth = list(range(1, len(names) + 1))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.45 * len(names) + 3), 4.0))
    for key, values in series.items():
        style = {"linewidth": 2.5, "color": "black"} if key == "omega" else {"marker": "o"}
        ax.plot(depth, values, label="Omega" if key == "omega" else key, **style)
    ax.set_xticks(depth)
    ax.set_xticklabels(names, rotation=45, ha="right", fontsize=8)
    ax.set_xlabel("layer (depth)")
    ax.set_ylabel("mean Betti number")
    ax.set_title(title or f"Betti numbers vs depth, epoch {record.get('epoch', '?')}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def decay_figure(history: Sequence[Record]) -> Any:
    """The decay rate and theta over epochs."""
    plt = require_matplotlib()
    epochs = [r["epoch"] for r in history]
    fig, ax = plt.subplots(figsize=(6.0, 3.5))
    ax.plot(epochs, [r["decay_rate"] for r in history], marker="o", label="decay_rate (higher = more simplification)")
    ax.plot(epochs, [r["theta"] for r in history], marker="s", label="theta (paper)")
    ax.set_xlabel("epoch")
    ax.set_title("Decay of topological complexity over depth")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def omega_heatmap_figure(history: Sequence[Record]) -> Any:
    """Omega for every epoch (rows) and layer (columns)."""
    plt = require_matplotlib()
    names = list(history[-1]["layers"])
    grid = [[r["layers"].get(n, {}).get("omega", math.nan) for n in names] for r in history]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.45 * len(names) + 3), max(3.0, 0.3 * len(history) + 2)))
    image = ax.imshow(grid, aspect="auto", cmap="viridis", interpolation="nearest")
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(history)))
    ax.set_yticklabels([str(r["epoch"]) for r in history], fontsize=8)
    ax.set_xlabel("layer (depth)")
    ax.set_ylabel("epoch")
    ax.set_title("Omega per epoch and layer")
    fig.colorbar(image, ax=ax, label="Omega")
    fig.tight_layout()
    return fig


def figures_of(history: Sequence[Record]) -> dict[str, Any]:
    """All figures of a history: ``betti_vs_depth`` (latest evaluation), ``decay``, ``omega_heatmap``."""
    if not history:
        return {}
    return {
        "betti_vs_depth": betti_depth_figure(history[-1]),
        "decay": decay_figure(history),
        "omega_heatmap": omega_heatmap_figure(history),
    }
