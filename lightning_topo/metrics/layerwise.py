"""`LayerwiseTopology`: the metric behind the callback and ``analyse`` — per-layer, per-class statistics.

One evaluation feeds one metric: each watched layer's reduced values (per-input Betti numbers for the cubical
view, pooled embeddings for the point-cloud view) go in with :meth:`LayerwiseTopology.update_layer`, and
:meth:`~torchmetrics.Metric.compute` returns a :class:`TopologyResult`. The states are what DDP must combine:

* cubical: per-layer, per-class integer sums of ``(b0, b1, b2)`` and sample counts, ``dist_reduce_fx="sum"``
  (the sufficient statistics of the per-class means: ``_betti_update`` / ``_betti_compute`` /
  ``_omega_compute`` of :mod:`lightning_topo.functional.statistics`, in the style of torchmetrics' functional
  ``_update`` / ``_compute`` split); with ``config.persistence`` set, also per-layer, per-class float64 sums of
  the per-input persistence summaries (``persistence_sum``, reduced and averaged the same way, with the same
  counts);
* point cloud: each layer's embeddings, labels and sample positions, ``dist_reduce_fx="cat"`` (a point cloud's
  Betti numbers need all of its points); after the gather the points are put back in sample order, so the
  result does not depend on how the sample was split over ranks;
* a per-layer problem count (``"sum"``) and the reasons as text (UTF-8 bytes, ``"cat"``): a layer with a problem
  on any rank is NaN everywhere, with that rank's reason.

So a 2-process DDP run computes from the synchronised states exactly what one process computes on the whole
sample. Running a model on a sample and feeding this metric is :func:`lightning_topo.analysis.evaluate_topology`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from lightning_topo.capture.errors import plural
from lightning_topo.config import TopologyConfig
from lightning_topo.functional import normalised_decay, rips_betti, theta
from lightning_topo.functional._checks import as_integer, class_labels
from lightning_topo.functional.persistence import PersistenceDiagrams
from lightning_topo.functional.statistics import _betti_compute, _betti_update, _omega_compute
from lightning_topo.metrics.betti import MergeChecked

__all__ = ["LayerTopology", "LayerwiseTopology", "TopologyResult", "decays"]


def _check_cubical_values(values: Tensor, batch: int) -> None:
    """Cubical ``values``: ``(B, 3)`` non-negative integer Betti numbers (the sign is read on the CPU only: on an
    accelerator it would cost a host sync per layer and batch, and our engine's numbers are counts)."""
    if not isinstance(values, Tensor) or values.ndim != 2 or values.shape != (batch, 3):
        shape = tuple(values.shape) if isinstance(values, Tensor) else type(values).__name__
        raise ValueError(f"cubical `values` must be Betti numbers of shape (B, 3) = ({batch}, 3), got {shape}.")
    if values.is_floating_point() or values.is_complex() or values.dtype == torch.bool:
        raise ValueError(f"cubical `values` must be integer Betti numbers, got dtype {values.dtype}.")
    if values.device.type == "cpu" and bool((values < 0).any()):
        raise ValueError(f"cubical `values` must be non-negative Betti numbers, got a minimum of {int(values.min())}.")


@dataclass
class LayerTopology:
    """Topology of one layer on the sample.

    ``betti``: ``(C, K)`` mean Betti numbers per class (NaN for a class that could not be computed);
    ``per_input``: ``(N, K)`` Betti numbers per sampled input (cubical view, this process's inputs; ``None``
    for Rips); ``omega``: Omega (per class, then over classes); ``problem``: why the layer is NaN, if it is.
    With ``TopologyConfig.persistence`` set (cubical view): ``persistence``, ``{name: (C,)}`` float64 per-class
    means of each summary (names: ``TopologyConfig.persistence_keys``, e.g. ``total_persistence_1``;
    combined over processes like ``betti``); ``per_input_persistence``, ``(N, S)`` the summaries per input and
    ``diagrams``, the inputs' persistence diagrams (both of this process's inputs, as ``per_input``).
    """

    name: str
    betti: Tensor
    omega: float
    per_input: Tensor | None = None
    problem: str | None = None
    persistence: dict[str, Tensor] | None = None
    per_input_persistence: Tensor | None = None
    diagrams: PersistenceDiagrams | None = None

    def mean_persistence(self) -> dict[str, float]:
        """Each persistence summary averaged over the classes (NaN classes left out), as the callback logs it;
        empty when none was computed."""
        return {key: float(torch.nanmean(values)) for key, values in (self.persistence or {}).items()}

    def class_betti(self) -> Tensor:
        """``betti`` as ``(C, K)``, also where ``compute()`` left a single value 0-d (one class and one Betti
        number: torchmetrics squeezes 1-element results)."""
        return torch.atleast_2d(self.betti)

    def class_persistence(self) -> dict[str, Tensor]:
        """``persistence`` as ``{name: (C,)}``, also with one class (``compute()`` leaves those 0-d); empty when
        none was computed."""
        return {key: torch.atleast_1d(values) for key, values in (self.persistence or {}).items()}


@dataclass
class TopologyResult:
    """Layerwise topology of a model on a sample, in depth (execution) order."""

    layers: list[LayerTopology]
    classes: list[int]
    theta: float
    decay_rate: float
    warnings: list[str] = field(default_factory=list)

    @property
    def omega(self) -> Tensor:
        """``(L,)`` float64 Omega per layer."""
        return torch.tensor([layer.omega for layer in self.layers], dtype=torch.float64)


def decays(omegas: Tensor) -> tuple[float, float, str | None]:
    """``(theta, decay_rate, why)`` of an Omega curve; NaN with the reason when they are undefined."""
    if omegas.numel() < 2:
        return math.nan, math.nan, f"the decay over depth needs at least 2 layers, {omegas.numel()} watched"
    if not bool(torch.isfinite(omegas).all()):
        return math.nan, math.nan, "theta and the decay rate are NaN because a layer's Omega is NaN"
    if bool((omegas == 0).all()):
        return math.nan, math.nan, "Omega is 0 at every layer (threshold below every activation?): decay undefined"
    return float(theta(omegas)), float(normalised_decay(omegas)), None


def _squeeze_scalars(result: TopologyResult) -> TopologyResult:
    """``result`` with its 1-element tensors made 0-d, as torchmetrics' ``compute`` wrapper leaves a value
    (``_squeeze_if_scalar``): a layer's ``betti`` with one class and one Betti number, its ``persistence`` means
    with one class."""
    for layer in result.layers:
        if layer.betti.numel() == 1:
            layer.betti = layer.betti.squeeze()
        if layer.persistence is not None:
            layer.persistence = {k: v.squeeze() if v.numel() == 1 else v for k, v in layer.persistence.items()}
    return result


def _cloud_messages(few: list[str], dense: list[tuple[int, int, int]], k_asked: Any) -> list[str]:
    """One message for the classes too small for a point cloud (``few``: "class c: n"), one for those whose k-NN
    graph is nearly complete (``dense``: class, points, k used), whatever their number (at most 5 named)."""

    def named(items: list[str]) -> str:
        return ", ".join(items[:5]) + (f" and {len(items) - 5} more" if len(items) > 5 else "")

    messages = []
    if few:
        messages.append(
            f"{plural(len(few), 'class', 'classes')} ({named(few)} sampled inputs) below the 2 points a point cloud "
            "needs: skipped for the point-cloud view (raise `samples_per_class`, or give the validation set more "
            "inputs of those classes if it holds fewer)."
        )
    if dense:
        ks = sorted({k for _, _, k in dense})
        capped = (
            f" (k={k_asked} capped at each class's size - 1)"
            if isinstance(k_asked, int) and any(k < k_asked for _, _, k in dense)
            else ""
        )
        messages.append(
            f"k = {'/'.join(map(str, ks))}{capped} is at least half of the sampled points of "
            f"{plural(len(dense), 'class', 'classes')} ({named([f'class {c}: {n}' for c, n, _ in dense])}): the "
            "k-NN graph is nearly complete, so b0 = 1 there says nothing about the embedding; sample at least "
            f"{2 * max(ks) + 1} inputs per class (`samples_per_class`, and `max_samples` for all classes) or lower "
            "`k`."
        )
    return messages


def _check_classes(classes: Sequence[int]) -> list[int]:
    """``classes`` as distinct Python ints (a ``ValueError`` naming the first bad or repeated one)."""
    if isinstance(classes, (str, bytes)) or not isinstance(classes, Sequence | Tensor):
        raise ValueError(f"`classes` must be a sequence of integer class labels, got {classes!r}.")
    out: list[int] = []
    for c in classes:
        number = as_integer(c)
        if number is None:
            raise ValueError(
                f"`classes` must hold integer class labels (the values of the labels passed to `update`), got {c!r} "
                f"in {list(classes)!r}."
            )
        if number in out:
            raise ValueError(f"`classes` names class {number} twice ({list(classes)!r}); each class once.")
        out.append(number)
    return out


def _scale_message(extreme: str, scale: float) -> str:
    """The warning for a Euclidean Rips scale at which every class's cloud is one component without holes at every
    layer (``extreme="joined"``), or every point its own component (``"apart"``): the numbers say nothing."""
    what = (
        "joins every class's cloud into one component without holes at every watched layer (b0 = 1, b1 = 0)"
        if extreme == "joined"
        else "leaves every point of every class apart at every watched layer (b0 = the number of points)"
    )
    return (
        f"complex='rips' with metric='euclidean': scale={scale:g} {what}, so Omega is the same at every layer and "
        "the decay says nothing about the network. The Euclidean scale is in the activations' own units; choose it "
        "from their distances (e.g. a typical nearest-neighbour distance of a layer's cloud), or use "
        "metric='knn_hops' (Naitzat et al.'s scale-free metric, whose scale counts hops)."
    )


class LayerwiseTopology(MergeChecked):
    """Per-layer, per-class Betti numbers of a sample, Omega per layer and the decay over depth.

    Args:
        layers: the watched layers' names, in depth (execution) order.
        classes: the sample's class labels (sorted integers).
        config: the view and its settings (:class:`~lightning_topo.config.TopologyConfig`; default: defaults).
        **kwargs: passed to :class:`torchmetrics.Metric`.

    Feed it with :meth:`update` (one layer's values for a batch of sampled inputs, or ``problem=`` for a layer
    that cannot be computed); :meth:`compute` returns a :class:`TopologyResult`. :func:`evaluate_topology` runs
    a model on a sample and feeds a metric: what the callback and ``analyse`` do.

    Example:
        >>> m = LayerwiseTopology(["conv", "fc"], classes=[0, 1])
        >>> m.update("conv", torch.tensor([[3, 1, 0], [2, 0, 0]]), torch.tensor([0, 1]))
        >>> m.update("fc", torch.tensor([[1, 0, 0], [1, 0, 0]]), torch.tensor([0, 1]))
        >>> r = m.compute()
        >>> [layer.omega for layer in r.layers], [b.tolist() for b in r.layers[0].betti]
        ([3.0, 1.0], [[3.0, 1.0, 0.0], [2.0, 0.0, 0.0]])

        With persistence summaries (``TopologyConfig.persistence``), each batch brings them along:

        >>> cfg = TopologyConfig(persistence=["persistent_betti"], persistence_dims=[0])
        >>> m = LayerwiseTopology(["conv"], classes=[0, 1], config=cfg)
        >>> m.update("conv", torch.tensor([[3, 1, 0], [2, 0, 0]]), torch.tensor([0, 1]),
        ...          persistence=torch.tensor([[2.0], [1.0]]))
        >>> m.compute().layers[0].persistence["persistent_b0"].tolist()
        [2.0, 1.0]
    """

    is_differentiable = False
    higher_is_better: bool | None = None
    full_state_update = False
    merge_settings = ("layer_names", "classes", "config")

    def __init__(
        self, layers: Sequence[str], classes: Sequence[int], config: TopologyConfig | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.config = config if config is not None else TopologyConfig()
        self.layer_names = list(layers)
        self.classes = _check_classes(classes)
        n_layers, n_classes = len(self.layer_names), len(self.classes)
        self.add_settings_state()
        self.add_state("problem", torch.zeros(n_layers, dtype=torch.int64), dist_reduce_fx="sum")
        for i in range(n_layers):  # why a layer cannot be computed: UTF-8 bytes, each reason ended by a 0 byte
            self.add_state(f"reason_{i}", [], dist_reduce_fx="cat")
        if self.config.complex == "cubical":
            self.add_state("betti_sum", torch.zeros(n_layers, n_classes, 3, dtype=torch.int64), dist_reduce_fx="sum")
            self.add_state("count", torch.zeros(n_layers, n_classes, dtype=torch.int64), dist_reduce_fx="sum")
            self.add_state("constant", torch.zeros(n_layers, dtype=torch.int64), dist_reduce_fx="sum")
            if self.config.persistence is not None:
                shape = (n_layers, n_classes, len(self.config.persistence_keys))
                self.add_state("persistence_sum", torch.zeros(shape, dtype=torch.float64), dist_reduce_fx="sum")
        else:
            self.add_state("width", torch.zeros(n_layers, dtype=torch.int64), dist_reduce_fx="max")
            for i in range(n_layers):
                self.add_state(f"cloud_{i}", [], dist_reduce_fx="cat")
                self.add_state(f"labels_{i}", [], dist_reduce_fx="cat")
                self.add_state(f"positions_{i}", [], dist_reduce_fx="cat")

    def _layer(self, layer: str | int) -> int:
        if isinstance(layer, int) and not isinstance(layer, bool) and 0 <= layer < len(self.layer_names):
            return layer
        if layer in self.layer_names:
            return self.layer_names.index(layer)
        raise ValueError(f"unknown layer {layer!r}; this metric watches {self.layer_names}.")

    def class_index(self, labels: Tensor) -> Tensor:
        """Positions of ``labels`` in :attr:`classes` (a label outside them, or a float label that is not a whole
        number, is an error naming it)."""
        flat = class_labels(torch.as_tensor(labels)).reshape(-1).cpu()
        classes = torch.tensor(self.classes, dtype=torch.long)
        known, order = torch.sort(classes)
        at = torch.searchsorted(known, flat).clamp_(max=max(len(known) - 1, 0))
        unknown = known[at] != flat if len(known) else torch.ones_like(flat, dtype=torch.bool)
        if bool(unknown.any()):
            raise ValueError(f"label {int(flat[unknown][0])} is not one of this metric's classes {self.classes}.")
        return order[at]

    def update(  # type: ignore[override]
        self,
        layer: str | int,
        values: Tensor | None = None,
        labels: Tensor | None = None,
        positions: Tensor | None = None,
        *,
        problem: str | None = None,
        persistence: Tensor | None = None,
        constant: int | None = None,
    ) -> None:
        """Add one layer's values for a batch of sampled inputs, or mark the layer as unusable.

        Args:
            layer: the layer's name or index.
            values: cubical view: ``(B, 3)`` Betti numbers; point-cloud view: ``(B, d)`` embeddings.
            labels: ``(B,)`` class labels (values in :attr:`classes`).
            positions: ``(B,)`` positions of the inputs in the whole sample (point-cloud view: the cloud is put
                in sample order after a DDP gather, so ties in the k-NN graph break the same way; default
                ``0..B-1``).
            problem: instead of values: why the layer cannot be computed; it is then NaN on every rank.
            persistence: cubical view with ``config.persistence`` set (and only then): ``(B, S)`` persistence
                summaries of the same inputs, columns ``config.persistence_keys``.
            constant: cubical view: how many of the ``B`` inputs gave a volume of one value (a dead layer); where
                every sampled input does, :meth:`compute` warns that the layer's Betti numbers are by construction.
        """
        i = self._layer(layer)
        if problem is not None:
            self.problem[i] += 1
            text = torch.tensor([*problem.encode(), 0], dtype=torch.uint8, device=self.problem.device)
            getattr(self, f"reason_{i}").append(text)
            return
        if values is None or labels is None:
            raise ValueError("pass `values` and `labels` (or `problem=`).")
        index = self.class_index(labels)
        if self.config.complex == "cubical":
            _check_cubical_values(values, len(index))
            self._check_persistence(persistence, len(index))
            sums, counts = _betti_update(values, index, len(self.classes))
            self.betti_sum[i] += sums.to(self.betti_sum.device)
            self.count[i] += counts.to(self.count.device)
            if constant is not None:
                self.constant[i] += int(constant)
            if persistence is not None:
                sums, _ = _betti_update(persistence.to(torch.float64), index, len(self.classes))
                self.persistence_sum[i] += sums.to(self.persistence_sum.device)
            return
        if persistence is not None:
            raise ValueError("`persistence=` is for the cubical view; this metric computes the point-cloud view.")
        if positions is None:
            positions = torch.arange(len(index))
        device = self.problem.device
        # float64, as the distances are computed: a float32 copy would lose a cloud whose spread is small beside
        # its offset (the structure of a float64 model's embeddings at 1e-3 around 1e4).
        flat = values.detach().to(device, torch.float64).reshape(len(index), -1)
        self.width[i] = max(int(self.width[i]), flat.shape[1])
        getattr(self, f"cloud_{i}").append(flat.reshape(-1))
        getattr(self, f"labels_{i}").append(torch.as_tensor(labels).reshape(-1).to(device, torch.long))
        getattr(self, f"positions_{i}").append(torch.as_tensor(positions).reshape(-1).to(device, torch.long))

    def _check_persistence(self, persistence: Tensor | None, batch: int) -> None:
        keys = self.config.persistence_keys
        if persistence is None:
            if keys:
                raise ValueError(
                    f"this metric's config asks for persistence summaries {keys}: pass `persistence=` (B, {len(keys)}) "
                    "with the Betti numbers."
                )
            return
        if not keys:
            raise ValueError("`persistence=` was passed, but this metric's config has persistence=None.")
        if persistence.shape != (batch, len(keys)) or persistence.is_complex():
            raise ValueError(
                f"`persistence` must be real with shape (B, S) = ({batch}, {len(keys)}) (columns {keys}), got "
                f"{tuple(persistence.shape)}."
            )
        if not bool(torch.isfinite(persistence).all()):
            raise ValueError(
                "`persistence` holds NaN or Inf: the summaries of finite diagrams are finite unless a sum overflows "
                "float64 (total persistence of activations spanning most of its range); leave such inputs out."
            )

    def _sync_dist(self, dist_sync_fn: Any = None, process_group: Any = None) -> None:
        # Every rank must gather every list state with the same number of axes, also a rank that holds no input
        # for a layer: give such states a typed, empty 1-D tensor (clouds are stored flat for this reason).
        device = self.problem.device
        lists = [("reason", torch.uint8)]
        if self.config.complex == "rips":
            lists += [("cloud", torch.float64), ("labels", torch.long), ("positions", torch.long)]
        for i in range(len(self.layer_names)):
            for name, dtype in lists:
                state = getattr(self, f"{name}_{i}")
                if isinstance(state, list) and not state:
                    state.append(torch.zeros(0, dtype=dtype, device=device))
        if dist_sync_fn is None:
            super()._sync_dist(process_group=process_group)
        else:
            super()._sync_dist(dist_sync_fn, process_group)

    def compute(self) -> TopologyResult:  # type: ignore[override]
        """The :class:`TopologyResult` of everything added (synchronised across processes under DDP)."""
        layers: list[LayerTopology] = []
        warnings: list[str] = []
        extremes: list[str] = []  # per Rips layer: "joined", "apart" or "" (see _rips_layer)
        dims = self.config.betti_dims
        n_classes = len(self.classes)
        problem = self.problem.cpu()
        for i, name in enumerate(self.layer_names):
            if problem[i] > 0:
                why = self.problems.get(name, "a problem on another process")
                nan = torch.full((n_classes, dims), math.nan, dtype=torch.float64)
                keys = self.config.persistence_keys
                nans = {key: torch.full((n_classes,), math.nan, dtype=torch.float64) for key in keys} if keys else None
                layers.append(LayerTopology(name, nan, math.nan, problem=why, persistence=nans))
            elif self.config.complex == "cubical":
                sums, counts = self.betti_sum[i].cpu(), self.count[i].cpu()
                om = float(_omega_compute(sums, counts))
                if int(counts.sum()) > 0 and int(self.constant[i]) == int(counts.sum()):
                    warnings.append(
                        f"layer '{name}' gives every one of the {int(counts.sum())} sampled inputs a constant output "
                        "(one value throughout: dead ReLUs, a collapsed layer): its Betti numbers are the same for "
                        "every input by construction ((1, 0, 0) at the mean or median threshold), not a "
                        "simplification the network learned, and the decay over depth reads them as one."
                    )
                persistence = None
                if self.config.persistence is not None:
                    means = _betti_compute(self.persistence_sum[i].cpu(), counts)
                    persistence = {key: means[:, j] for j, key in enumerate(self.config.persistence_keys)}
                layers.append(LayerTopology(name, _betti_compute(sums, counts), om, persistence=persistence))
            else:
                layers.append(self._rips_layer(i, name, warnings, extremes))
        if extremes and len(set(extremes)) == 1 and self.config.metric == "euclidean":
            warnings.append(_scale_message(extremes[0], self.config.scale))
        bad = [layer for layer in layers if layer.problem is not None]
        if len(bad) == len(layers) > 1:
            # Not a layer to leave out: the model's activations themselves (a diverged model, or its inputs).
            reasons = sorted({str(layer.problem) for layer in bad})
            warnings.append(
                f"every watched layer ({len(bad)}) failed: {'; '.join(reasons)}; all values are NaN for this "
                "evaluation. The model or its inputs are at fault, not one layer: check the model's outputs for "
                "NaN/Inf (a diverged training run, a too-high learning rate) and its inputs."
            )
        else:
            for layer in bad:
                warnings.append(
                    f"layer '{layer.name}': {layer.problem}; its values are NaN for this evaluation (and so are "
                    "theta and the decay rate, fitted over every watched layer); to leave it out, list the others "
                    "in `layers=[...]`."
                )
        th, decay, why = decays(torch.tensor([layer.omega for layer in layers], dtype=torch.float64))
        if why is not None:
            warnings.append(why)
        return TopologyResult(layers=layers, classes=list(self.classes), theta=th, decay_rate=decay, warnings=warnings)

    def result(self) -> TopologyResult:
        """What :meth:`compute` returns, without torchmetrics' wrapper where it has nothing to do.

        ``compute()`` goes through torchmetrics' wrapper: it synchronises the states under DDP, then walks the
        value twice (deep-copying each dataclass in it) to turn 1-element tensors into 0-d ones and clone every
        tensor: about half a millisecond for 3 layers on 2 cores, a tenth of the digits CNN's whole evaluation.
        When the states are not synchronised (``sync_on_compute=False``, or no distributed run), this calls the
        computation itself and makes the same 1-element tensors 0-d: an equal value (the computation builds new
        tensors, so there is nothing to clone).
        Otherwise, or before any update (torchmetrics warns then), it is ``compute()``. Cached as ``compute()``.
        """
        if self._computed is not None or not self.update_called or self._synchronises():
            return self.compute()
        value = _squeeze_scalars(type(self).compute(self))  # the class's compute: not torchmetrics' wrapper
        if self.compute_with_cache:
            self._computed = value
        return value

    def _synchronises(self) -> bool:
        """Whether ``compute()`` gathers the states across processes (torchmetrics' ``Metric.sync`` test)."""
        if not self._to_sync:
            return False
        available = self.distributed_available_fn
        return bool(available()) if callable(available) else False

    def plot(self, val: TopologyResult | None = None, ax: Any = None) -> tuple[Any, Any]:
        """Plot Betti numbers and Omega against depth (layer names on the x axis), as torchmetrics plots do.

        Args:
            val: a :meth:`compute` result; ``None`` plots the current ``compute()``.
            ax: a matplotlib axis to draw on (a new figure otherwise).

        Returns:
            ``(fig, ax)`` (``fig`` is ``None`` when ``ax`` was given).

        Example:
            >>> m = LayerwiseTopology(["conv", "fc"], classes=[0])
            >>> m.update("conv", torch.tensor([[3, 1, 0]]), torch.tensor([0]))
            >>> m.update("fc", torch.tensor([[1, 0, 0]]), torch.tensor([0]))
            >>> fig, ax = m.plot()
            >>> [line.get_label() for line in ax.get_lines()]
            ['b0', 'b1', 'b2', 'Omega']
        """
        import matplotlib.pyplot as plt  # lazy: matplotlib is optional

        result = self.compute() if val is None else val
        fig, ax = plt.subplots() if ax is None else (None, ax)
        depth = list(range(1, len(result.layers) + 1))
        if result.layers:
            means = torch.stack([torch.nanmean(layer.class_betti(), dim=0) for layer in result.layers])
            for k in range(means.shape[1]):
                ax.plot(depth, means[:, k].tolist(), marker="o", label=f"b{k}")
        ax.plot(depth, result.omega.tolist(), marker="s", linewidth=2, label="Omega")
        ax.set_xticks(depth, [layer.name for layer in result.layers], rotation=45, ha="right")
        ax.set_xlabel("layer (depth order)")
        ax.set_ylabel("mean over classes")
        ax.set_title(f"decay rate {result.decay_rate:.3f}, theta {result.theta:.3f}")
        ax.legend()
        ax.grid(True, alpha=0.3)
        return fig, ax

    @property
    def problems(self) -> dict[str, str]:
        """``{layer: why}`` for the layers marked with ``update(..., problem=...)`` (on any process, once synced:
        the reasons are metric states); the first reason of each layer."""
        out: dict[str, str] = {}
        for i, name in enumerate(self.layer_names):
            data = self._state_cat(f"reason_{i}")
            if data is not None and data.numel():
                out[name] = bytes(data.tolist()).split(b"\0")[0].decode(errors="replace")
        return out

    def _state_cat(self, name: str) -> Tensor | None:
        value = getattr(self, name)
        if isinstance(value, Tensor):  # synchronised: already concatenated
            return value.cpu()
        return torch.cat(value).cpu() if value else None

    def _rips_layer(self, i: int, name: str, warnings: list[str], extremes: list[str]) -> LayerTopology:
        """One layer's per-class Rips Betti numbers; appends to ``extremes`` whether the scale joined every class's
        cloud into one component without holes ("joined"), left every point apart ("apart"), or neither ("")."""
        cloud, labels, positions = (self._state_cat(f"{s}_{i}") for s in ("cloud", "labels", "positions"))
        dims = self.config.betti_dims
        per_class = torch.full((len(self.classes), dims), math.nan, dtype=torch.float64)
        if cloud is None or labels is None or positions is None or not len(labels):
            return LayerTopology(name, per_class, math.nan, problem="no sampled input reached this layer")
        order = torch.argsort(positions)
        cloud, labels = cloud.reshape(len(labels), int(self.width[i]))[order], labels[order]
        if len(labels) > 1 and bool((cloud == cloud[0]).all()):
            warnings.append(
                f"layer '{name}' gives every one of the {len(labels)} sampled inputs the same output (dead ReLUs, a "
                "collapsed layer): each class's cloud is one point, so its Betti numbers are (1, 0, 0) by "
                "construction, not a simplification the network learned, and the decay over depth reads them as one."
            )
        few: list[str] = []  # classes with fewer than 2 points, and those whose k-NN graph is nearly complete
        flags: list[str] = []
        dense: list[tuple[int, int, int]] = []
        for j, c in enumerate(self.classes):
            points = cloud[labels == c]
            if len(points) < 2:
                few.append(f"class {c}: {len(points)}")
                continue
            k = self.config.k_for(len(points))
            if self.config.metric == "knn_hops" and 2 * k >= len(points):
                dense.append((c, len(points), k))
            per_class[j] = self._rips(points)
            joined = per_class[j, 0] == 1 and not bool(per_class[j, 1:].any())
            flags.append("joined" if joined else "apart" if per_class[j, 0] == len(points) else "")
        extremes.append(flags[0] if flags and len(set(flags)) == 1 else "")
        for message in _cloud_messages(few, dense, self.config.k):
            if message not in warnings:
                warnings.append(message)
        present = (~torch.isnan(per_class).any(dim=1)).to(torch.int64)  # classes with a value, each a mean already
        om = float(_omega_compute(torch.nan_to_num(per_class), present))
        return LayerTopology(name, per_class, om)

    def _rips(self, points: Tensor) -> Tensor:
        cfg = self.config
        kwargs: dict[str, Any] = {"k": cfg.k_for(points.shape[0])} if cfg.metric == "knn_hops" else {}
        return rips_betti(points, cfg.scale, maxdim=cfg.maxdim, metric=cfg.metric, **kwargs).to(torch.float64).cpu()
