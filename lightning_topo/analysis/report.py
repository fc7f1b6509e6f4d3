"""`TopologyReport`: the result of a one-off analysis, with a lossless JSON round trip.

A report holds, for the watched layers in depth order and the sampled classes:

* ``betti`` ``(L, C, K)`` float64: mean Betti numbers per layer and class (K = 3 for the cubical view,
  ``maxdim + 1`` for the point-cloud view; NaN where a layer or class could not be computed);
* ``per_input`` ``(L, N, K)`` float64: Betti numbers of every sampled input (cubical view only);
* ``omega`` ``(L,)``, ``theta`` (the paper's score) and ``decay_rate`` (the depth-normalised alternative,
  see :mod:`lightning_topo.functional.complexity`);
* the sample (``labels``, dataset ``indices``), the analysis settings (``config``; for the point-cloud view with
  ``metric="knn_hops"`` also ``k_per_class``, the k each class's k-NN graph used), problems and warnings (every
  warning ``analyse`` gave: about the sample, the layers and the evaluation);
* with ``TopologyConfig.persistence`` set (cubical view): ``persistence_keys`` (S names, e.g.
  ``total_persistence_1``), ``persistence`` ``(L, C, S)`` float64 per-class means and ``per_input_persistence``
  ``(L, N, S)`` per input of the persistence summaries, and ``diagrams``: each layer's
  :class:`~lightning_topo.functional.PersistenceDiagrams` of the ``N`` sampled inputs (``index`` = position in
  the sample).

``to_json`` writes standard JSON (non-finite floats as the strings ``"NaN"``, ``"Infinity"``,
``"-Infinity"``; floats written with Python's shortest round-tripping repr), so
``TopologyReport.from_json(path)`` gives back exactly the same numbers. ``to_npz`` writes the diagrams as binary
arrays (and the rest as that JSON), the compact form for many pairs; ``from_npz`` reads it back, equal.
"""

from __future__ import annotations

import json
import math
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lightning_topo.functional.persistence import PersistenceDiagrams
from lightning_topo.functional.summaries import summary_kind_of

__all__ = ["REPORT_FORMAT", "TopologyReport", "short_name"]

REPORT_FORMAT = "lightning-topo/report/1"
_BETTI = ("b0", "b1", "b2", "b3")


def _encode(value: float) -> float | str:
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def _decode(value: float | int | str | None) -> float:
    if isinstance(value, str):
        return {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}[value]
    return math.nan if value is None else float(value)


def _encode_tensor(t: Tensor) -> Any:
    if t.ndim == 0:
        return _encode(float(t))
    return [_encode_tensor(row) for row in t]


def _nested_floats(values: Any) -> Any:
    if isinstance(values, list):
        return [_nested_floats(v) for v in values]
    return _decode(values)


def _tensor(values: Any, shape: tuple[int, ...]) -> Tensor:
    out = torch.tensor(_nested_floats(values), dtype=torch.float64)
    return out.reshape(shape)


