"""lightning-topo: layerwise topology of a network's embedding spaces, tracked while it trains."""

from lightning_topo import functional
from lightning_topo.analyse import analyse
from lightning_topo.callback import TopologyCallback
from lightning_topo.early_stopping import TopologyEarlyStopping
from lightning_topo.metrics import BettiNumbers, DecayRate, TopologicalComplexity
from lightning_topo.ranking import Ranking, rank_models
from lightning_topo.report import TopologyReport

__version__ = "0.1.0.dev0"

__all__ = [
    "BettiNumbers",
    "DecayRate",
    "Ranking",
    "TopologicalComplexity",
    "TopologyCallback",
    "TopologyEarlyStopping",
    "TopologyReport",
    "__version__",
    "analyse",
    "functional",
    "rank_models",
]
