"""Matplotlib figures of the callback's history (matplotlib is optional: ``pip install "lightning-topo[plot]"``).

* :func:`betti_depth_figure` — b0, b1, b2 and Omega against the layers for one evaluation;
* :func:`omega_history_figure` — Omega against the layers, one line per evaluated epoch (fixed size);
* :func:`decay_figure` — the decay rate and theta over epochs, each on its own axis;
* :func:`persistence_diagram_figure` — a layer's persistence diagram (birth vs death, a panel per dimension; the
  essential class on an "inf" line; a 2-D density above :data:`DENSITY_ABOVE` pairs, so 10^4 pairs stay
  readable), drawn for each watched layer when the callback computes persistence.

Every function takes the plain-Python records of ``TopologyCallback.history`` and returns a
``matplotlib.figure.Figure`` built without pyplot, so figures can be drawn on a background thread
(:mod:`lightning_topo.loggers.render`). Sizes are fixed (they do not grow with epochs or layers) and
fonts are large enough to read in a TensorBoard thumbnail (their sizes are set on each text, never through the
process-wide ``matplotlib.rcParams``); layers are labelled with their name and module type (``net.3`` / ``Conv2d``).
"""

from __future__ import annotations

import io
import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "DENSITY_ABOVE",
    "FIGURE_NAMES",
    "betti_depth_figure",
    "betti_dims",
    "betti_vs_depth",
    "decay_figure",
    "diagram_bounds",
    "figures_of",
    "layer_labels",
    "omega_history_figure",
    "persistence_diagram_figure",
    "png_bytes",
    "require_matplotlib",
    "time_axis",
]

Record = dict[str, Any]

#: The figures :func:`figures_of` draws, in order (then ``persistence_diagram/{layer}`` per layer, given diagrams).
FIGURE_NAMES = ("betti_vs_depth", "omega_history", "decay")

#: A persistence diagram panel with more finite pairs than this is drawn as a 2-D density (hexagonal bins, log
#: colour scale) instead of one marker per pair, which would be an unreadable blot.
DENSITY_ABOVE = 1000

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


def time_axis(history: Sequence[Record]) -> tuple[list[int], str]:
    """The x values of the evaluations of ``history`` and their name: the epochs while each evaluation has an epoch
    of its own; else (several validations per epoch, ``val_check_interval < 1``) the global steps where they
    increase, else the evaluations' positions. One line through two points at one epoch would zig-zag.

    Example:
        >>> time_axis([{"epoch": 0, "global_step": 5}, {"epoch": 0, "global_step": 10}])
        ([5, 10], 'global step')
    """
    epochs = [int(r.get("epoch", -1)) for r in history]
    if all(e >= 0 for e in epochs) and all(a < b for a, b in itertools.pairwise(epochs)):
        return epochs, "epoch"
    steps = [r.get("global_step") for r in history]
    if all(isinstance(s, int) for s in steps) and all(a < b for a, b in itertools.pairwise(steps)):
        return [int(s) for s in steps], "global step"  # type: ignore[arg-type]
    return list(range(len(history))), "evaluation"


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
    """Omega against the layers, one line per evaluation coloured by its epoch (by its global step when an epoch
    holds several evaluations; the figure keeps its size)."""
    matplotlib = _matplotlib()

    latest = history[-1]
    names = list(latest["layers"])
    epochs, axis_name = time_axis(history)
    fig = _new_figure()
    ax = fig.add_subplot()
    _ticks(ax)
    # Older epochs from dark to light; the latest in black, the strongest contrast on white.
    cmap = matplotlib.colors.ListedColormap(matplotlib.colormaps["viridis"](np.linspace(0.0, 0.85, 256)))
    low, high = min(epochs), max(epochs)
    norm = matplotlib.colors.Normalize(vmin=low, vmax=high if high > low else low + 1)
    depth = list(range(1, len(names) + 1))
    for record, when in zip(history, epochs, strict=True):
        omega = [record["layers"].get(n, {}).get("omega", math.nan) for n in names]
        last = record is latest
        ax.plot(
            depth,
            omega,
            color="black" if last else cmap(norm(when)),
            linewidth=2.8 if last else 1.2,
            alpha=1.0 if last else 0.7,
            marker="o" if last else None,
            zorder=3 if last else 2,
        )
    _layer_axis(ax, latest)
    ax.set_ylabel("Omega = b0 + b1 + b2", fontsize=_LABEL_SIZE)
    plural = {"epoch": "epochs", "global step": "steps", "evaluation": "evaluations"}[axis_name]
    span = f"{plural} {low}-{high}, black: {_when(latest)}" if high > low else _when(latest)
    ax.set_title(f"Omega vs depth, {span}", fontsize=_TITLE_SIZE)
    ax.grid(alpha=0.3)
    colorbar = fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax)
    colorbar.set_label(axis_name, fontsize=_LABEL_SIZE)
    _ticks(colorbar.ax)
    colorbar.ax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    return fig


