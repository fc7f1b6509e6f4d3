"""One-off analyses without training: :func:`analyse` (``analyse.py``), its :class:`TopologyReport`
(``report.py``) and :func:`rank_models` (``ranking.py``). Uses capture and metrics, never the callbacks."""

from lightning_topo.analysis.analyse import analyse
from lightning_topo.analysis.ranking import Ranking, rank_models
from lightning_topo.analysis.report import TopologyReport

__all__ = ["Ranking", "TopologyReport", "analyse", "rank_models"]
