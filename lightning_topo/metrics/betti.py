"""torchmetrics ``Metric`` classes for the cubical view of single layers, for use inside any LightningModule.

* :class:`BettiNumbers` — mean ``(b0, b1, b2)`` of the sublevel sets of activation volumes, per class;
* :class:`TopologicalComplexity` — Omega: mean of ``b0 + b1 + b2`` per class, then over the classes seen;
* :class:`DecayRate` — the decay of Omega over depth (``normalised_decay`` or the paper's ``theta``).

Their states are per-class integer sums of Betti numbers and sample counts, reduced with
``dist_reduce_fx="sum"``: under DDP (or after :meth:`~torchmetrics.Metric.merge_state`) the value
computed from the synchronised states equals a single-process computation on all the data, and the
states are exact (int64) whatever ``set_dtype`` does to floating-point states.

Example:
    >>> import torch
    >>> metric = TopologicalComplexity(num_classes=2, threshold=0.0)
    >>> metric.update(torch.relu(torch.randn(8, 4, 6, 6)), torch.tensor([0, 1] * 4))
    >>> bool(metric.compute() >= 1)
    True
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import rank_zero_warn

from lightning_topo.config import TopologyConfig, describe_callable
from lightning_topo.functional import cubical_betti, normalised_decay, sublevel_thresholds, theta
from lightning_topo.functional._checks import check_int, class_labels, float_down
from lightning_topo.functional.statistics import _betti_compute, _betti_update, _omega_compute
from lightning_topo.functional.thresholds import check_threshold_rule

__all__ = ["DECAY_KINDS", "BettiNumbers", "DecayRate", "TopologicalComplexity"]

DECAY_KINDS: tuple[str, ...] = ("normalised", "theta")
"""Valid ``kind`` values of :class:`DecayRate`."""

_BETTI_NAMES = ("b0", "b1", "b2")
DEFAULT_THRESHOLD = TopologyConfig().threshold
"""The metric classes' default threshold rule: :class:`~lightning_topo.config.TopologyConfig`'s (``"mean"``), so
they give the callback's numbers on the same volumes."""


def _check_threshold(threshold: Any) -> Any:
    """The threshold rules of :class:`~lightning_topo.config.TopologyConfig`: "mean", "median", a number, a callable."""
    check_threshold_rule(threshold)
    return float_down(threshold) if isinstance(threshold, int) else threshold


def check_mergeable(metric: Metric, incoming: dict[str, Any] | Metric, settings: Sequence[str]) -> None:
    """Raise a ``ValueError`` naming what differs unless ``incoming`` (a metric or its states) can be merged into
    ``metric`` by :meth:`~torchmetrics.Metric.merge_state`: the same class and ``settings`` (a metric), states of
    the same shapes (a dict). Summing the states of a ``threshold="mean"`` and a ``threshold=0.0`` metric, or of
    another number of classes, would mix statistics of different things."""
    if isinstance(incoming, Metric):
        if type(incoming) is not type(metric):
            raise ValueError(f"cannot merge a {type(incoming).__name__} into a {type(metric).__name__}.")
        differ = [
            f"{n}={getattr(metric, n)!r} vs {getattr(incoming, n)!r}"
            for n in settings
            if getattr(metric, n) != getattr(incoming, n)
        ]
        if differ:
            raise ValueError(
                f"cannot merge {type(metric).__name__} states computed with other settings ({'; '.join(differ)}): "
                "merge only metrics built with the same arguments."
            )
        return
    if isinstance(incoming, dict):
        for name, value in incoming.items():
            mine = getattr(metric, name, None)
            if isinstance(value, Tensor) and isinstance(mine, Tensor) and value.shape != mine.shape:
                raise ValueError(
                    f"cannot merge state `{name}` of shape {tuple(value.shape)} into one of shape "
                    f"{tuple(mine.shape)}: the metrics were built with other settings."
                )


