"""lightning-topo: layerwise topology of a network's embedding spaces, tracked while it trains."""

from lightning_topo import functional

__version__ = "0.1.0.dev0"

__all__ = ["__version__", "functional"]