def decay_figure(history: Sequence[Record]) -> Any:
    """The decay rate and theta over epochs (global steps when an epoch holds several evaluations), on separate
    axes with their direction in the label."""
    matplotlib = _matplotlib()

    epochs, axis_name = time_axis(history)
    fig = _new_figure()
    top, bottom = fig.subplots(2, 1, sharex=True)
    top.plot(epochs, [r["decay_rate"] for r in history], marker="o", color="#1f77b4")
    top.set_ylabel("decay_rate\n(higher = simpler)", fontsize=_LABEL_SIZE)
    per = "epoch" if axis_name == "epoch" else "evaluation"
    top.set_title(f"Decay of Omega over depth, per {per}", fontsize=_TITLE_SIZE)
    bottom.plot(epochs, [r["theta"] for r in history], marker="s", color="#d62728")
    bottom.set_ylabel("theta\n(paper's score)", fontsize=_LABEL_SIZE)
    bottom.set_xlabel(axis_name, fontsize=_LABEL_SIZE)
    bottom.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    if len(set(epochs)) == 1:
        bottom.set_xlim(epochs[0] - 1, epochs[0] + 1)
    for ax in (top, bottom):
        _ticks(ax)
        ax.grid(alpha=0.3)
    return fig


def diagram_bounds(diagrams: Any) -> tuple[float, float, float]:
    """``(low, high, inf_line)`` of a persistence diagram's axes: the smallest and largest value of its volumes
    (a constant volume padded by 1) and the height at which the essential class (``death = inf``) is drawn,
    8% of the range above ``high``.

    Example:
        >>> import torch
        >>> from lightning_topo.functional.persistence import PersistenceDiagrams
        >>> d = PersistenceDiagrams(torch.tensor([[0.0, float("inf")]], dtype=torch.float64), torch.tensor([0]),
        ...                         torch.tensor([0]), 1, (0,), torch.tensor([0.0], dtype=torch.float64),
        ...                         torch.tensor([10.0], dtype=torch.float64))
        >>> diagram_bounds(d)
        (0.0, 10.0, 10.8)
    """
    if diagrams.num_volumes == 0:
        return 0.0, 1.0, 1.08
    low, high = float(diagrams.value_min.min()), float(diagrams.value_max.max())
    if not high > low:
        low, high = low - 0.5, high + 0.5
    return low, high, high + 0.08 * (high - low)


