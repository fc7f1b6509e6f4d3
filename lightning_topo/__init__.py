"""lightning-topo: layerwise topology of a network's embedding spaces, tracked while it trains."""

from lightning_topo import functional
from lightning_topo.callback import TopologyCallback

__version__ = "0.1.0.dev0"

__all__ = ["TopologyCallback", "__version__", "functional"]
