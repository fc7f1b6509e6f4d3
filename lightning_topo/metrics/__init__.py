"""torchmetrics states of the topology: per-layer, per-class sums and counts (``dist_reduce_fx="sum"``).

* :class:`LayerwiseTopology` (``layerwise.py``) — every watched layer of a model on a fixed sample, both
  views; the callback and :func:`~lightning_topo.analysis.analyse` feed it
  (:func:`lightning_topo.analysis.evaluate_topology`, which runs the model: a metric never does), so their
  numbers are the metric's numbers, and DDP combines its states.
* :class:`BettiNumbers`, :class:`TopologicalComplexity`, :class:`DecayRate` (``betti.py``) — the cubical view for
  use inside any LightningModule; :class:`PersistenceSummaries` (``persistence.py``) — summaries of the
  persistence diagrams of a layer's activation volumes (total persistence, entropy, persistent Betti numbers).
"""

from lightning_topo.metrics.betti import DECAY_KINDS, BettiNumbers, DecayRate, TopologicalComplexity
from lightning_topo.metrics.layerwise import LayerTopology, LayerwiseTopology, TopologyResult
from lightning_topo.metrics.persistence import PersistenceSummaries

__all__ = [
    "DECAY_KINDS",
    "BettiNumbers",
    "DecayRate",
    "LayerTopology",
    "LayerwiseTopology",
    "PersistenceSummaries",
    "TopologicalComplexity",
    "TopologyResult",
]
