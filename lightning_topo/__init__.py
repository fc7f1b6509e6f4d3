"""lightning-topo: layerwise topology of a network's embedding spaces, tracked while it trains.

The tree says where things happen: ``functional/`` computes Betti numbers (the engine: pure tensors),
``capture/`` chooses layers and inputs and captures activations with forward hooks, ``metrics/`` holds the
torchmetrics states, ``callbacks/`` runs it all during training, ``loggers/`` draws and sends charts,
``analysis/`` analyses trained models, ``datasets/`` holds bundled data, ``config.py`` every argument once.

Public names load on first use (PEP 562), so ``import lightning_topo.functional`` stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from lightning_topo import functional
    from lightning_topo.analysis import Ranking, TopologyReport, analyse, rank_models
    from lightning_topo.callbacks import TopologyCallback, TopologyEarlyStopping
    from lightning_topo.config import ConfigError, TopologyConfig
    from lightning_topo.metrics import (
        BettiNumbers,
        DecayRate,
        LayerwiseTopology,
        PersistenceSummaries,
        TopologicalComplexity,
    )

__version__ = "0.1.0.dev0"

_EXPORTS = {
    "BettiNumbers": "lightning_topo.metrics",
    "ConfigError": "lightning_topo.config",
    "DecayRate": "lightning_topo.metrics",
    "LayerwiseTopology": "lightning_topo.metrics",
    "PersistenceSummaries": "lightning_topo.metrics",
    "Ranking": "lightning_topo.analysis",
    "TopologicalComplexity": "lightning_topo.metrics",
    "TopologyCallback": "lightning_topo.callbacks",
    "TopologyConfig": "lightning_topo.config",
    "TopologyEarlyStopping": "lightning_topo.callbacks",
    "TopologyReport": "lightning_topo.analysis",
    "analyse": "lightning_topo.analysis",
    "rank_models": "lightning_topo.analysis",
}

__all__ = [
    "BettiNumbers",
    "ConfigError",
    "DecayRate",
    "LayerwiseTopology",
    "PersistenceSummaries",
    "Ranking",
    "TopologicalComplexity",
    "TopologyCallback",
    "TopologyConfig",
    "TopologyEarlyStopping",
    "TopologyReport",
    "__version__",
    "analyse",
    "functional",
    "rank_models",
]


def __getattr__(name: str) -> Any:
    if name == "functional":
        return importlib.import_module("lightning_topo.functional")
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
