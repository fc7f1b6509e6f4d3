"""Where charts are sent: Weights & Biases charts, TensorBoard layout and figures, or PNG files.

:class:`ChartWriter` is called by :class:`~lightning_topo.callbacks.TopologyCallback` after each evaluation, on
global rank zero. Everything is logged at the step Lightning logs that epoch's scalars at
(:func:`logging_step`), so a figure or chart sits next to the numbers it shows and steps never go back.

* a ``WandbLogger`` (native W&B charts, no matplotlib, logged at once):

  - ``topology/depth_profile``: a table **appended** at each evaluation (``log_mode="INCREMENTAL"``: each
    log uploads only the new rows), one row per epoch and layer: ``epoch``, ``step``, ``depth``, ``layer``,
    ``module``, ``b0``, ``b1``, ``b2``, ``omega``;
  - ``topology/omega_vs_depth``: Omega against depth, one line per evaluated epoch (at most
    :data:`MAX_EPOCH_LINES` epochs, evenly spaced, first and latest kept, so a log stays small);
  - ``topology/betti_vs_depth``: b0, b1, b2 and Omega against depth for the latest evaluation.

  - with persistence diagrams (``TopologyConfig.persistence`` set): ``topology/persistence_diagram/{layer}``, a
    scatter chart of birth against death of the latest evaluation per watched layer; its table has the columns
    ``dim``, ``birth``, ``death``, ``lifetime``, ``essential`` (the essential class at the diagram's ``inf``
    line, :func:`~lightning_topo.loggers.figures.diagram_bounds`, and its lifetime up to its own volume's maximum,
    so ``death - birth`` differs there), at most :data:`MAX_WANDB_PAIRS` pairs (the
    most persistent; the title says how many of how many).

  The x axis of the depth charts is the depth; its title names the layers (``1 net.0 · 2 net.1 · …``). The
  scalars reach W&B as they reach every logger (:func:`log_scalars`).
* a ``TensorBoardLogger``: a custom-scalars layout (:func:`tensorboard_layout`, written once through the
  logger: Omega of every layer on one chart, b0/b1/b2 per layer, decay rate and theta) and the figures of
  :mod:`lightning_topo.loggers.figures` (``add_figure``), written by a ``SummaryWriter`` of our own into the
  logger's run directory (an event file ending in ``.topology_figures``; TensorBoard reads every event file
  of a run), so they can be written after Lightning closed its writer; it is closed once the last figures are in.
* any other logger (CSV, ...), and a W&B or TensorBoard logger whose own kind is not among the kinds asked for
  while ``"png"`` is (``charts=["png"]``): the figures as PNG files under ``<log_dir>/topology/``
  (``betti_vs_depth.png``, ``omega_history.png``, ``decay.png``; rewritten, the last one drawn holds every
  epoch), and with persistence diagrams ``persistence_diagram/{layer}.png`` (TensorBoard: the tag
  ``topology/persistence_diagram/{layer}``).

Every ``topology`` above is the callback's ``prefix``. The charts of a ``validate`` run go under
``{prefix}/validate`` (W&B keys, TensorBoard tags, ``<log_dir>/{prefix}/validate/``), drawn from the callback's
``validate_history``: they never replace the fit's.

Under DDP the diagrams drawn are global rank zero's (its share of the sample); the summaries logged as scalars
are combined over every rank.

Figures are drawn on a background thread (:class:`~lightning_topo.loggers.render.BackgroundRenderer`), throttled
to about a tenth of the wall time: training does not wait for matplotlib. When evaluations come faster than
that, only the newest evaluation's figures are drawn (TensorBoard has no image at the skipped steps; the
``omega_history`` figure and the W&B table still hold every epoch). When fitting ends the callback lets the
last evaluation's figures start at once (:meth:`ChartWriter.finish`) and returns; they are on disk a fraction of
a second later, :meth:`ChartWriter.wait` (``TopologyCallback.wait_for_charts``) blocks until then, and the
interpreter waits for them before it exits.
"""

from __future__ import annotations

