"""The engine: where Betti numbers are computed. Pure, batched, device-agnostic functions on tensors.

* :func:`cubical_betti` — Betti numbers of sublevel sets of activation volumes (cubical view; ``cubical.py``,
  with connected components in ``components.py``); :func:`betti_curves` — the same at many thresholds
  (``curves.py``); :func:`sublevel_thresholds` — the threshold rules (``thresholds.py``).
* :func:`cubical_persistence` — persistence diagrams of the same sublevel filtration, as
  :class:`PersistenceDiagrams` (``persistence.py``; compiled kernels in ``_persistence_kernels.py``, numba; the
  ``backend="torch"`` contraction on the volumes' device in ``_contracted_persistence.py``);
  :func:`total_persistence`, :func:`persistence_entropy`, :func:`persistent_betti`,
  :func:`persistence_summaries` — summaries of them per volume and dimension (``summaries.py``).
* :func:`h0_persistence`, :func:`knn_hop_distances`, :func:`rips_betti` — the point-cloud view (``rips.py``).
* :func:`omega`, :func:`theta`, :func:`normalised_decay` — topological complexity and its decay
  (``complexity.py``); :func:`class_statistics` and its ``_betti_update`` / ``_betti_compute`` /
  ``_omega_compute`` — the per-class sums and counts every metric keeps (``statistics.py``).

This package imports torch, numpy, scipy, cc3d and giotto-ph only (lazily where they are heavy); never lightning,
torchmetrics, matplotlib or wandb, and nothing else of lightning_topo. Names load on first use (PEP 562).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from lightning_topo.functional._checks import MissingDependencyError, NonFiniteError
    from lightning_topo.functional.complexity import normalised_decay, omega, theta
    from lightning_topo.functional.components import count_components
    from lightning_topo.functional.cubical import cubical_betti
    from lightning_topo.functional.curves import betti_curves
    from lightning_topo.functional.persistence import PersistenceDiagrams, cubical_persistence
    from lightning_topo.functional.rips import h0_persistence, knn_hop_distances, rips_betti
    from lightning_topo.functional.statistics import class_statistics
    from lightning_topo.functional.summaries import (
        persistence_entropy,
        persistence_summaries,
        persistent_betti,
        total_persistence,
    )
    from lightning_topo.functional.thresholds import sublevel_thresholds

_EXPORTS = {
    "MissingDependencyError": "_checks",
    "NonFiniteError": "_checks",
    "PersistenceDiagrams": "persistence",
    "betti_curves": "curves",
    "class_statistics": "statistics",
    "count_components": "components",
    "cubical_betti": "cubical",
    "cubical_persistence": "persistence",
    "h0_persistence": "rips",
    "knn_hop_distances": "rips",
    "normalised_decay": "complexity",
    "omega": "complexity",
    "persistence_entropy": "summaries",
    "persistence_summaries": "summaries",
    "persistent_betti": "summaries",
    "rips_betti": "rips",
    "sublevel_thresholds": "thresholds",
    "summary_keys": "summaries",
    "theta": "complexity",
    "total_persistence": "summaries",
}

__all__ = [
    "MissingDependencyError",
    "NonFiniteError",
    "PersistenceDiagrams",
    "betti_curves",
    "class_statistics",
    "count_components",
    "cubical_betti",
    "cubical_persistence",
    "h0_persistence",
    "knn_hop_distances",
    "normalised_decay",
    "omega",
    "persistence_entropy",
    "persistence_summaries",
    "persistent_betti",
    "rips_betti",
    "sublevel_thresholds",
    "summary_keys",
    "theta",
    "total_persistence",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