def persistence_diagram_figure(diagrams: Any, layer: str = "", record: Record | None = None) -> Any:
    """A layer's persistence diagram: birth against death, one panel per computed dimension.

    Every input's pairs are drawn together (the diagram of the layer on the sample). Finite pairs are markers, or
    above :data:`DENSITY_ABOVE` pairs in a panel a 2-D density (hexagonal bins, log colour scale: the count of
    pairs per bin); the essential class (``death = inf``) is drawn as triangles on a dashed line labelled
    ``inf`` above the largest value; the diagonal ``death = birth`` is where features without persistence lie.

    Args:
        diagrams: a :class:`~lightning_topo.functional.PersistenceDiagrams`.
        layer: the layer's name, for the title.
        record: the evaluation's history record, for the epoch and step in the title.

    Example:
        >>> import torch
        >>> from lightning_topo.functional.persistence import PersistenceDiagrams
        >>> d = PersistenceDiagrams(torch.tensor([[0.0, float("inf")], [1.0, 3.0]], dtype=torch.float64),
        ...                         torch.tensor([0, 1]), torch.tensor([0, 0]), 1, (0, 1),
        ...                         torch.tensor([0.0], dtype=torch.float64), torch.tensor([4.0], dtype=torch.float64))
        >>> [ax.get_title() for ax in persistence_diagram_figure(d, "conv").axes]
        ['H0: 1 pair (1 essential)', 'H1: 1 pair']
    """
    matplotlib = _matplotlib()
    pairs = diagrams.pairs.detach().cpu().to(dtype=diagrams.pairs.dtype).numpy()
    dims = diagrams.dims.detach().cpu().numpy()
    low, high, inf_line = diagram_bounds(diagrams)
    unit = ""
    if not math.isfinite(inf_line + 0.04 * (inf_line - low)):
        # A range beyond float64 (activations near 1e308): matplotlib cannot invert that transform. Draw in units of
        # a power of two (exact) that brings the range within reach, named on the axes.
        shift = math.frexp(max(abs(low), abs(high)))[1] + 2
        pairs = np.ldexp(pairs, -shift)
        low, high = math.ldexp(low, -shift), math.ldexp(high, -shift)
        inf_line = high + 0.08 * (high - low)
        unit = f" (x 2^{shift})"
    pad = 0.04 * (inf_line - low)
    panels = list(diagrams.computed_dims)
    fig = _new_figure((3.6 * max(len(panels), 1) + 0.6, 4.4))
    axes = fig.subplots(1, max(len(panels), 1), squeeze=False)[0]
    locator = matplotlib.ticker.MaxNLocator(nbins=5)
    for ax, dim in zip(axes, panels, strict=False):
        _ticks(ax)
        chosen = pairs[dims == dim]
        essential = ~np.isfinite(chosen[:, 1])
        finite = chosen[~essential]
        ax.plot([low, high], [low, high], color="gray", linewidth=1.0, zorder=1)
        ax.axhline(inf_line, color="gray", linestyle="--", linewidth=1.0, zorder=1)
        if len(finite) > DENSITY_ABOVE:
            bins = ax.hexbin(
                finite[:, 0], finite[:, 1], gridsize=40, bins="log", mincnt=1, cmap="viridis",
                extent=(low, high, low, high), zorder=2,
            )  # fmt: skip
            colorbar = fig.colorbar(bins, ax=ax)
            colorbar.set_label("pairs per bin", fontsize=_TICK_SIZE)
            _ticks(colorbar.ax)
        elif len(finite):
            ax.scatter(finite[:, 0], finite[:, 1], s=12, alpha=0.6, color=_DIM_COLOURS[dim % 3], zorder=2)
        if essential.any():
            births = chosen[essential, 0]
            ax.scatter(births, np.full(len(births), inf_line), marker="^", s=40, color="#d62728", zorder=3)
        ticks = [t for t in locator.tick_values(low, high) if low - pad <= t <= high]
        ax.set_yticks([*ticks, inf_line], [*(f"{t:.3g}" for t in ticks), "inf"])
        ax.set_xlim(low - pad, high + pad)
        ax.set_ylim(low - pad, inf_line + pad)
        count = f"{len(chosen)} pair{'s' if len(chosen) != 1 else ''}"
        ax.set_title(
            f"H{dim}: {count}" + (f" ({int(essential.sum())} essential)" if essential.any() else ""),
            fontsize=_LABEL_SIZE,
        )
        ax.set_xlabel(f"birth{unit}", fontsize=_LABEL_SIZE)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"death{unit}", fontsize=_LABEL_SIZE)
    when = f", {_when(record)}" if record is not None else ""
    name = f" of {layer}" if layer else ""
    fig.suptitle(f"Persistence diagram{name} ({diagrams.num_volumes} inputs{when})", fontsize=_TITLE_SIZE)
    return fig


_DIM_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c")


def figures_of(history: Sequence[Record], diagrams: dict[str, Any] | None = None) -> dict[str, Any]:
    """All figures of a history (:data:`FIGURE_NAMES`): ``betti_vs_depth`` (latest evaluation), ``omega_history``
    (every evaluation) and ``decay``; given the latest evaluation's ``{layer: PersistenceDiagrams}``, also a
    ``persistence_diagram/{layer}`` per layer (:func:`persistence_diagram_figure`)."""
    if not history:
        return {}
    figures = {
        "betti_vs_depth": betti_depth_figure(history[-1]),
        "omega_history": omega_history_figure(history),
        "decay": decay_figure(history),
    }
    for layer, diagram in (diagrams or {}).items():
        figures[f"persistence_diagram/{layer}"] = persistence_diagram_figure(diagram, layer, history[-1])
    return figures


def png_bytes(fig: Any, dpi: int = 100) -> bytes:
    """The figure as PNG bytes (Agg canvas; safe off the main thread)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()