import functools
import os
import re
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from lightning.pytorch import Trainer
from lightning.pytorch.loggers import Logger, TensorBoardLogger, WandbLogger

from lightning_topo.functional.summaries import summary_kind_of
from lightning_topo.loggers.figures import betti_dims, betti_vs_depth, diagram_bounds, figures_of, time_axis
from lightning_topo.loggers.render import BackgroundRenderer

__all__ = [
    "CHART_TARGETS",
    "MAX_EPOCH_LINES",
    "MAX_WANDB_PAIRS",
    "PROFILE_COLUMNS",
    "ChartWriter",
    "chart_targets",
    "log_scalars",
    "logging_step",
    "tensorboard_layout",
    "thin_epochs",
]

CHART_TARGETS = ("wandb", "tensorboard", "png")

#: The most epochs drawn as lines on W&B's ``topology/omega_vs_depth`` chart.
MAX_EPOCH_LINES = 10

#: The most pairs per layer in W&B's ``topology/persistence_diagram/{layer}`` table (the most persistent are kept).
MAX_WANDB_PAIRS = 2000

#: The columns of W&B's ``topology/depth_profile`` table (``b2`` only where Betti numbers go up to b2).
PROFILE_COLUMNS = ("epoch", "step", "depth", "layer", "module", "b0", "b1", "b2", "omega")

Record = dict[str, Any]


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


def logging_step(trainer: Trainer) -> int:
    """The step Lightning logs this epoch's ``pl_module.log(..., on_epoch=True)`` scalars at.

    Lightning's logger connector uses the number of optimizer steps taken so far in the fit
    (``fit_loop.epoch_loop._batches_that_stepped``, which lags ``global_step`` by one at an epoch end);
    charts use the same so they line up with their scalars. ``global_step`` where that is not available.
    """
    loop = getattr(getattr(trainer, "fit_loop", None), "epoch_loop", None)
    step = getattr(loop, "_batches_that_stepped", None)
    return int(step) if isinstance(step, int) else int(trainer.global_step)


def log_scalars(trainer: Trainer, metrics: dict[str, float]) -> None:
    """Send ``metrics`` (with ``epoch``, as Lightning adds to its rows) to every logger at :func:`logging_step`.

    Loggers act on global rank zero only (their ``log_metrics`` is rank-zero-only), as with ``self.log``.
    """
    step = logging_step(trainer)
    row = {**metrics, "epoch": int(trainer.current_epoch)}
    for logger in trainer.loggers:
        logger.log_metrics(row, step=step)


def tensorboard_layout(record: Record, prefix: str = "topology") -> dict[str, dict[str, list[Any]]]:
    """The custom-scalars layout for the layers of ``record`` (``SummaryWriter.add_custom_scalars`` format), for the
    scalars logged under ``prefix`` (the callback's ``prefix``; categories and tags start with it).

    Category ``topology``: Omega of every layer on one chart, the decay rate and theta (each on its own chart,
    its direction in the title), Omega of the last layer. Category ``topology: Betti numbers per layer``: one chart
    per layer (``depth. name (Module)``) with its b0, b1, b2. With persistence summaries (``persistence=[...]``),
    category ``topology: persistence per layer``: one chart per layer and summary (``total_persistence``,
    ``persistence_entropy``, ``persistent_b``) with a line per dimension.
    """
    names = list(record["layers"])
    dims = betti_dims(record)
    p = re.escape(prefix)
    overview = {
        "Omega of every layer": ["Multiline", [f"^{p}/{re.escape(n)}/omega$" for n in names]],
        "decay_rate (higher = more simplification)": ["Multiline", [f"^{p}/decay_rate$"]],
        "theta (the paper's ranking score)": ["Multiline", [f"^{p}/theta$"]],
        "Omega of the last layer": ["Multiline", [f"^{p}/omega_last$"]],
    }
    per_layer, persistence = {}, {}
    for depth, name in enumerate(names, start=1):
        module = record["layers"][name].get("module")
        title = f"{depth}. {name} ({module})" if module else f"{depth}. {name}"
        per_layer[title] = ["Multiline", [f"^{p}/{re.escape(name)}/b[0-{dims - 1}]$"]]
        for kind in dict.fromkeys(summary_kind_of(key) for key in record["layers"][name].get("persistence", {})):
            persistence[f"{title}: {kind}"] = ["Multiline", [f"^{p}/{re.escape(name)}/{re.escape(kind)}_?[0-2]$"]]
    layout = {prefix: overview, f"{prefix}: Betti numbers per layer": per_layer}
    if persistence:
        layout[f"{prefix}: persistence per layer"] = persistence
    return layout


