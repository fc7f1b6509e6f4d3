"""`PersistenceSummaries`: per-class means of persistence-diagram summaries, a torchmetrics ``Metric`` for the
cubical view of a single layer inside any LightningModule (the layerwise equivalent is
:class:`~lightning_topo.metrics.LayerwiseTopology` with ``TopologyConfig.persistence`` set).

Its states are per-class float64 sums of the per-input summaries and int64 sample counts, reduced with
``dist_reduce_fx="sum"`` (``_betti_update`` / ``_betti_compute`` of :mod:`lightning_topo.functional.statistics`,
as :class:`~lightning_topo.metrics.BettiNumbers`): under DDP the value computed from the synchronised states is
the single-process value on all the data (up to the order of float64 additions).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from lightning_topo.config import TopologyConfig
from lightning_topo.functional import persistence_summaries, sublevel_thresholds
from lightning_topo.functional._checks import check_int
from lightning_topo.functional.persistence import PersistenceDiagrams
from lightning_topo.functional.statistics import _betti_compute, _betti_update
from lightning_topo.functional.summaries import SUMMARY_KINDS
from lightning_topo.metrics.betti import DEFAULT_THRESHOLD, MergeChecked, _check_labels

__all__ = ["PersistenceSummaries"]


class PersistenceSummaries(MergeChecked):
    """Mean persistence summaries of activation volumes per class: total persistence, persistence entropy and
    persistent Betti numbers per homology dimension (:mod:`lightning_topo.functional.summaries`).

    Args:
        num_classes: number of classes C (labels in ``[0, C)``); default 1 (no labels needed).
        summaries: which of ``"total_persistence"``, ``"entropy"``, ``"persistent_betti"`` (default: all; a
            string for one).
        dims: the homology dimensions (default ``(0, 1, 2)``; an int for one).
        min_persistence: ``"persistent_betti"``: the shortest lifetime counted, as a fraction of each volume's
            range, in ``[0, 1]``.
        threshold: ``"persistent_betti"``: the threshold rule, as :class:`~lightning_topo.config.TopologyConfig`'s
            (default ``"mean"``: each volume's own mean).
        **kwargs: passed to :class:`torchmetrics.Metric`.

    ``compute()`` returns ``{name: value}`` with the names of ``TopologyConfig.persistence_keys``
    (``total_persistence_{k}``, ``persistence_entropy_{k}``, ``persistent_b{k}``); each value is float64
    ``(num_classes,)`` (NaN for classes without samples), or a scalar when ``num_classes == 1``.

    Example:
        >>> ring = torch.ones(1, 5, 5)
        >>> ring[0, 1:4, 1:4] = 0.0
        >>> ring[0, 2, 2] = 1.0  # a square of zeros around a 1: one loop, born at 0, dying at 1
        >>> m = PersistenceSummaries(summaries=["total_persistence", "persistent_betti"], dims=[1])
        >>> m.update(ring)
        >>> {k: v.item() for k, v in m.compute().items()}
        {'total_persistence_1': 1.0, 'persistent_b1': 1.0}
    """

    is_differentiable = False
    higher_is_better: bool | None = None
    full_state_update = False
    merge_settings = ("num_classes", "config")

    summary_sum: Tensor
    count: Tensor

    def __init__(
        self,
        num_classes: int = 1,
        summaries: str | Sequence[str] = SUMMARY_KINDS,
        dims: int | Sequence[int] = (0, 1, 2),
        min_persistence: float = 0.1,
        threshold: Any = DEFAULT_THRESHOLD,
        **kwargs: Any,
    ) -> None:
        num_classes = check_int(num_classes, "num_classes", 1)
        # TopologyConfig checks the arguments once, with its messages (a ConfigError is a ValueError).
        self.config = TopologyConfig(
            persistence=summaries if isinstance(summaries, str) else list(summaries),
            persistence_dims=dims,
            min_persistence=min_persistence,
            threshold=threshold,
        )
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.keys = self.config.persistence_keys
        self.add_settings_state()
        self.add_state("summary_sum", torch.zeros(num_classes, len(self.keys), dtype=torch.float64), "sum")
        self.add_state("count", torch.zeros(num_classes, dtype=torch.int64), dist_reduce_fx="sum")

    def update(
        self,
        volumes: Tensor | None = None,
        labels: Tensor | None = None,
        *,
        diagrams: PersistenceDiagrams | None = None,
        thresholds: Tensor | float | None = None,
    ) -> None:
        """Add a batch.

        Args:
            volumes: ``(B, *spatial)`` activation volumes (1–3 spatial axes, as
                :func:`~lightning_topo.functional.cubical_betti`); their diagrams are computed with
                ``cubical_persistence``.
            labels: integer class labels ``(B,)`` in ``[0, num_classes)``; may be omitted when ``num_classes == 1``.
            diagrams: precomputed diagrams of the batch instead of ``volumes`` (their ``computed_dims`` must hold
                ``dims``).
            thresholds: with ``diagrams`` and ``"persistent_betti"``: a number or ``(B,)`` thresholds (default: the
                ``threshold`` rule when it is a number; a rule that reads the volumes needs ``volumes``).
        """
        cfg = self.config
        if (volumes is None) == (diagrams is None):
            raise ValueError("pass exactly one of `volumes` and `diagrams=` (got both or neither).")
        if isinstance(volumes, Tensor) and volumes.ndim > 1 and volumes.shape[0] == 0:
            return  # an empty batch adds nothing
        if diagrams is None:
            from lightning_topo.functional import cubical_persistence

            thresholds = sublevel_thresholds(volumes, cfg.threshold)  # type: ignore[arg-type]
            diagrams = cubical_persistence(volumes, dims=cfg.persistence_dims)
        elif thresholds is None:
            if "persistent_betti" in (cfg.persistence or ()) and not isinstance(cfg.threshold, (int, float)):
                raise ValueError(
                    f"the threshold rule {cfg.threshold!r} reads the volumes: pass `thresholds=` with `diagrams=`, "
                    "or pass `volumes`."
                )
            thresholds = float(cfg.threshold) if isinstance(cfg.threshold, (int, float)) else 0.0
        values = persistence_summaries(
            diagrams, thresholds, cfg.persistence or (), cfg.min_persistence, cfg.persistence_dims
        ).to(self.summary_sum.device)
        lab = _check_labels(labels, values.shape[0], self.num_classes, self.summary_sum.device)
        sums, counts = _betti_update(values, lab, self.num_classes)
        self.summary_sum += sums
        self.count += counts

    def compute(self) -> dict[str, Tensor]:  # type: ignore[override]
        """``{name: per-class means (num_classes,)}``, or scalars for a single class."""
        means = _betti_compute(self.summary_sum, self.count)
        return {key: means[0, j] if self.num_classes == 1 else means[:, j] for j, key in enumerate(self.keys)}

    def plot(self, val: dict[str, Tensor] | Sequence[dict[str, Tensor]] | None = None, ax: Any = None) -> Any:
        """Plot the summaries (a point per summary and class), or a sequence of ``compute()`` results over steps (a
        line per summary and class): torchmetrics' standard plot of a dict of values; ``val`` and ``ax`` and the
        ``(fig, ax)`` returned as in :meth:`BettiNumbers.plot <lightning_topo.metrics.BettiNumbers.plot>`.

        Example:
            >>> m = PersistenceSummaries(summaries=["total_persistence"], dims=[0])
            >>> m.update(torch.rand(2, 5, 5))
            >>> fig, ax = m.plot()
        """
        return self._plot(val, ax)
