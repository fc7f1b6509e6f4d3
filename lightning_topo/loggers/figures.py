"""Matplotlib figures of the callback's history (matplotlib is optional: ``pip install "lightning-topo[plot]"``).

* :func:`betti_depth_figure` — b0, b1, b2 and Omega against the layers for one evaluation;
* :func:`omega_history_figure` — Omega against the layers, one line per evaluated epoch (fixed size);
* :func:`decay_figure` — the decay rate and theta over epochs, each on its own axis.

Every function takes the plain-Python records of ``TopologyCallback.history`` and returns a
``matplotlib.figure.Figure`` built without pyplot, so figures can be drawn on a background thread
(:mod:`lightning_topo.loggers.render`). Sizes are fixed (they do not grow with epochs or layers) and
fonts are large enough to read in a TensorBoard thumbnail (their sizes are set on each text, never through the
process-wide ``matplotlib.rcParams``); layers are labelled with their name and module type (``net.3`` / ``Conv2d``).
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "FIGURE_NAMES",
    "betti_depth_figure",
    "betti_dims",
    "betti_vs_depth",
    "decay_figure",
    "figures_of",
    "layer_labels",
    "omega_history_figure",
    "png_bytes",
    "require_matplotlib",
]

Record = dict[str, Any]

#: The figures :func:`figures_of` draws, in order.
FIGURE_NAMES = ("betti_vs_depth", "omega_history", "decay")

# Legible as a ~400 px wide thumbnail: 7 x 4.6 in at 100 dpi with 12-13 pt text.
_SIZE = (7.0, 4.6)
# Set on each artist, never through ``rcParams``: those are process-wide, and the figures are drawn on a worker
# thread while the user's code (maybe inside its own ``rc_context``) runs on the main thread.
_TITLE_SIZE = 13
_LABEL_SIZE = 12
_TICK_SIZE = 11
_LEGEND_SIZE = 11
_LAYOUT = "constrained"
_SERIES_STYLE = {
    "b0": {"color": "#1f77b4", "marker": "o"},
    "b1": {"color": "#ff7f0e", "marker": "s"},
    "b2": {"color": "#2ca02c", "marker": "^"},
    "omega": {"color": "black", "linewidth": 2.8, "marker": "D"},
}


_INSTALL = 'Topology figures need matplotlib: pip install "lightning-topo[plot]" (or pip install matplotlib).'


def require_matplotlib() -> Any:
    """Import ``matplotlib.pyplot`` or explain how to install it (for callers that want pyplot)."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise ImportError(_INSTALL) from err
    return plt


def _matplotlib() -> Any:
    """``matplotlib`` with its Figure class and Agg canvas, without pyplot (safe off the main thread)."""
    try:
        import matplotlib
        import matplotlib.cm
        import matplotlib.colors
        import matplotlib.figure
        import matplotlib.ticker
        from matplotlib.backends import backend_agg  # noqa: F401
    except ImportError as err:
        raise ImportError(_INSTALL) from err
    return matplotlib


def _new_figure(size: tuple[float, float] = _SIZE) -> Any:
    mpl = _matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = mpl.figure.Figure(figsize=size, dpi=100, layout=_LAYOUT)
    FigureCanvasAgg(fig)  # drawable (``fig.canvas.draw()``, ``buffer_rgba()``) without pyplot's global state
    return fig


def _ticks(ax: Any) -> None:
    """Tick labels (and the axes' offset texts, e.g. ``1e-3``) at the thumbnail size."""
    ax.tick_params(labelsize=_TICK_SIZE)
    ax.xaxis.offsetText.set_fontsize(_TICK_SIZE)
    ax.yaxis.offsetText.set_fontsize(_TICK_SIZE)