_WRITTEN_LAYOUTS: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()
_WRITTEN_LAYOUTS_LOCK = threading.Lock()
_CHART_WRITERS: weakref.WeakSet[Any] = weakref.WeakSet()


def _new_locks_after_fork() -> None:
    """In a process made by ``fork``: a lock held by a thread of the parent (the chart thread) stays held here."""
    global _WRITTEN_LAYOUTS_LOCK
    _WRITTEN_LAYOUTS_LOCK = threading.Lock()
    for writer in list(_CHART_WRITERS):
        writer._new_locks()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_locks_after_fork)


def add_layout(writer: Any, layout: dict[str, Any]) -> None:
    """Write ``layout`` to a TensorBoard ``SummaryWriter``, merged with the layouts written to it before (by another
    callback with another ``prefix``): TensorBoard's Custom Scalars tab shows the latest layout of a run only, so a
    second callback's layout would hide the first's charts."""
    with _WRITTEN_LAYOUTS_LOCK:
        merged = _WRITTEN_LAYOUTS.setdefault(writer, {})
        merged.update(layout)
        writer.add_custom_scalars(dict(merged))


def thin_epochs(history: Sequence[Record], limit: int = MAX_EPOCH_LINES) -> list[Record]:
    """At most ``limit`` records of ``history``, evenly spaced, the first and the latest always kept."""
    if len(history) <= limit:
        return list(history)
    last = len(history) - 1
    picks = sorted({round(i * last / (limit - 1)) for i in range(limit)})
    return [history[i] for i in picks]


def _depth_title(names: Sequence[str]) -> str:
    return "layer depth: " + " · ".join(f"{d} {n}" for d, n in enumerate(names, start=1))