@dataclass(repr=False)
class TopologyReport:
    """Layerwise topology of one model on one sample (see the module docstring for the fields).

    Example:
        >>> import torch
        >>> from torch.utils.data import TensorDataset
        >>> from lightning_topo import analyse
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Conv2d(4, 4, 3))
        >>> data = TensorDataset(torch.rand(12, 1, 10, 10), torch.arange(12) % 2)
        >>> report = analyse(net, data, progress=False)
        >>> report.layers, tuple(report.betti.shape)
        (['0', '1', '2'], (3, 2, 3))
        >>> TopologyReport.from_dict(report.to_dict()).equals(report)
        True
        >>> report  # doctest: +ELLIPSIS
        TopologyReport(cubical, 3 layers ['0', '1', '2'], 12 inputs in 2 classes, theta=..., decay_rate=...)
    """

    layers: list[str]
    classes: list[int]
    betti: Tensor
    omega: Tensor
    theta: float
    decay_rate: float
    labels: Tensor
    indices: Tensor
    per_input: Tensor | None = None
    problems: dict[str, str] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    name: str = ""
    persistence_keys: list[str] = field(default_factory=list)
    persistence: Tensor | None = None
    per_input_persistence: Tensor | None = None
    diagrams: dict[str, PersistenceDiagrams] | None = None

    def mean_persistence(self) -> dict[str, Tensor]:
        """``{name: (L,)}``: each persistence summary per layer averaged over the classes (NaN classes left out),
        as the callback logs them; empty without persistence summaries."""
        if self.persistence is None:
            return {}
        means = torch.nanmean(self.persistence, dim=1)
        return {key: means[:, j] for j, key in enumerate(self.persistence_keys)}

    @property
    def betti_dims(self) -> int:
        """K: how many Betti numbers per layer (3 for the cubical view)."""
        return int(self.betti.shape[-1])

    def mean_betti(self) -> Tensor:
        """``(L, K)``: Betti numbers per layer averaged over the classes (NaN classes left out), as logged."""
        return torch.nanmean(self.betti, dim=1)

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (lists, floats, strings); :meth:`from_dict` inverts it exactly."""
        return {
            "format": REPORT_FORMAT,
            "name": self.name,
            "layers": list(self.layers),
            "classes": [int(c) for c in self.classes],
            "betti": _encode_tensor(self.betti),
            "omega": _encode_tensor(self.omega),
            "theta": _encode(self.theta),
            "decay_rate": _encode(self.decay_rate),
            "labels": [int(v) for v in self.labels.tolist()],
            "indices": [int(v) for v in self.indices.tolist()],
            "per_input": None if self.per_input is None else _encode_tensor(self.per_input),
            "problems": dict(self.problems),
            "config": dict(self.config),
            "warnings": list(self.warnings),
            **self._persistence_dict(diagrams=True),
        }

    def _persistence_dict(self, diagrams: bool) -> dict[str, Any]:
        if self.persistence is None and self.diagrams is None:
            return {}
        out: dict[str, Any] = {
            "persistence_keys": list(self.persistence_keys),
            "persistence": None if self.persistence is None else _encode_tensor(self.persistence),
            "per_input_persistence": (
                None if self.per_input_persistence is None else _encode_tensor(self.per_input_persistence)
            ),
        }
        if diagrams:
            out["diagrams"] = None if self.diagrams is None else {k: _diagram_dict(d) for k, d in self.diagrams.items()}
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TopologyReport:
        """Rebuild a report from :meth:`to_dict` output (e.g. loaded JSON)."""
        if data.get("format") != REPORT_FORMAT:
            raise ValueError(
                f"not a lightning-topo report (format {data.get('format')!r}, expected {REPORT_FORMAT!r})."
            )
        layers, classes = list(data["layers"]), [int(c) for c in data["classes"]]
        n = len(data["labels"])
        k = len(data["betti"][0][0]) if layers and classes else 3
        per_input = data.get("per_input")
        return cls(
            layers=layers,
            classes=classes,
            betti=_tensor(data["betti"], (len(layers), len(classes), k)),
            omega=_tensor(data["omega"], (len(layers),)),
            theta=_decode(data["theta"]),
            decay_rate=_decode(data["decay_rate"]),
            labels=torch.tensor(data["labels"], dtype=torch.long).reshape(n),
            indices=torch.tensor(data["indices"], dtype=torch.long).reshape(n),
            per_input=None if per_input is None else _tensor(per_input, (len(layers), n, k)),
            problems=dict(data.get("problems", {})),
            config=dict(data.get("config", {})),
            warnings=list(data.get("warnings", [])),
            name=str(data.get("name", "")),
            **_persistence_fields(data, len(layers), len(classes), n),
        )

    def to_json(self, path: str | Path) -> Path:
        """Write the report as JSON (creating parent directories); returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1, allow_nan=False))
        return path

    @classmethod
    def from_json(cls, path: str | Path) -> TopologyReport:
        """Read a report written by :meth:`to_json`."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no report at {str(path)!r}.")
        return cls.from_dict(json.loads(path.read_text()))

    def to_npz(self, path: str | Path) -> Path:
        """Write the report as a NumPy ``.npz`` file (creating parent directories); returns the path.

        The diagrams are stored as arrays (``diagrams.{i}.pairs`` ... for the ``i``-th layer that has them), the
        rest as the JSON of :meth:`to_json` (an array of one string): :meth:`from_npz` reads it back without
        pickle, equal in every field.

        Example:
            >>> import tempfile
            >>> from torch.utils.data import TensorDataset
            >>> from lightning_topo import analyse
            >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU())
            >>> data = TensorDataset(torch.rand(6, 1, 8, 8), torch.arange(6) % 2)
            >>> report = analyse(net, data, progress=False, persistence=["total_persistence"])
            >>> path = report.to_npz(tempfile.mkdtemp() + "/report.npz")
            >>> TopologyReport.from_npz(path).equals(report), report.persistence_keys[:1]
            (True, ['total_persistence_0'])
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = self.to_dict()
        data.pop("diagrams", None)
        arrays: dict[str, np.ndarray] = {"report": np.asarray(json.dumps(data, allow_nan=False))}
        layers = list(self.diagrams or {})
        arrays["diagram_layers"] = np.asarray(json.dumps(layers))
        for i, layer in enumerate(layers):
            for key, value in self.diagrams[layer].as_arrays().items():  # type: ignore[index]
                arrays[f"diagrams.{i}.{key}"] = value
        with open(path, "wb") as f:  # np.savez would append ".npz" to another suffix
            np.savez(f, **arrays)
        return path

    @classmethod
    def from_npz(cls, path: str | Path) -> TopologyReport:
        """Read a report written by :meth:`to_npz` (no pickle is loaded)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no report at {str(path)!r}.")
        with np.load(path, allow_pickle=False) as npz:
            data = json.loads(str(npz["report"]))
            layers = json.loads(str(npz["diagram_layers"])) if "diagram_layers" in npz.files else []
            report = cls.from_dict(data)
            if layers:
                report.diagrams = {
                    layer: PersistenceDiagrams.from_arrays(
                        {key.split(".", 2)[2]: npz[key] for key in npz.files if key.startswith(f"diagrams.{i}.")}
                    )
                    for i, layer in enumerate(layers)
                }
        return report

    def equals(self, other: TopologyReport) -> bool:
        """Exact equality of every field (NaN equals NaN)."""
        return self.to_dict() == other.to_dict()

    # ------------------------------------------------------------------ views
    def to_record(self) -> dict[str, Any]:
        """The report as one ``TopologyCallback.history``-style record (for the plotting helpers)."""
        return {
            "epoch": None,
            "classes": list(self.classes),
            "layers": {
                name: {
                    "betti": self.betti[i].tolist(),
                    "omega": float(self.omega[i]),
                    "problem": self.problems.get(name),
                }
                for i, name in enumerate(self.layers)
            },
            "theta": self.theta,
            "decay_rate": self.decay_rate,
        }

    def to_pandas(self) -> Any:
        """A long ``pandas.DataFrame``: one row per (layer, class) with depth, the class's mean b0.. and its Omega
        (their sum), the layer's Omega (``layer_omega``: the mean of its classes' Omegas) and the persistence
        summaries (when computed)."""
        try:
            import pandas as pd
        except ImportError as err:
            raise ImportError('to_pandas() needs pandas: pip install "lightning-topo[pandas]" (or pandas).') from err
        rows = []
        for i, layer in enumerate(self.layers):
            for j, c in enumerate(self.classes):
                row: dict[str, Any] = {"layer": layer, "depth": i + 1, "class": c}
                for kk in range(self.betti_dims):
                    row[_BETTI[kk]] = float(self.betti[i, j, kk])
                row["omega"] = float(self.betti[i, j].sum())
                row["layer_omega"] = float(self.omega[i])
                for s, key in enumerate(self.persistence_keys if self.persistence is not None else []):
                    row[key] = float(self.persistence[i, j, s])  # type: ignore[index]
                rows.append(row)
        return pd.DataFrame(rows)

    def __repr__(self) -> str:
        """A short summary (the dataclass's own repr printed every per-input tensor: kilobytes in a notebook);
        :meth:`table` for the values per layer."""
        view = self.config.get("complex", "?")
        name = f"{self.name!r}, " if self.name else ""
        persistence = f", persistence={self.persistence_keys}" if self.persistence_keys else ""
        problems = f", problems={sorted(self.problems)}" if self.problems else ""
        return (
            f"TopologyReport({name}{view}, {len(self.layers)} layers {self.layers[:3]}"
            f"{' ...' if len(self.layers) > 3 else ''}, {len(self.labels)} inputs in {len(self.classes)} classes, "
            f"theta={self.theta:.4g}, decay_rate={self.decay_rate:.4g}{persistence}{problems})"
        )

    def table(self) -> str:
        """A fixed-width text table: one line per layer (Betti numbers averaged over classes, Omega); with
        persistence summaries, one more table per summary (a column per dimension), averaged the same way."""
        keys = [_BETTI[k] for k in range(self.betti_dims)]
        width = max([5, *(len(n) for n in self.layers)])
        lines = [f"{'depth':>5}  {'layer':<{width}}  " + "  ".join(f"{k:>7}" for k in [*keys, "omega"])]
        means = self.mean_betti()
        for i, name in enumerate(self.layers):
            values = [*means[i].tolist(), float(self.omega[i])]
            lines.append(f"{i + 1:>5}  {name:<{width}}  " + "  ".join(f"{v:>7.3f}" for v in values))
        summaries = self.mean_persistence()
        kinds = dict.fromkeys(summary_kind_of(key) for key in summaries)
        for kind in kinds:
            columns = [key for key in summaries if summary_kind_of(key) == kind]
            heads = [f"H{key[-1]}" for key in columns]
            lines.append(f"{'persistent_betti' if kind == 'persistent_b' else kind} (mean over classes)")
            lines.append(f"{'depth':>5}  {'layer':<{width}}  " + "  ".join(f"{h:>9}" for h in heads))
            for i, name in enumerate(self.layers):
                row = "  ".join(f"{float(summaries[key][i]):>9.4g}" for key in columns)
                lines.append(f"{i + 1:>5}  {name:<{width}}  {row}")
        lines.append(f"theta = {_shown(self.theta)}   decay_rate = {_shown(self.decay_rate)}")
        return "\n".join(lines)

    def plot(self, title: str | None = None) -> Any:
        """A matplotlib figure of the mean Betti numbers and Omega against depth (needs matplotlib).

        The title is ``title``, else short: the model's short name (a checkpoint's file name without its folders,
        a class path's last part) over theta and the decay rate. The full ``name`` (a checkpoint path can be long)
        is written under the axes; every text is wrapped to fit the figure's width.
        """
        from lightning_topo.loggers.figures import betti_depth_figure

        short = short_name(self.name)
        scores = f"theta = {self.theta:.3f}, decay rate = {self.decay_rate:.3f}"
        heading = title or (f"Betti numbers vs depth: {short}" if short else "Betti numbers vs depth") + "\n" + scores
        fig = betti_depth_figure(self.to_record(), title=heading)
        footer = self.name if self.name and self.name != short else None
        _fit_texts(fig, fig.axes[0].title, footer)
        return fig


def _shown(value: float, digits: int = 4) -> str:
    """``value`` with ``digits`` decimals, a value that rounds to zero without a sign (``-0.0000`` reads as a
    decay)."""
    text = f"{value:.{digits}f}"
    return text[1:] if text.startswith("-") and float(text) == 0.0 else text


def _diagram_dict(d: PersistenceDiagrams) -> dict[str, Any]:
    return {
        "pairs": _encode_tensor(d.pairs.detach().cpu().to(torch.float64)) if len(d) else [],
        "dims": [int(v) for v in d.dims.tolist()],
        "index": [int(v) for v in d.index.tolist()],
        "num_volumes": int(d.num_volumes),
        "computed_dims": [int(v) for v in d.computed_dims],
        "value_min": _encode_tensor(d.value_min.detach().cpu().to(torch.float64)),
        "value_max": _encode_tensor(d.value_max.detach().cpu().to(torch.float64)),
    }


def _diagram_from_dict(data: dict[str, Any]) -> PersistenceDiagrams:
    b = int(data["num_volumes"])
    return PersistenceDiagrams(
        pairs=_tensor(data["pairs"], (len(data["dims"]), 2)),
        dims=torch.tensor(data["dims"], dtype=torch.long).reshape(-1),
        index=torch.tensor(data["index"], dtype=torch.long).reshape(-1),
        num_volumes=b,
        computed_dims=tuple(int(v) for v in data["computed_dims"]),
        value_min=_tensor(data["value_min"], (b,)),
        value_max=_tensor(data["value_max"], (b,)),
    )


def _persistence_fields(data: dict[str, Any], layers: int, classes: int, n: int) -> dict[str, Any]:
    """The persistence fields of :meth:`TopologyReport.from_dict` (absent in reports without them)."""
    keys = list(data.get("persistence_keys") or [])
    means, per_input, diagrams = data.get("persistence"), data.get("per_input_persistence"), data.get("diagrams")
    return {
        "persistence_keys": keys,
        "persistence": None if means is None else _tensor(means, (layers, classes, len(keys))),
        "per_input_persistence": None if per_input is None else _tensor(per_input, (layers, n, len(keys))),
        "diagrams": None if diagrams is None else {k: _diagram_from_dict(v) for k, v in diagrams.items()},
    }


def short_name(name: str) -> str:
    """A model's name short enough for a figure title.

    Args:
        name: a checkpoint path, a dotted class path or any name.

    Returns:
        A path's file name (``digits_cnn.ckpt``), a class path's last part (``CNNClassifier``), else ``name``.

    Examples:
        >>> short_name("outputs/digits_cnn/checkpoints/digits_cnn.ckpt")
        'digits_cnn.ckpt'
        >>> short_name("lightning_topo.models.CNNClassifier")
        'CNNClassifier'
    """
    if "/" in name or "\\" in name:
        return name.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    if " " not in name and name.count(".") >= 2:  # a class path (a file name has one dot)
        return name.rsplit(".", 1)[-1]
    return name


FOOTER_FONTSIZE = 7


def _fit_texts(fig: Any, title: Any, footer: str | None) -> None:
    """Wrap the axes title to the figure's width and write ``footer`` (wrapped) at the bottom of the figure.

    The footer is the figure's ``supxlabel``, so the layout (tight or constrained, whichever the figure uses)
    leaves room for it.

    Args:
        fig: the figure (one axes).
        title: the axes' title artist.
        footer: a line for the bottom of the figure, or ``None``.
    """
    heading = title.get_text()
    note = fig.supxlabel(footer, x=0.01, ha="left", fontsize=FOOTER_FONTSIZE) if footer else None
    for _ in range(3):  # the layout moves the axes, which moves the (centred) title: lay out, wrap, check again
        _lay_out(fig)
        fitted = _wrap_to_fit(fig, title, heading)
        if note is not None:
            fitted = _wrap_to_fit(fig, note, footer or "") and fitted
        if fitted:
            return
    _lay_out(fig)


def _lay_out(fig: Any) -> None:
    """Run the figure's layout engine now (``tight_layout`` for a figure without one).

    Args:
        fig: the figure.
    """
    from matplotlib.layout_engine import PlaceHolderLayoutEngine

    engine = fig.get_layout_engine()
    if engine is None or isinstance(engine, PlaceHolderLayoutEngine):  # laid out once by hand (tight_layout)
        fig.tight_layout()
    else:  # constrained (or tight) layout, run at every draw
        fig.draw_without_rendering()


def _wrap_to_fit(fig: Any, text: Any, original: str) -> bool:
    """Wrap ``original`` into ``text`` at the widest line length that keeps it inside the figure.

    Args:
        fig: the figure.
        text: the text artist.
        original: its unwrapped text.

    Returns:
        Whether it fitted as it was, without more wrapping.
    """
    renderer = fig.canvas.get_renderer()
    width = max(len(line) for line in original.splitlines())
    fitted_first = True
    while True:
        text.set_text("\n".join(textwrap.fill(line, width, break_long_words=True) for line in original.splitlines()))
        box = text.get_window_extent(renderer)
        if (box.x0 >= fig.bbox.x0 and box.x1 <= fig.bbox.x1) or width <= 8:
            return fitted_first
        fitted_first = False
        width = max(8, min(width - 1, int(width * 0.98 * fig.bbox.width / max(box.width, 1.0)) - 1))
