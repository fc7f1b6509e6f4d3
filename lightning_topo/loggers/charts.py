"""Where charts are sent: Weights & Biases charts, TensorBoard figures, or PNG files.

Called by :class:`~lightning_topo.callbacks.TopologyCallback` after each evaluation, on global rank zero:

* a ``WandbLogger``: a line chart of b0, b1, b2 and Omega against layer depth for that evaluation
  (``topology/betti_vs_depth``, ``wandb.plot.line_series``), the layer table of the evaluation
  (``topology/layers``), the epoch x layer view of Omega as a table over every evaluation so far
  (``topology/omega_epoch_layer``), and the decay rate and theta over epochs
  (``topology/decay_over_epochs``). Logged through ``WandbLogger.log_metrics`` at
  ``trainer.global_step``, so every record carries ``trainer/global_step`` and W&B's own step only
  grows (also after a resume). The per-layer scalars reach W&B through ``pl_module.log`` as for every logger.
* a ``TensorBoardLogger``: the three matplotlib figures with ``add_figure`` at ``global_step``.
* any other logger (CSV, …): the figures as PNG files under ``<log_dir>/topology/``
  (``betti_vs_depth_epoch{E}.png`` per evaluation; ``decay.png`` and ``omega_heatmap.png`` rewritten).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from lightning.pytorch import Trainer
from lightning.pytorch.loggers import Logger, TensorBoardLogger, WandbLogger

from lightning_topo.loggers.figures import betti_vs_depth, figures_of

__all__ = ["CHART_TARGETS", "chart_targets", "send_charts", "wandb_charts"]

CHART_TARGETS = ("wandb", "tensorboard", "png")


def chart_targets(trainer: Trainer) -> list[tuple[str, Logger]]:
    """The (kind, logger) pairs the trainer's loggers call for."""
    targets: list[tuple[str, Logger]] = []
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            targets.append(("wandb", logger))
        elif isinstance(logger, TensorBoardLogger):
            targets.append(("tensorboard", logger))
        else:
            targets.append(("png", logger))
    return targets


def wandb_charts(history: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The W&B objects of the latest evaluation (needs ``wandb``)."""
    import wandb

    record = history[-1]
    names, series = betti_vs_depth(record)
    depth = list(range(1, len(names) + 1))
    keys = list(series)
    charts: dict[str, Any] = {
        "topology/betti_vs_depth": wandb.plot.line_series(
            xs=depth,
            ys=[series[k] for k in keys],
            keys=keys,
            title=f"Betti numbers vs depth (epoch {record['epoch']})",
            xname="layer depth",
        )
    }
    columns = ["depth", "layer", *keys]
    rows = [[d, n, *[series[k][d - 1] for k in keys]] for d, n in zip(depth, names, strict=True)]
    charts["topology/layers"] = wandb.Table(columns=columns, data=rows)
    grid = [
        [r["epoch"], r["global_step"], d, n, r["layers"].get(n, {}).get("omega", float("nan"))]
        for r in history
        for d, n in enumerate(names, start=1)
    ]
    charts["topology/omega_epoch_layer"] = wandb.Table(
        columns=["epoch", "global_step", "depth", "layer", "omega"], data=grid
    )
    epochs = [r["epoch"] for r in history]
    charts["topology/decay_over_epochs"] = wandb.plot.line_series(
        xs=epochs,
        ys=[[r["decay_rate"] for r in history], [r["theta"] for r in history]],
        keys=["decay_rate", "theta"],
        title="Decay of Omega over depth, per epoch",
        xname="epoch",
    )
    return charts


def _log_dir(trainer: Trainer, logger: Logger) -> str:
    return getattr(logger, "log_dir", None) or trainer.log_dir or trainer.default_root_dir


def send_charts(trainer: Trainer, history: Sequence[dict[str, Any]], kinds: Sequence[str]) -> list[str]:
    """Send the latest evaluation's charts to the trainer's loggers of the given kinds.

    Returns the PNG paths written (for the caller's records).
    """
    written: list[str] = []
    figures: dict[str, Any] | None = None
    for kind, logger in chart_targets(trainer):
        if kind not in kinds:
            continue
        if kind == "wandb":
            logger.log_metrics(wandb_charts(history), step=trainer.global_step)
            continue
        if figures is None:
            figures = figures_of(history)
        if kind == "tensorboard":
            for name, fig in figures.items():
                logger.experiment.add_figure(f"topology/{name}", fig, global_step=trainer.global_step, close=False)
        else:
            folder = os.path.join(_log_dir(trainer, logger), "topology")
            os.makedirs(folder, exist_ok=True)
            epoch = history[-1]["epoch"]
            for name, fig in figures.items():
                fname = f"{name}_epoch{epoch:03d}.png" if name == "betti_vs_depth" else f"{name}.png"
                path = os.path.join(folder, fname)
                fig.savefig(path, dpi=100)
                written.append(path)
    if figures:
        import matplotlib.pyplot as plt

        for fig in figures.values():
            plt.close(fig)
    return written
