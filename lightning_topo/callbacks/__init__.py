"""Lightning callbacks: :class:`TopologyCallback` (``topology.py``: evaluates and logs every validation epoch)
and :class:`TopologyEarlyStopping` (``early_stopping.py``)."""

from lightning_topo.callbacks.early_stopping import TopologyEarlyStopping
from lightning_topo.callbacks.topology import TopologyCallback, TopologyMisconfiguration

__all__ = ["TopologyCallback", "TopologyEarlyStopping", "TopologyMisconfiguration"]
