"""The functional core: pure, batched, device-agnostic functions on tensors (no Lightning import).

* :func:`cubical_betti` — Betti numbers of sublevel sets of activation volumes (cubical view);
  :func:`betti_curves` — the same at many thresholds at once.
* :func:`h0_persistence`, :func:`knn_hop_distances`, :func:`rips_betti` — the point-cloud (Rips) view.
* :func:`omega`, :func:`theta`, :func:`normalised_decay` — topological complexity and its decay.
"""

from lightning_topo.complexity import normalised_decay, omega, theta
from lightning_topo.cubical import cubical_betti
from lightning_topo.cubical_curves import betti_curves
from lightning_topo.rips import h0_persistence, knn_hop_distances, rips_betti

__all__ = [
    "betti_curves",
    "cubical_betti",
    "h0_persistence",
    "knn_hop_distances",
    "normalised_decay",
    "omega",
    "rips_betti",
    "theta",
]