def _nanmean(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return sum(finite) / len(finite) if finite else math.nan


def _when(record: Record) -> str:
    """``epoch E · step S``: the epoch and the logger step its scalars and figures carry."""
    step = record.get("step")
    return f"epoch {record.get('epoch', '?')}" + (f" · step {step}" if step is not None else "")


def layer_labels(record: Record, separator: str = "\n") -> list[str]:
    """``name`` + separator + module type for each layer of a record (just the name where no type was recorded)."""
    labels = []
    for name, layer in record["layers"].items():
        kind = layer.get("module")
        labels.append(f"{name}{separator}{kind}" if kind else name)
    return labels


def betti_dims(record: Record) -> int:
    """How many Betti numbers (b0, b1, ...) a record holds per layer and class (3 where no layer has any)."""
    return max((len(layer["betti"][0]) for layer in record["layers"].values() if layer["betti"]), default=3)


def betti_vs_depth(record: Record) -> tuple[list[str], dict[str, list[float]]]:
    """Layer names and the series ``b0``, ``b1``, (``b2``), ``omega`` over depth from one history record.

    Betti numbers are averaged over classes (NaN classes left out), as logged.
    """
    names = list(record["layers"])
    dims = betti_dims(record)
    series: dict[str, list[float]] = {f"b{k}": [] for k in range(dims)}
    for name in names:
        rows = record["layers"][name]["betti"]
        for k in range(dims):
            series[f"b{k}"].append(_nanmean([row[k] for row in rows]) if rows else math.nan)
    series["omega"] = [record["layers"][n]["omega"] for n in names]
    return names, series


def _layer_axis(ax: Any, record: Record) -> None:
    labels = layer_labels(record)
    ax.set_xticks(range(1, len(labels) + 1))
    widest = max((len(part) for label in labels for part in label.split("\n")), default=0)
    if len(labels) * widest <= 60:  # fits upright: name over module type
        ax.set_xticklabels(labels, fontsize=_TICK_SIZE)
    else:  # one turned line per layer, every layer still named
        ax.set_xticklabels(layer_labels(record, " "), rotation=30, ha="right", rotation_mode="anchor", fontsize=10)
    ax.set_xlabel("layer (in forward order)", fontsize=_LABEL_SIZE)


def betti_depth_figure(record: Record, title: str | None = None) -> Any:
    """Betti numbers and Omega against the layers for one evaluation (one line per series)."""
    names, series = betti_vs_depth(record)
    fig = _new_figure()
    ax = fig.add_subplot()
    _ticks(ax)
    depth = list(range(1, len(names) + 1))
    for key, values in series.items():
        ax.plot(depth, values, label="Omega" if key == "omega" else key, **_SERIES_STYLE.get(key, {}))
    _layer_axis(ax, record)
    ax.set_ylabel("Betti number, Omega\n(mean over classes)", fontsize=_LABEL_SIZE)
    ax.set_title(title or f"Betti numbers vs depth, {_when(record)}", fontsize=_TITLE_SIZE)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", ncols=2, fontsize=_LEGEND_SIZE)
    return fig


def omega_history_figure(history: Sequence[Record]) -> Any:
    """Omega against the layers, one line per evaluated epoch coloured by epoch (the figure keeps its size)."""
    matplotlib = _matplotlib()

    latest = history[-1]
    names = list(latest["layers"])
    epochs = [int(r["epoch"]) for r in history]
    fig = _new_figure()
    ax = fig.add_subplot()
    _ticks(ax)
    # Older epochs from dark to light; the latest in black, the strongest contrast on white.
    cmap = matplotlib.colors.ListedColormap(matplotlib.colormaps["viridis"](np.linspace(0.0, 0.85, 256)))
    low, high = min(epochs), max(epochs)
    norm = matplotlib.colors.Normalize(vmin=low, vmax=high if high > low else low + 1)
    depth = list(range(1, len(names) + 1))
    for record in history:
        omega = [record["layers"].get(n, {}).get("omega", math.nan) for n in names]
        last = record is latest
        ax.plot(
            depth,
            omega,
            color="black" if last else cmap(norm(int(record["epoch"]))),
            linewidth=2.8 if last else 1.2,
            alpha=1.0 if last else 0.7,
            marker="o" if last else None,
            zorder=3 if last else 2,
        )
    _layer_axis(ax, latest)
    ax.set_ylabel("Omega = b0 + b1 + b2", fontsize=_LABEL_SIZE)
    span = f"epochs {low}-{high}, black: {_when(latest)}" if high > low else _when(latest)
    ax.set_title(f"Omega vs depth, {span}", fontsize=_TITLE_SIZE)
    ax.grid(alpha=0.3)
    colorbar = fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax)
    colorbar.set_label("epoch", fontsize=_LABEL_SIZE)
    _ticks(colorbar.ax)
    colorbar.ax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    return fig


def decay_figure(history: Sequence[Record]) -> Any:
    """The decay rate and theta over epochs, on separate axes with their direction in the label."""
    matplotlib = _matplotlib()

    epochs = [int(r["epoch"]) for r in history]
    fig = _new_figure()
    top, bottom = fig.subplots(2, 1, sharex=True)
    top.plot(epochs, [r["decay_rate"] for r in history], marker="o", color="#1f77b4")
    top.set_ylabel("decay_rate\n(higher = simpler)", fontsize=_LABEL_SIZE)
    top.set_title("Decay of Omega over depth, per epoch", fontsize=_TITLE_SIZE)
    bottom.plot(epochs, [r["theta"] for r in history], marker="s", color="#d62728")
    bottom.set_ylabel("theta\n(lower = steeper)", fontsize=_LABEL_SIZE)
    bottom.set_xlabel("epoch", fontsize=_LABEL_SIZE)
    bottom.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    if len(set(epochs)) == 1:
        bottom.set_xlim(epochs[0] - 1, epochs[0] + 1)
    for ax in (top, bottom):
        _ticks(ax)
        ax.grid(alpha=0.3)
    return fig


def figures_of(history: Sequence[Record]) -> dict[str, Any]:
    """All figures of a history (:data:`FIGURE_NAMES`): ``betti_vs_depth`` (latest evaluation), ``omega_history``
    (every evaluation) and ``decay``."""
    if not history:
        return {}
    return {
        "betti_vs_depth": betti_depth_figure(history[-1]),
        "omega_history": omega_history_figure(history),
        "decay": decay_figure(history),
    }


def png_bytes(fig: Any, dpi: int = 100) -> bytes:
    """The figure as PNG bytes (Agg canvas; safe off the main thread)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()
