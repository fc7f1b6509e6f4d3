"""torchmetrics ``Metric`` classes over the functional core, for use inside any LightningModule.

Their states are per-class sums and counts reduced with ``dist_reduce_fx="sum"``, so under DDP the
value computed after synchronisation equals a single-process computation on all the data.

Example:
    >>> import torch
    >>> metric = TopologicalComplexity(num_classes=2, threshold=0.0)
    >>> metric.update(torch.relu(torch.randn(8, 4, 6, 6)), torch.tensor([0, 1] * 4))
    >>> bool(metric.compute() >= 1)
    True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from lightning_topo.complexity import normalised_decay, theta
from lightning_topo.cubical import cubical_betti

__all__ = ["BettiNumbers", "DecayRate", "TopologicalComplexity"]

DECAY_KINDS = ("normalised", "theta")


def _check_num_classes(num_classes: int) -> None:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"`num_classes` must be an integer >= 1, got {num_classes!r}.")


def _check_threshold(threshold: float) -> None:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or math.isnan(threshold):
        raise ValueError(f"`threshold` must be a real number (±inf allowed), got {threshold!r}.")


def _labels_for(labels: Tensor | None, batch: int, num_classes: int, device: torch.device) -> Tensor:
    if labels is None:
        return torch.zeros(batch, dtype=torch.long, device=device)
    labels = torch.as_tensor(labels, device=device).long().reshape(-1)
    if labels.numel() != batch:
        raise ValueError(f"`labels` has {labels.numel()} entries for {batch} samples.")
    bad = (labels < 0) | (labels >= num_classes)
    if bool(bad.any()):
        raise ValueError(
            f"label {int(labels[bad][0])} is out of range for num_classes={num_classes}; labels must be in "
            f"[0, {num_classes - 1}]."
        )
    return labels


class _PerClassBetti(Metric):
    """Shared state: per-class sums of Betti numbers and sample counts."""

    is_differentiable = False
    higher_is_better: bool | None = False
    full_state_update = False

    def __init__(self, num_classes: int = 1, threshold: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        _check_num_classes(num_classes)
        _check_threshold(threshold)
        self.num_classes = num_classes
        self.threshold = float(threshold)
        self.add_state("betti_sum", torch.zeros(num_classes, 3, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros(num_classes, dtype=torch.float64), dist_reduce_fx="sum")

    def update(
        self, volumes: Tensor | None = None, labels: Tensor | None = None, *, betti: Tensor | None = None
    ) -> None:
        """Add a batch: ``volumes (B, *spatial)`` (Betti numbers computed at ``threshold``) or precomputed
        ``betti (B, 3)``; optional integer ``labels (B,)`` in ``[0, num_classes)``."""
        if (volumes is None) == (betti is None):
            raise ValueError("pass exactly one of `volumes` and `betti=`.")
        if betti is None:
            betti = cubical_betti(volumes, self.threshold)  # type: ignore[arg-type]
        betti = betti.to(self.betti_sum.device, torch.float64)
        if betti.ndim != 2 or betti.shape[1] != 3:
            raise ValueError(f"`betti` must have shape (B, 3), got {tuple(betti.shape)}.")
        lab = _labels_for(labels, betti.shape[0], self.num_classes, self.betti_sum.device)
        self.betti_sum.index_add_(0, lab, betti)
        self.count.index_add_(0, lab, torch.ones_like(lab, dtype=torch.float64))

    def _per_class_mean(self) -> Tensor:
        return self.betti_sum / self.count.unsqueeze(1)  # NaN for a class with no samples


class BettiNumbers(_PerClassBetti):
    """Mean Betti numbers ``(b0, b1, b2)`` of sublevel sets, per class.

    ``compute()`` returns ``(num_classes, 3)`` (NaN rows for classes without samples), or ``(3,)`` when
    ``num_classes == 1``. Lower = simpler embedding (``higher_is_better = False``).

    Example:
        >>> m = BettiNumbers(threshold=0.5)
        >>> m.update(torch.tensor([[[0.0, 1.0, 0.0]]]))
        >>> m.compute().tolist()
        [2.0, 0.0, 0.0]
    """

    def compute(self) -> Tensor:
        mean = self._per_class_mean()
        return mean[0] if self.num_classes == 1 else mean

    def plot(self, val: Tensor | Sequence[Tensor] | None = None, ax: Any = None) -> Any:
        """Plot the (per-class) mean Betti numbers, or a sequence of them over time."""
        return self._plot(val, ax)


class TopologicalComplexity(_PerClassBetti):
    """Omega: the mean of ``b0 + b1 + b2`` within each class, then over the classes with samples.

    Equals ``lightning_topo.functional.omega(betti, labels)``. Lower = simpler embedding.
    """

    def compute(self) -> Tensor:
        mean = self._per_class_mean().sum(dim=1)
        present = self.count > 0
        return mean[present].mean() if bool(present.any()) else torch.tensor(math.nan, dtype=torch.float64)

    def plot(self, val: Tensor | Sequence[Tensor] | None = None, ax: Any = None) -> Any:
        """Plot Omega, or a sequence of Omega values over time."""
        return self._plot(val, ax)


class DecayRate(Metric):
    """The decay of Omega over depth, from per-layer, per-class Betti sums.

    Args:
        num_layers: watched layers L (>= 2), in depth order.
        num_classes: classes (labels in ``[0, num_classes)``).
        kind: ``"normalised"`` (default; :func:`~lightning_topo.complexity.normalised_decay`, higher = more
            simplification) or ``"theta"`` (the paper's score, lower ranked better for transfer).
        threshold: sublevel threshold when ``update`` gets volumes.

    ``update(betti_per_layer (L, B, 3), labels)`` adds a batch for every layer; ``update(betti (B, 3),
    labels, layer=i)`` or ``update(volumes, labels, layer=i)`` adds one layer.

    Example:
        >>> m = DecayRate(num_layers=3)
        >>> m.update(torch.tensor([[[5, 2, 0]], [[3, 1, 0]], [[1, 0, 0]]]))
        >>> round(m.compute().item(), 3)
        0.856
    """

    is_differentiable = False
    # The direction depends on `kind` (normalised: higher is better; theta: lower ranked better), and
    # torchmetrics fixes this attribute per class, so it is left undetermined here.
    higher_is_better: bool | None = None
    full_state_update = False

    def __init__(
        self, num_layers: int, num_classes: int = 1, kind: str = "normalised", threshold: float = 0.0, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 2:
            raise ValueError(f"`num_layers` must be an integer >= 2 (a decay needs two layers), got {num_layers!r}.")
        _check_num_classes(num_classes)
        _check_threshold(threshold)
        if kind not in DECAY_KINDS:
            raise ValueError(f"`kind` must be one of {DECAY_KINDS}, got {kind!r}.")
        self.num_layers, self.num_classes, self.kind, self.threshold = num_layers, num_classes, kind, float(threshold)
        self.add_state("betti_sum", torch.zeros(num_layers, num_classes, 3, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros(num_layers, num_classes, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, betti: Tensor, labels: Tensor | None = None, layer: int | None = None) -> None:
        """Add Betti numbers (or volumes, with ``layer=``) of a batch."""
        if layer is None:
            if betti.ndim != 3 or betti.shape[0] != self.num_layers or betti.shape[2] != 3:
                raise ValueError(
                    f"`betti` must have shape (L, B, 3) = ({self.num_layers}, B, 3), got {tuple(betti.shape)}; "
                    "pass `layer=` to add one layer."
                )
            for i in range(self.num_layers):
                self.update(betti[i], labels, layer=i)
            return
        if not 0 <= layer < self.num_layers:
            raise ValueError(f"`layer` must be in [0, {self.num_layers}), got {layer!r}.")
        if not (betti.ndim == 2 and betti.shape[1] == 3 and not betti.is_floating_point()):
            betti = cubical_betti(betti, self.threshold)  # volumes
        betti = betti.to(self.betti_sum.device, torch.float64)
        lab = _labels_for(labels, betti.shape[0], self.num_classes, self.betti_sum.device)
        self.betti_sum[layer].index_add_(0, lab, betti)
        self.count[layer].index_add_(0, lab, torch.ones_like(lab, dtype=torch.float64))

    def omega_per_layer(self) -> Tensor:
        """``(L,)`` Omega per layer from the (reduced) states."""
        per_class = self.betti_sum.sum(dim=2) / self.count
        present = self.count > 0
        return torch.stack([per_class[i][present[i]].mean() for i in range(self.num_layers)])

    def compute(self) -> Tensor:
        curve = self.omega_per_layer()
        return theta(curve) if self.kind == "theta" else normalised_decay(curve)

    def plot(self, val: Tensor | Sequence[Tensor] | None = None, ax: Any = None) -> Any:
        """Plot the decay rate, or a sequence of decay rates over time."""
        return self._plot(val, ax)