def _canonical(value: Any) -> str:
    """``value`` as text for :meth:`MergeChecked.add_settings_state`: equal for equal settings; a callable by its
    name and identity (two lambdas of one name are two rules)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return "(" + ",".join(f"{f.name}={_canonical(getattr(value, f.name))}" for f in dataclasses.fields(value)) + ")"
    if callable(value) and not isinstance(value, (str, type)):
        return f"{describe_callable(value)}#{id(value)}"
    return repr(value)


class MergeChecked(Metric):
    """A ``Metric`` whose :meth:`merge_state` first checks (:func:`check_mergeable`) that the incoming metric was
    built with the same ``merge_settings`` (attribute names), whose ``load_state_dict`` refuses states of other
    shapes, which keeps its exact states under ``set_dtype``, and which is never put in one compute group of a
    ``MetricCollection`` with a metric of other settings (:meth:`add_settings_state`)."""

    merge_settings: tuple[str, ...] = ()

    def add_settings_state(self) -> None:
        """Add a state named after ``merge_settings`` (call it once they are set). torchmetrics' ``MetricCollection``
        puts metrics whose states have the same names and values into one compute group and updates only one of
        them: two metrics of other thresholds whose first batch gave the same sums would then report the same
        numbers. States named apart are never grouped. (A 0-d int64, not saved in ``state_dict``.)"""
        text = "|".join(f"{name}={_canonical(getattr(self, name))}" for name in self.merge_settings)
        self._settings_state = f"settings_{zlib.crc32(text.encode()):08x}"
        self.add_state(self._settings_state, torch.zeros((), dtype=torch.int64), dist_reduce_fx="max", persistent=False)

    def state_dict(  # type: ignore[override]
        self, destination: dict[str, Any] | None = None, prefix: str = "", keep_vars: bool = False
    ) -> dict[str, Any]:
        """torchmetrics' ``state_dict``, never with the settings state (named after this process's objects)."""
        out = super().state_dict(destination=destination, prefix=prefix, keep_vars=keep_vars)
        out.pop(prefix + getattr(self, "_settings_state", ""), None)
        return out

    def merge_state(self, incoming_state: dict[str, Any] | Metric) -> None:
        """torchmetrics' ``merge_state``, refused (naming what differs) for a metric of other settings."""
        check_mergeable(self, incoming_state, self.merge_settings)
        if isinstance(incoming_state, dict) and hasattr(self, "_settings_state"):  # states of another process
            incoming_state = {self._settings_state: getattr(self, self._settings_state), **incoming_state}
        super().merge_state(incoming_state)

    def set_dtype(self, dst_type: str | torch.dtype) -> Metric:
        """Nothing changes: the states are exact sums and counts (int64; persistence sums float64) that a narrower
        type would round or overflow (a b0 of 70,000 is ``inf`` in float16); ``compute()`` returns float64."""
        return self

    def _apply(self, fn: Callable[[Tensor], Tensor], exclude_state: Sequence[str] = ()) -> Metric:
        """torchmetrics' ``_apply`` (``.to(...)``, ``.cuda()``), whose ``exclude_state`` leaves the float64 sums to
        this class: they follow the device only. ``.to(torch.bfloat16)`` (Lightning's ``"bf16-true"`` and
        ``"16-true"`` cast a LightningModule's metrics so) rounded them to 2-3 digits (or to ``inf``)."""
        exact = [k for k, v in self._defaults.items() if isinstance(v, Tensor) and v.dtype == torch.float64]
        this = super()._apply(fn, exclude_state=(*exclude_state, *exact))
        for key in exact:
            this._defaults[key] = this._defaults[key].to(this.device)
            setattr(this, key, getattr(this, key).to(this.device))
        return this

    def _load_from_state_dict(  # torch's hook for a module's own loading, as torchmetrics extends it
        self,
        state_dict: dict[str, Any],
        prefix: str,
        local_metadata: dict[str, Any],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        """torchmetrics' loading, refused (a ``ValueError``) for a state of another shape: one saved by a metric of
        another ``num_classes`` or other layers would be loaded as it is, and the next ``update`` fail."""
        for name, mine in self.metric_state.items():
            incoming = state_dict.get(prefix + name)
            if isinstance(incoming, Tensor) and isinstance(mine, Tensor) and incoming.shape != mine.shape:
                raise ValueError(
                    f"cannot load state `{name}` of shape {tuple(incoming.shape)} into this {type(self).__name__}'s "
                    f"of shape {tuple(mine.shape)}: it was saved by a metric built with other settings "
                    f"({', '.join(self.merge_settings)}); build this one with the same arguments."
                )
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )


def _check_betti(betti: Any, name: str = "betti") -> Tensor:
    """Validate precomputed Betti numbers ``(B, 3)``: non-negative and integer-valued; return int64."""
    if not isinstance(betti, Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor of shape (B, 3), got {type(betti).__name__}.")
    if betti.ndim != 2 or betti.shape[1] != 3:
        raise ValueError(f"`{name}` must have shape (B, 3), got {tuple(betti.shape)}.")
    if betti.shape[0] == 0:  # an empty batch adds nothing
        return betti.to(torch.int64)
    if betti.is_complex() or betti.dtype == torch.bool:
        raise ValueError(f"`{name}` must hold integer Betti numbers, got dtype {betti.dtype}.")
    if betti.is_floating_point() and not bool((torch.isfinite(betti) & (betti == betti.round())).all()):
        raise ValueError(f"`{name}` must hold integer Betti numbers; got non-integer or non-finite values.")
    if bool((betti < 0).any()):
        raise ValueError(f"`{name}` must hold non-negative Betti numbers, got a minimum of {betti.min().item()}.")
    return betti.to(torch.int64)


def _check_labels(labels: Any, batch: int, num_classes: int, device: torch.device) -> Tensor:
    """Labels ``(B,)`` in ``[0, num_classes)`` as int64 on ``device`` (all zeros when ``None`` and one class)."""
    if labels is None:
        if num_classes > 1:
            raise ValueError(
                f"`labels` are required when num_classes={num_classes} > 1 (integers in [0, {num_classes - 1}])."
            )
        return torch.zeros(batch, dtype=torch.long, device=device)
    try:
        labels = torch.as_tensor(labels)
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"`labels` must be integer class labels (B,), got {labels!r}.") from err
    labels = class_labels(labels).to(device).reshape(-1)
    if labels.numel() != batch:
        raise ValueError(f"`labels` has {labels.numel()} entries for {batch} samples; pass one label per sample.")
    bad = (labels < 0) | (labels >= num_classes)
    if bool(bad.any()):
        raise ValueError(
            f"label {int(labels[bad][0])} is out of range for num_classes={num_classes}; labels must be integers "
            f"in [0, {num_classes - 1}]."
        )
    return labels


def _looks_like_betti(volumes: object) -> bool:
    """An integer ``(B, 3)`` tensor passed as volumes: most likely Betti numbers given positionally."""
    return (
        isinstance(volumes, Tensor)
        and volumes.ndim == 2
        and volumes.shape[-1] == 3
        and not (volumes.is_floating_point() or volumes.is_complex())
    )


def _betti_of(volumes: Tensor | None, betti: Tensor | None, threshold: Any, device: torch.device) -> Tensor:
    """Exactly one of ``volumes`` / ``betti``; returns int64 ``(B, 3)`` on ``device``."""
    if (volumes is None) == (betti is None):
        raise ValueError("pass exactly one of `volumes` and `betti=` (got both or neither).")
    if betti is None:
        if isinstance(volumes, Tensor) and volumes.ndim > 1 and volumes.shape[0] == 0:
            return torch.zeros(0, 3, dtype=torch.int64, device=device)  # an empty batch adds nothing
        if _looks_like_betti(volumes):
            rank_zero_warn(
                f"`update` got an integer tensor of shape {tuple(volumes.shape)} as `volumes`, the first positional "  # type: ignore[union-attr]
                "argument: it is read as 1-D volumes of 3 voxels each, not as Betti numbers. To add precomputed Betti "
                "numbers pass them by keyword, `update(betti=..., labels=...)`; for volumes, pass a float tensor to "
                "silence this warning.",
                category=UserWarning,
            )
        betti = cubical_betti(volumes, sublevel_thresholds(volumes, threshold))  # type: ignore[arg-type]
    return _check_betti(betti).to(device)


def _plot_betti(val: Tensor | Sequence[Tensor], ax: Any, name: str) -> tuple[Any, Any]:
    """Plot ``(3,)`` / ``(C, 3)`` Betti means, or a sequence of them over steps (one line per b_k and class)."""
    import matplotlib.pyplot as plt  # lazy: matplotlib is optional

    fig, ax = plt.subplots() if ax is None else (None, ax)
    over_time = not isinstance(val, Tensor)
    values = torch.stack([torch.as_tensor(v) for v in val]) if over_time else val.unsqueeze(0)  # (T, [C,] 3)
    values = values.detach().cpu().to(torch.float64)
    if values.ndim == 2:
        values = values.unsqueeze(1)  # (T, 1, 3)
    steps, classes = values.shape[0], values.shape[1]
    for c in range(classes):
        for k, bname in enumerate(_BETTI_NAMES):
            label = bname if classes == 1 else f"class {c} {bname}"
            if over_time:
                ax.plot(range(steps), values[:, c, k], marker="o", markersize=6, linestyle="-", label=label)
            else:
                ax.plot(
                    [c + 0.2 * (k - 1)], [values[0, c, k]], marker="o", markersize=10, linestyle="None", label=label
                )
    if over_time:
        ax.set_xlabel("Step")
        ax.set_xticks(range(steps))
    else:
        ax.set_xlabel("Class")
        ax.set_xticks(range(classes))
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, 1.15), ncol=3, fancybox=True, shadow=True)
    ax.grid(True)
    ax.set_ylabel(name)
    return fig, ax