class ChartWriter:
    """Sends one callback's charts to the trainer's loggers (see the module docstring).

    Args:
        kinds: the chart kinds wanted (a subset of :data:`CHART_TARGETS`); other loggers get nothing.
        figures: draw matplotlib figures (for TensorBoard and PNG); ``False`` where matplotlib is missing.
        on_error: called with the exception of a figure job that failed (training goes on).
        prefix: the first part of the W&B chart keys, the TensorBoard figure tags and the PNG folder (the
            callback's ``prefix``; ``"topology/validate"`` for the charts of ``validate`` runs).
        layout: write the TensorBoard custom-scalars layout (once per writer).
    """

    def __init__(
        self,
        kinds: Sequence[str],
        figures: bool = True,
        on_error: Callable[[BaseException], None] | None = None,
        prefix: str = "topology",
        layout: bool = True,
    ) -> None:
        self.kinds = tuple(kinds)
        self.figures = figures
        self.prefix = prefix
        self.layout = layout
        #: PNG files written so far (each path once).
        self.files: list[str] = []
        self.renderer = BackgroundRenderer(on_error=on_error, on_idle=self._on_idle)
        self._profiles: dict[int, tuple[Any, Any]] = {}  # per W&B run: (run, its incremental table, appended)
        self._layouts: set[int] = set()  # id() of the SummaryWriters that have the layout
        self._figure_writers: dict[str, Any] = {}  # run directory -> our SummaryWriter
        self._new_locks()  # `_finish_lock` orders `finish` (main thread) against `_on_idle` (worker)
        self._finished = False  # fitting ended: close our writers once the last figures are written

    def send(self, trainer: Trainer, history: Sequence[Record], diagrams: dict[str, Any] | None = None) -> None:
        """Log the charts of the latest evaluation in ``history`` (figures are drawn in the background), and of
        its persistence diagrams ``{layer: PersistenceDiagrams}`` when given."""
        if not history:
            return
        with self._finish_lock:
            self._finished = False
        step = logging_step(trainer)
        drawings: list[tuple[str, Any]] = []
        for kind, logger in chart_targets(trainer):
            if kind not in self.kinds:
                if "png" not in self.kinds:
                    continue
                kind = "png"  # e.g. charts=["png"] beside a TensorBoard logger: PNG files under its log dir
            if kind == "wandb":
                run = logger.experiment
                charts = {**self._wandb_charts(history, step, run), **_wandb_diagrams(diagrams, self.prefix)}
                logger.log_metrics(charts, step=step)
            elif kind == "tensorboard":
                writer = logger.experiment
                if self.layout and id(writer) not in self._layouts:
                    add_layout(writer, tensorboard_layout(history[-1], self.prefix))
                    self._layouts.add(id(writer))
                drawings.append(("tensorboard", logger.log_dir))
            else:
                drawings.append(("png", os.path.join(_log_dir(trainer, logger), *self.prefix.split("/"))))
        if drawings and self.figures:
            # Records are never changed once in the history: a shallow copy is a consistent snapshot.
            job = functools.partial(self._draw, list(history), drawings, step, dict(diagrams or {}))
            self.renderer.submit(job)

    def finish(self) -> None:
        """Fitting ended: draw the pending figures now (no waiting), then close the event files opened for them.

        Race-free against the worker: with no job waiting or running, this closes them (the worker may be between
        its last job and stopping, past its own check); else the worker's ``_on_idle`` runs after that job and sees
        ``_finished`` set. Closing twice closes nothing twice (the writers are taken out under a lock).
        """
        with self._finish_lock:
            self._finished = True
        self.renderer.flush()
        if self.renderer.idle:
            self._close_writers()

    def _on_idle(self) -> None:
        with self._finish_lock:
            finished = self._finished
        if finished:
            self._close_writers()

    def _close_writers(self) -> None:
        with self._writers_lock:
            writers, self._figure_writers = self._figure_writers, {}
        for writer in writers.values():
            writer.close()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the figures submitted so far are written; ``False`` if ``timeout`` seconds passed first."""
        return self.renderer.wait(timeout)

    # ------------------------------------------------------------------ W&B
    def _wandb_charts(self, history: Sequence[Record], step: int, run: Any) -> dict[str, Any]:
        """The W&B charts of the latest evaluation for the W&B ``run``: an incremental table is one run object's
        only (W&B refuses it in another: a callback reused over several runs, or two W&B loggers, gets one per
        run)."""
        import wandb

        record = history[-1]
        names, series = betti_vs_depth(record)
        dims = betti_dims(record)
        columns = [c for c in PROFILE_COLUMNS if c != "b2" or dims > 2]
        owner, profile = self._profiles.get(id(run), (None, None))
        if owner is not run:  # kept with its run: an id is reused once a finished run is collected
            profile = wandb.Table(columns=columns, log_mode="INCREMENTAL")
            self._profiles[id(run)] = (run, profile)
        for depth, name in enumerate(names, start=1):
            module = record["layers"][name].get("module") or ""
            betti = [series[f"b{k}"][depth - 1] for k in range(dims)]
            profile.add_data(int(record["epoch"]), step, depth, name, module, *betti, series["omega"][depth - 1])
        depth_axis = list(range(1, len(names) + 1))
        keys = list(series)
        lines = thin_epochs(history)
        # One key per line: epochs, or global steps where an epoch has several evaluations (as the figures' axis)
        times, time_name = time_axis(lines)
        return {
            f"{self.prefix}/depth_profile": profile,
            f"{self.prefix}/omega_vs_depth": wandb.plot.line_series(
                xs=depth_axis,
                ys=[[r["layers"].get(n, {}).get("omega", float("nan")) for n in names] for r in lines],
                keys=[f"{time_name} {t}" for t in times],
                title=f"Omega vs depth, one line per {time_name}",
                xname=_depth_title(names),
            ),
            f"{self.prefix}/betti_vs_depth": wandb.plot.line_series(
                xs=depth_axis,
                ys=[series[k] for k in keys],
                keys=keys,
                title=f"Betti numbers vs depth (epoch {record['epoch']})",
                xname=_depth_title(names),
            ),
        }

    # ------------------------------------------------------------------ figures (background thread)
    def _draw(
        self, history: Sequence[Record], drawings: Sequence[tuple[str, Any]], step: int, diagrams: dict[str, Any]
    ) -> None:
        figures = figures_of(history, diagrams) if diagrams else figures_of(history)
        for kind, where in drawings:
            if kind == "tensorboard":
                writer = self._figure_writer(where)
                for name, fig in figures.items():
                    writer.add_figure(f"{self.prefix}/{name}", fig, global_step=step, close=False)
                writer.flush()
                continue
            for name, fig in figures.items():
                path = os.path.join(where, *name.split("/")) + ".png"
                os.makedirs(os.path.dirname(path), exist_ok=True)
                partial = f"{path}.partial"
                fig.savefig(partial, format="png", dpi=100)
                os.replace(partial, path)  # a reader never sees half a file
                if path not in self.files:
                    self.files.append(path)

    def _figure_writer(self, log_dir: str) -> Any:
        with self._writers_lock:
            if log_dir not in self._figure_writers:
                from torch.utils.tensorboard import SummaryWriter

                self._figure_writers[log_dir] = SummaryWriter(log_dir=log_dir, filename_suffix=".topology_figures")
            return self._figure_writers[log_dir]

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.update(_profiles={}, _layouts=set(), _figure_writers={})
        del state["_writers_lock"], state["_finish_lock"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._new_locks()

    def _new_locks(self) -> None:
        """Locks of its own (a copy made by pickling or ``fork``: a lock held by the original's thread stays held)."""
        self._writers_lock = threading.Lock()
        self._finish_lock = threading.Lock()
        _CHART_WRITERS.add(self)


def _wandb_diagrams(diagrams: dict[str, Any] | None, prefix: str = "topology") -> dict[str, Any]:
    """W&B scatter charts ``{prefix}/persistence_diagram/{layer}`` of birth against death (see the module doc)."""
    if not diagrams:
        return {}
    import torch
    import wandb

    charts = {}
    for layer, diagram in diagrams.items():
        inf_line = diagram_bounds(diagram)[2]
        pairs = diagram.pairs.detach().cpu().to(torch.float64)
        essential = torch.isinf(pairs[:, 1])
        death = torch.where(essential, torch.full_like(pairs[:, 1], inf_line), pairs[:, 1])
        ends = torch.where(essential, diagram.value_max.to(pairs)[diagram.index.cpu()], pairs[:, 1])
        lifetime = ends - pairs[:, 0]
        keep = torch.argsort(-lifetime, stable=True)[:MAX_WANDB_PAIRS]
        keep = keep[torch.argsort(keep)]  # the most persistent, in the diagram's order
        table = wandb.Table(columns=["dim", "birth", "death", "lifetime", "essential"])
        dims = diagram.dims.cpu()
        for i in keep.tolist():
            table.add_data(int(dims[i]), float(pairs[i, 0]), float(death[i]), float(lifetime[i]), bool(essential[i]))
        shown = (
            f"the {len(keep)} most persistent of {len(pairs)} pairs"
            if len(keep) < len(pairs)
            else f"{len(pairs)} pairs"
        )
        dims_text = ", ".join(f"H{d}" for d in diagram.computed_dims)
        title = f"Persistence diagram of {layer} ({dims_text}; {shown}; essential class at death = {inf_line:.4g})"
        charts[f"{prefix}/persistence_diagram/{layer}"] = wandb.plot.scatter(table, "birth", "death", title=title)
    return charts


def _log_dir(trainer: Trainer, logger: Logger) -> str:
    return getattr(logger, "log_dir", None) or trainer.log_dir or trainer.default_root_dir
