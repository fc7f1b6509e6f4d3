"""The functional core: pure, batched, device-agnostic functions on tensors (no Lightning import).

* :func:`cubical_betti` — Betti numbers of sublevel sets of activation volumes (cubical view).
* :func:`omega`, :func:`theta`, :func:`normalised_decay` — topological complexity and its decay.
"""

from lightning_topo.complexity import normalised_decay, omega, theta
from lightning_topo.cubical import cubical_betti

__all__ = ["cubical_betti", "normalised_decay", "omega", "theta"]