class _PerClassBetti(MergeChecked):
    """Shared state of :class:`BettiNumbers` and :class:`TopologicalComplexity`: per-class sums and counts."""

    is_differentiable = False
    higher_is_better: bool | None = False
    full_state_update = False
    merge_settings = ("num_classes", "threshold")

    betti_sum: Tensor
    count: Tensor

    def __init__(self, num_classes: int = 1, threshold: Any = DEFAULT_THRESHOLD, **kwargs: Any) -> None:
        num_classes = check_int(num_classes, "num_classes", 1)
        threshold = _check_threshold(threshold)
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.threshold = threshold
        self.add_settings_state()
        self.add_state("betti_sum", torch.zeros(num_classes, 3, dtype=torch.int64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros(num_classes, dtype=torch.int64), dist_reduce_fx="sum")

    def update(
        self, volumes: Tensor | None = None, labels: Tensor | None = None, *, betti: Tensor | None = None
    ) -> None:
        """Add a batch.

        Args:
            volumes: ``(B, *spatial)`` activation volumes (1–3 spatial axes); their Betti numbers are computed
                with :func:`~lightning_topo.functional.cubical_betti` at ``threshold``.
            labels: integer class labels ``(B,)`` in ``[0, num_classes)``; may be omitted when ``num_classes == 1``.
            betti: precomputed ``(B, 3)`` Betti numbers instead of ``volumes``.
        """
        b = _betti_of(volumes, betti, self.threshold, self.betti_sum.device)
        lab = _check_labels(labels, b.shape[0], self.num_classes, self.betti_sum.device)
        sums, counts = _betti_update(b, lab, self.num_classes)
        self.betti_sum += sums
        self.count += counts


class BettiNumbers(_PerClassBetti):
    """Mean Betti numbers ``(b0, b1, b2)`` of the sublevel sets ``{v <= threshold}``, per class.

    Args:
        num_classes: number of classes C (labels in ``[0, C)``); default 1 (no labels needed).
        threshold: the sublevel threshold rule used when ``update`` gets volumes: ``"mean"`` (the default, as
            ``TopologyConfig.threshold``: each volume's own mean), ``"median"``, a number or a callable
            ``volumes -> (B,)``.
        **kwargs: passed to :class:`torchmetrics.Metric`.

    ``compute()`` returns float64 ``(num_classes, 3)`` (NaN rows for classes without samples), or ``(3,)``
    when ``num_classes == 1``. Lower means a simpler embedding (``higher_is_better = False``).

    Example:
        >>> m = BettiNumbers()  # threshold "mean": each volume's own mean (here 1/3)
        >>> m.update(torch.tensor([[[0.0, 1.0, 0.0]]]))  # one 2-D volume: two separate sub-threshold voxels
        >>> m.compute().tolist()
        [2.0, 0.0, 0.0]
        >>> m2 = BettiNumbers(num_classes=2)
        >>> m2.update(betti=torch.tensor([[3, 1, 0], [1, 0, 0], [2, 0, 0]]), labels=torch.tensor([0, 0, 1]))
        >>> m2.compute().tolist()
        [[2.0, 0.5, 0.0], [2.0, 0.0, 0.0]]
    """

    def compute(self) -> Tensor:
        """Per-class means ``(num_classes, 3)``, or ``(3,)`` for a single class."""
        mean = _betti_compute(self.betti_sum, self.count)
        return mean[0] if self.num_classes == 1 else mean

    def plot(self, val: Tensor | Sequence[Tensor] | None = None, ax: Any = None) -> Any:
        """Plot the mean Betti numbers (per class), or a sequence of ``compute()`` results over steps.

        Args:
            val: a ``compute()`` result or a sequence of them; ``None`` plots the current ``compute()``.
            ax: a matplotlib axis to draw on (a new figure otherwise).

        Returns:
            ``(fig, ax)`` (``fig`` is ``None`` when ``ax`` was given), as torchmetrics plots do.

        Example:
            >>> m = BettiNumbers()
            >>> m.update(betti=torch.tensor([[2, 1, 0]]))
            >>> fig, ax = m.plot()
        """
        return _plot_betti(self.compute() if val is None else val, ax, self.__class__.__name__)


class TopologicalComplexity(_PerClassBetti):
    """Omega: the mean of ``b0 + b1 + b2`` within each class, then over the classes with samples.

    Equals :func:`lightning_topo.functional.omega` ``(betti, labels)`` on all the data seen (NaN before any
    update). Lower means a simpler embedding (``higher_is_better = False``); the floor of a
    well-separated class is 1 (one component, no holes).

    Args:
        num_classes: number of classes C (labels in ``[0, C)``); default 1 (no labels needed).
        threshold: the sublevel threshold rule used when ``update`` gets volumes: ``"mean"`` (the default, as
            ``TopologyConfig.threshold``: each volume's own mean), ``"median"``, a number or a callable
            ``volumes -> (B,)``.
        **kwargs: passed to :class:`torchmetrics.Metric`.

    Example:
        >>> m = TopologicalComplexity(num_classes=2)
        >>> m.update(betti=torch.tensor([[1, 0, 0], [3, 1, 0], [2, 0, 0]]), labels=torch.tensor([0, 0, 1]))
        >>> m.compute().item()
        2.25
    """

    def compute(self) -> Tensor:
        """Scalar float64 Omega (NaN when no sample was seen)."""
        return _omega_compute(self.betti_sum, self.count)

    def plot(self, val: Tensor | Sequence[Tensor] | None = None, ax: Any = None) -> Any:
        """Plot Omega, or a sequence of Omega values over steps (torchmetrics' standard scalar plot).

        Example:
            >>> m = TopologicalComplexity()
            >>> m.update(betti=torch.tensor([[2, 1, 0]]))
            >>> fig, ax = m.plot()
        """
        return self._plot(val, ax)


class DecayRate(MergeChecked):
    """The decay of Omega over depth, from per-layer, per-class sums of Betti numbers.

    Args:
        num_layers: the number of watched layers L (>= 2), in depth order.
        num_classes: number of classes C (labels in ``[0, C)``); default 1 (no labels needed).
        kind: ``"normalised"`` (default; :func:`~lightning_topo.functional.normalised_decay`, comparable across
            depths, higher = more simplification, ``higher_is_better = True``) or ``"theta"`` (the paper's
            score :func:`~lightning_topo.functional.theta`; lower went with better transfer,
            ``higher_is_better = False``; compare only equal L).
        threshold: the sublevel threshold rule used when ``update`` gets volumes: ``"mean"`` (the default, as
            ``TopologyConfig.threshold``: each volume's own mean), ``"median"``, a number or a callable
            ``volumes -> (B,)``.
        **kwargs: passed to :class:`torchmetrics.Metric`.

    ``update(betti_per_layer)`` with ``(L, B, 3)`` adds a batch for every layer; ``update(betti, layer=i)``
    with ``(B, 3)`` or ``update(volumes=..., layer=i)`` adds one layer (layers have different shapes, so
    volumes go one layer at a time). ``compute()`` forms Omega per layer (per class, then over the classes
    present at that layer) and returns the decay of that curve as a float64 scalar; every layer needs at
    least one sample. :meth:`omega_per_layer` returns the curve itself.

    Example:
        >>> m = DecayRate(num_layers=3)
        >>> m.update(torch.tensor([[[5, 2, 0]], [[3, 1, 0]], [[1, 0, 0]]]))
        >>> m.omega_per_layer().tolist()
        [7.0, 4.0, 1.0]
        >>> round(m.compute().item(), 3)
        0.856
        >>> DecayRate(num_layers=3, kind="theta").higher_is_better
        False
    """

    is_differentiable = False
    # Class default; each instance sets its own from `kind` (normalised: True, theta: False).
    higher_is_better: bool | None = None
    full_state_update = False
    merge_settings = ("num_layers", "num_classes", "kind", "threshold")

    betti_sum: Tensor
    count: Tensor

    def __init__(
        self,
        num_layers: int,
        num_classes: int = 1,
        kind: str = "normalised",
        threshold: Any = DEFAULT_THRESHOLD,
        **kwargs: Any,
    ) -> None:
        num_layers = check_int(num_layers, "num_layers", 2, why=" (a decay over depth needs at least two layers)")
        num_classes = check_int(num_classes, "num_classes", 1)
        if kind not in DECAY_KINDS:
            raise ValueError(f"`kind` must be one of {', '.join(map(repr, DECAY_KINDS))}, got {kind!r}.")
        threshold = _check_threshold(threshold)
        super().__init__(**kwargs)
        # torchmetrics guards `higher_is_better` against assignment; it is a constant of this instance.
        object.__setattr__(self, "higher_is_better", kind == "normalised")
        self.num_layers = num_layers
        self.num_classes = num_classes
        self.kind = kind
        self.threshold = threshold
        self.add_settings_state()
        self.add_state("betti_sum", torch.zeros(num_layers, num_classes, 3, dtype=torch.int64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros(num_layers, num_classes, dtype=torch.int64), dist_reduce_fx="sum")

    def update(
        self,
        betti: Tensor | None = None,
        labels: Tensor | None = None,
        *,
        layer: int | None = None,
        volumes: Tensor | None = None,
    ) -> None:
        """Add a batch.

        Args:
            betti: ``(L, B, 3)`` Betti numbers of every layer, or ``(B, 3)`` of one layer with ``layer=``.
            labels: integer class labels ``(B,)`` in ``[0, num_classes)``; may be omitted when ``num_classes == 1``.
            layer: index in ``[0, num_layers)`` of the single layer being added.
            volumes: ``(B, *spatial)`` activation volumes of layer ``layer`` instead of ``betti``.
        """
        if layer is None:
            if volumes is not None:
                raise ValueError("`volumes=` adds one layer: pass `layer=` too.")
            if not isinstance(betti, Tensor) or betti.ndim != 3 or betti.shape[0] != self.num_layers:
                shape = tuple(betti.shape) if isinstance(betti, Tensor) else type(betti).__name__
                raise ValueError(
                    f"`betti` must have shape (L, B, 3) = ({self.num_layers}, B, 3), got {shape}; "
                    "pass `layer=` to add a single layer."
                )
            rows = [_check_betti(betti[i]) for i in range(self.num_layers)]
            lab = _check_labels(labels, betti.shape[1], self.num_classes, self.betti_sum.device)
            for i, b in enumerate(rows):
                self._add(i, b.to(self.betti_sum.device), lab)
            return
        layer = check_int(layer, "layer", 0, self.num_layers - 1)
        b = _betti_of(volumes, betti, self.threshold, self.betti_sum.device)
        self._add(layer, b, _check_labels(labels, b.shape[0], self.num_classes, self.betti_sum.device))

    def _add(self, layer: int, betti: Tensor, labels: Tensor) -> None:
        sums, counts = _betti_update(betti, labels, self.num_classes)
        self.betti_sum[layer] += sums
        self.count[layer] += counts

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """``update`` and the decay of this batch alone: needs every layer (``(L, B, 3)``). A batch of one layer
        (``layer=``) has no decay of its own: that call is refused before the state changes; use ``update``."""
        if kwargs.get("layer") is not None:
            raise ValueError(
                f"DecayRate(...)(..., layer={kwargs['layer']}) would need the decay of one layer's batch, which does "
                "not exist; call `metric.update(..., layer=i)` for each layer, then `metric.compute()` (or call the "
                f"metric on Betti numbers of all {self.num_layers} layers at once, shape (L, B, 3))."
            )
        return super().forward(*args, **kwargs)

    def omega_per_layer(self) -> Tensor:
        """``(L,)`` float64 Omega per layer from the (synchronised) states; NaN for a layer without samples."""
        return _omega_compute(self.betti_sum, self.count)

    def compute(self) -> Tensor:
        """The decay (``kind``) of :meth:`omega_per_layer`, a float64 scalar."""
        empty = (self.count.sum(dim=1) == 0).nonzero().flatten().tolist()
        if empty:
            raise ValueError(
                f"layer(s) {empty} of {self.num_layers} have no samples: update every layer before compute()."
            )
        curve = self.omega_per_layer()
        return theta(curve) if self.kind == "theta" else normalised_decay(curve)

    def plot(self, val: Tensor | Sequence[Tensor] | None = None, ax: Any = None) -> Any:
        """Plot the decay rate, or a sequence of decay rates over steps (torchmetrics' standard scalar plot).

        Example:
            >>> m = DecayRate(num_layers=2)
            >>> m.update(torch.tensor([[[3, 0, 0]], [[1, 0, 0]]]))
            >>> fig, ax = m.plot()
        """
        return self._plot(val, ax)
