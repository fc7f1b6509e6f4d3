"""Running models on samples without training: :func:`evaluate_topology` (``evaluate.py``: capture a sample and
feed the metric; the callback uses it too, in two halves: :func:`start_evaluation`), :func:`analyse`
(``analyse.py``), its :class:`TopologyReport` (``report.py``) and :func:`rank_models` (``ranking.py``). Uses
capture and metrics, never the callbacks."""

from lightning_topo.analysis.analyse import BatchHookError, analyse, sample_from, validation_batch_fn
from lightning_topo.analysis.evaluate import (
    PendingEvaluation,
    TopologyEvaluationError,
    evaluate_topology,
    ranks_fail_together,
    start_evaluation,
)
from lightning_topo.analysis.ranking import DepthMismatchWarning, Ranking, SettingsMismatchWarning, rank_models
from lightning_topo.analysis.report import TopologyReport

__all__ = [
    "BatchHookError",
    "DepthMismatchWarning",
    "PendingEvaluation",
    "Ranking",
    "SettingsMismatchWarning",
    "TopologyEvaluationError",
    "TopologyReport",
    "analyse",
    "evaluate_topology",
    "rank_models",
    "ranks_fail_together",
    "sample_from",
    "start_evaluation",
    "validation_batch_fn",
]
