"""`TopologyCallback`: layerwise topology of a fixed validation sample, every validation epoch.

Where things are logged: this file (scalars) and :mod:`lightning_topo.loggers.charts` (charts). Each evaluation
puts its scalars into ``trainer.callback_metrics`` and ``trainer.logged_metrics`` (so ``EarlyStopping`` and
``ModelCheckpoint`` can monitor them) and sends them to every logger in one ``log_metrics`` call, at the step
Lightning logs that epoch's ``self.log`` values at, with ``epoch`` (``pl_module.log`` is not used: it costs
about half a millisecond per key and call, more than the topology of a small model):

* ``topology/{layer}/b0``, ``/b1``, ``/b2`` — mean Betti numbers (per class, then over classes);
* ``topology/{layer}/omega`` — Omega = b0 + b1 + b2 of that layer;
* ``topology/theta`` — the model-ranking score of Suresh et al. (not a steepness measure: see ``decay_rate``);
* ``topology/decay_rate`` — the headline, depth-normalised decay: the fitted fraction of peak Omega lost
  from the first to the last watched layer; **higher = more simplification** (``mode="max"``);
* ``topology/omega_last`` — Omega of the deepest watched layer (for the Betti-floor stopping rule).

With ``persistence=[...]`` (cubical view; off by default), per layer and dimension ``k`` of
``persistence_dims``, averaged per class, then over classes, as the Betti numbers (and combined across DDP
ranks and kept in the history the same way):

* ``topology/{layer}/total_persistence_{k}`` — the sum of the lifetimes of the H_k pairs of an input's volume
  (the essential H0 class ends at the volume's max);
* ``topology/{layer}/persistence_entropy_{k}`` — the Shannon entropy (nats) of those lifetimes as fractions of
  their sum (0 with no pair);
* ``topology/{layer}/persistent_b{k}`` — the H_k features alive at the threshold that persist at least
  ``min_persistence`` of the volume's range (``min_persistence=0``: ``b{k}``).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import time
import warnings
import weakref
import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from lightning.pytorch.utilities.rank_zero import rank_zero_info, rank_zero_warn
from lightning_utilities.core.imports import RequirementCache
from torch import Tensor
from typing_extensions import override

from lightning_topo.analysis.analyse import validation_batch_fn
from lightning_topo.analysis.evaluate import PendingEvaluation, ranks_fail_together, reusable_metric, start_evaluation
from lightning_topo.capture import (
    FixedSample,
    ForwardError,
    SampleError,
    UnknownLayerError,
    build_sample,
    cubical_volumes,
    resolve_layers,
    thinned_note,
    token_layout,
    watched_layers,
)
from lightning_topo.capture.errors import plural
from lightning_topo.capture.layers import named_user_modules, split_call
from lightning_topo.config import ConfigError, TopologyConfig
from lightning_topo.functional._checks import check_int
from lightning_topo.functional.persistence import PersistenceDiagrams, kernels_loaded, require_kernels
from lightning_topo.functional.thresholds import ThresholdRuleError, sublevel_thresholds
from lightning_topo.loggers.charts import CHART_TARGETS, ChartWriter, chart_targets, log_scalars, logging_step
from lightning_topo.loggers.figures import figures_of
from lightning_topo.metrics import LayerwiseTopology, TopologyResult

__all__ = ["TopologyCallback", "TopologyMisconfiguration"]

_WANDB_AVAILABLE = bool(RequirementCache("wandb"))
_MATPLOTLIB_AVAILABLE = bool(RequirementCache("matplotlib"))

_BETTI_KEYS = ("b0", "b1", "b2")
_clock = time.perf_counter
"""The clock of ``timings`` (a module attribute, so a test can run the callback on a clock of its own)."""


class TopologyMisconfiguration(MisconfigurationException, ConfigError):
    """A bad argument of a topology callback: a Lightning ``MisconfigurationException`` and a ``ConfigError``."""


# Fields that say how, not what, the callback computes: never compared on resume.
_RUNTIME_FIELDS = ("batch_size", "device", "overlap")
_PERSISTENCE_FIELDS = ("persistence", "persistence_dims", "min_persistence")
"""Settings of the persistence summaries only: a checkpoint saved with others still holds this callback's Betti
history (restored by :meth:`TopologyCallback.on_load_checkpoint`)."""
# The callback's own arguments (the rest are TopologyConfig fields), for the message on a misspelt one.
_OWN_ARGUMENTS = (
    "config",
    "every_n_epochs",
    "log_per_class",
    "run_on_sanity_check",
    "run_on_fast_dev_run",
    "charts",
    "prefix",
)
DEFAULT_PREFIX = "topology"
"""The first part of every key a :class:`TopologyCallback` logs (``topology/decay_rate``), by default."""
RUN_KEYS = ("theta", "decay_rate", "omega_last")
"""The run-level values (not per layer) a :class:`TopologyCallback` logs under its prefix."""


class TopologyCallback(Callback):
    """Layerwise Betti numbers, topological complexity and its decay, every validation epoch.

    At the first evaluation the callback picks a fixed, seeded sample of the validation set by dataset
    index (stratified per class, at most ``samples_per_class`` per class and ``max_samples`` in all) and
    keeps those inputs on the CPU. At each evaluation it runs only that sample through the model (eval
    mode, ``torch.inference_mode``) with forward hooks on the watched layers, reduces each layer's output
    inside the hook (per-input Betti numbers, or pooled embeddings for the point-cloud view), removes the
    hooks, and logs the results.

    Args:
        config: what to compute on which layers and inputs (:class:`~lightning_topo.config.TopologyConfig`);
            default: its defaults. In a YAML or on the command line (jsonargparse, which passes every field option
            too), the field options left at their defaults keep ``config``'s values.
        every_n_epochs: evaluate at every n-th validation run of a fit (the sanity check not counted): with
            ``Trainer(check_val_every_n_epoch=2)`` and ``every_n_epochs=2``, every 4th epoch; with
            ``val_check_interval=0.5`` and ``every_n_epochs=2``, once per epoch. A ``validate`` run always evaluates.
            Lightning's ``EarlyStopping`` / ``ModelCheckpoint`` monitoring ``topology/...`` need the value at every
            check: use :class:`~lightning_topo.TopologyEarlyStopping` (it counts only fresh evaluations) or
            ``every_n_epochs=1`` with ``check_val_every_n_epoch``.
        log_per_class: also log ``topology/{layer}/class_{c}/b{k}``.
        run_on_sanity_check: also evaluate during the sanity check (a check that the evaluation runs: its values
            reach ``last_result`` and ``trainer.callback_metrics``, not the loggers or ``history``).
        run_on_fast_dev_run: also evaluate under ``Trainer(fast_dev_run=...)``. Without it the callback does nothing
            there, its checks of ``forward_fn``, ``output_fn`` and the layers included: pass ``True`` to smoke-test
            a configuration with ``fast_dev_run``.
        charts: where to send charts after each evaluation (see :mod:`lightning_topo.loggers.charts`): ``"auto"``
            (W&B charts to a ``WandbLogger``, a custom-scalars layout and figures to a ``TensorBoardLogger``, PNG
            files under the log dir of any other logger; nothing without a logger), a list of ``"wandb"``,
            ``"tensorboard"``, ``"png"`` (PNG files for every logger whose own kind is not in the list), or ``False``.
            Figures are drawn on a background thread; training does not wait for them. A ``validate`` run's figures
            and W&B charts go under ``{prefix}/validate`` (PNG files in ``<log_dir>/{prefix}/validate/``), beside
            the fit's, never over them.
        prefix: the first part of every logged key (``{prefix}/decay_rate``, ``{prefix}/{layer}/b0``), of the W&B
            charts and TensorBoard figures, and the PNG folder. Two ``TopologyCallback`` in one trainer need two
            prefixes (their values would overwrite each other): e.g. ``prefix="topology_rips"`` beside the default
            ``"topology"``, and ``TopologyEarlyStopping(monitor="topology_rips/decay_rate")`` to stop on it.
        **fields: any :class:`~lightning_topo.config.TopologyConfig` field (``complex="rips"``, ``k=10``, ...),
            overriding ``config``; documented once, there.

    Raises:
        TopologyMisconfiguration: a bad argument (a ``MisconfigurationException`` naming it and the fix).

    Example:
        >>> from lightning.pytorch import Trainer
        >>> from lightning_topo import TopologyCallback
        >>> topo = TopologyCallback(complex="rips", k=10)
        >>> topo.config.k, topo.config.per_class_cap
        (10, 300)
        >>> trainer = Trainer(callbacks=[topo], max_epochs=1, logger=False,
        ...                   enable_checkpointing=False, enable_progress_bar=False)
    """

    def __init__(
        self,
        config: TopologyConfig | None = None,
        *,
        every_n_epochs: int = 1,
        log_per_class: bool = False,
        run_on_sanity_check: bool = False,
        run_on_fast_dev_run: bool = False,
        charts: bool | str | Sequence[str] = "auto",
        prefix: str = DEFAULT_PREFIX,
        **fields: Any,
    ) -> None:
        super().__init__()
        self._check_argument_names(fields)
        try:
            self.config = TopologyConfig(**fields) if config is None else TopologyConfig.from_kwargs(config, **fields)
        except ConfigError as err:
            raise TopologyMisconfiguration(str(err)) from err
        every_n_epochs = check_int(every_n_epochs, "every_n_epochs", 1, error=TopologyMisconfiguration)
        for name, flag in (
            ("log_per_class", log_per_class),
            ("run_on_sanity_check", run_on_sanity_check),
            ("run_on_fast_dev_run", run_on_fast_dev_run),
        ):
            if not isinstance(flag, bool):
                raise TopologyMisconfiguration(f"`{name}` must be True or False, got {flag!r}.")
        self.chart_kinds = self._validate_charts(charts)
        if not isinstance(prefix, str) or not prefix.strip("/ ") or prefix != prefix.strip("/ "):
            raise TopologyMisconfiguration(
                f"`prefix` must be a non-empty name without leading or trailing '/' or spaces (the logged keys are "
                f"'{{prefix}}/decay_rate', ...), got {prefix!r}."
            )
        self.prefix = prefix
        self.every_n_epochs = every_n_epochs
        self.log_per_class = log_per_class
        self.run_on_sanity_check = run_on_sanity_check
        self.run_on_fast_dev_run = run_on_fast_dev_run

        self.layer_names: list[str] = []
        self.sample: FixedSample | None = None
        self.history: list[dict[str, Any]] = []
        self.validate_history: list[dict[str, Any]] = []
        self.last_result: TopologyResult | None = None
        #: The persistence diagrams of the latest evaluation, per layer (``persistence`` set; this rank's inputs).
        self.last_diagrams: dict[str, PersistenceDiagrams] = {}
        # The diagrams of the latest evaluation of the fit and of a `validate` run, for `plot()`.
        self._diagrams_of: dict[str, dict[str, PersistenceDiagrams]] = {"fit": {}, "validate": {}}
        #: Seconds per evaluation: the sample's forward pass, the topology and its reduction, waited for at the end of
        #: validation. Not the one-off ordering of the layers by a traced forward pass of one input, which each
        #: ``fit`` / ``validate`` run does once (at the sanity check, else before its first evaluation).
        self.timings: list[float] = []
        #: The fit's validation runs so far, the sanity check left out (``every_n_epochs`` counts them; restored).
        self.validation_runs = 0
        self._charts = ChartWriter(
            self.chart_kinds, figures=_MATPLOTLIB_AVAILABLE, on_error=self._chart_failed, prefix=prefix
        )
        self._skipped_said = 0  # figures not drawn (throttled) already said at the end of a fit
        # A `validate` run's charts, apart from the fit's (its own W&B table, figures and PNG folder).
        self._validate_charts_writer = ChartWriter(
            self.chart_kinds,
            figures=_MATPLOTLIB_AVAILABLE,
            on_error=self._chart_failed,
            prefix=f"{prefix}/validate",
            layout=False,
        )
        self._module_types: dict[str, str] = {}
        self._state_key: str | None = None
        self._ordered = False
        self._announce: str | None = None  # the sample's line, said once the layers are known (`_start_evaluation`)
        self._thinned: str | None = None  # what `layers="auto"` left out (`max_layers`), said in that line
        # The process that built the callback: a fit in another (`ddp_spawn`, `ddp_fork` and `ddp_notebook` run it
        # in processes of their own, on a copy) leaves this object as it was there
        self._built_in = os.getpid()
        self._restored_indices: list[int] | None = None
        self._restored_layers: list[str] = []  # the checkpoint's watched layers, until this run has ordered its own
        # A fit's start: the evaluations and validation runs held then (a callback may serve several fits), whether a
        # checkpoint's state was loaded into it, and the trainer of the latest fit (its id: a callback pickles).
        self._before_fit = (0, 0)
        self._loaded_in_fit = False
        self._fit_trainer: int | None = None
        # id(dataset) -> (dataset, the objects whose batch hooks made the sample (weak), its sample)
        self._samples: dict[int, tuple[Any, tuple[weakref.ref[Any], ...], FixedSample]] = {}
        self._fit_sample: FixedSample | None = None
        self._warned: set[str] = set()
        # The metric of the latest evaluation, reset and reused by the next one with the same layers and classes
        # (building a LayerwiseTopology costs milliseconds, as much as the topology of a small model).
        self._metric: LayerwiseTopology | None = None
        # An evaluation started at the first validation batch (`overlap`), read at the end of validation.
        self._pending: PendingEvaluation | None = None
        self._pending_seconds = 0.0
        self._ordering_seconds = 0.0  # spent ordering the layers by `_start_evaluation`: not in `timings`
        self._overlap_armed = False

    @staticmethod
    def _check_argument_names(fields: dict[str, Any]) -> None:
        names = [f.name for f in dataclasses.fields(TopologyConfig)]
        unknown = sorted(set(fields) - set(names))
        if not unknown:
            return
        close = {u: difflib.get_close_matches(u, [*_OWN_ARGUMENTS, *names], n=1) for u in unknown}
        hints = "; ".join(f"did you mean `{c[0]}`?" for c in close.values() if c)
        raise TopologyMisconfiguration(
            f"TopologyCallback got unknown argument(s) {unknown}{' (' + hints + ')' if hints else ''}. It takes "
            f"{list(_OWN_ARGUMENTS)} and the TopologyConfig fields {sorted(names)}."
        )

    @staticmethod
    def _validate_charts(charts: bool | str | Sequence[str]) -> tuple[str, ...]:
        if charts is True or charts == "auto":
            return CHART_TARGETS
        if charts is False or charts is None:
            return ()
        kinds = (charts,) if isinstance(charts, str) else tuple(charts)
        bad = [k for k in kinds if k not in CHART_TARGETS]
        if bad:
            raise TopologyMisconfiguration(
                f"`charts` must be 'auto', False or a list of {CHART_TARGETS}, got {charts!r} ({bad} unknown)."
            )
        if "wandb" in kinds and not _WANDB_AVAILABLE:
            raise TopologyMisconfiguration(
                'W&B charts were asked for (`charts` includes "wandb") but wandb is not installed: '
                'pip install "lightning-topo[wandb]"'
            )
        if any(k in kinds for k in ("tensorboard", "png")) and not _MATPLOTLIB_AVAILABLE:
            raise TopologyMisconfiguration(
                f"`charts={charts!r}` needs matplotlib for figures, which is not installed: "
                'pip install "lightning-topo[plot]"'
            )
        return kinds

    @property
    def chart_files(self) -> list[str]:
        """The PNG files written so far (each path once; complete after :meth:`wait_for_charts`)."""
        return list(dict.fromkeys([*self._charts.files, *self._validate_charts_writer.files]))

    def wait_for_charts(self, timeout: float | None = None) -> bool:
        """Block until the figures of the latest evaluation are drawn and written; ``False`` if ``timeout``
        seconds passed first. Figures are drawn on a background thread and finish a fraction of a second after
        ``fit`` returns (the interpreter waits for them before it exits); call this before reading them."""
        start = time.perf_counter()
        if not self._charts.wait(timeout):
            return False
        left = None if timeout is None else max(0.0, timeout - (time.perf_counter() - start))
        return self._validate_charts_writer.wait(left)

    def _chart_failed(self, err: BaseException) -> None:
        message = f"TopologyCallback: drawing the figures failed, skipped: {err!r}"
        self._warn_once(f"chart-{type(err).__name__}", message)

    # ------------------------------------------------------------------ identity and state
    @property
    @override
    def state_key(self) -> str:
        """Built from what changes the Betti numbers for the chosen view (:meth:`TopologyConfig.numeric_settings`
        without the persistence summaries' settings): the same in every run that computes the same Betti numbers
        (another ``k`` on the cubical view, another batch size, an equivalent ``input_fn`` or other persistence
        summaries keep the history), different for callbacks that compute different things (two callbacks on
        other layers or views in one trainer keep separate states)."""
        # Lightning reads this at every hook call (profiler names): computed once, the config is frozen.
        if self._state_key is None:
            self._state_key = self._key(with_persistence=False)
        return self._state_key

    def _key(self, with_persistence: bool) -> str:
        """The state key; ``with_persistence``: as the callback built it until 2026-12, with the persistence
        summaries' settings (a checkpoint saved then holds the state under that key)."""
        settings = self.config.numeric_settings()
        if not with_persistence:
            settings = {k: v for k, v in settings.items() if k not in _PERSISTENCE_FIELDS}
        if self.prefix != DEFAULT_PREFIX:  # another prefix: another callback (the default's key is unchanged)
            settings["prefix"] = self.prefix
        return self._generate_state_key(**settings)

    def _settings(self) -> dict[str, Any]:
        return {k: v for k, v in self.config.settings().items() if k not in _RUNTIME_FIELDS}

    @override
    def state_dict(self) -> dict[str, Any]:
        """History, watched layers, the fit sample's dataset indices and the settings (plain Python types:
        weights_only-safe)."""
        indices = self._fit_sample.indices.tolist() if self._fit_sample is not None else self._restored_indices
        return {
            "history": self.history,
            "layer_names": list(self.layer_names),
            "sample_indices": indices,
            "settings": self._settings(),
            "validation_runs": self.validation_runs,
        }

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._loaded_in_fit = True
        self.history = list(state_dict.get("history", []))
        # Older checkpoints did not count validation runs: one evaluation per `every_n_epochs` of them.
        self.validation_runs = int(state_dict.get("validation_runs", len(self.history) * self.every_n_epochs))
        self._restored_indices = state_dict.get("sample_indices")
        # Compared once this run's layers are in forward order, one per call (`_order_layers`): here they are the
        # names as given, and a module called twice or an out-of-order `layers=[...]` would read as a change.
        self._restored_layers = list(state_dict.get("layer_names") or [])
        saved = state_dict.get("settings")
        if isinstance(saved, dict):
            now = self._settings()
            fields = list(_PERSISTENCE_FIELDS)
            summaries = (saved.get("persistence") or (), now.get("persistence") or ())
            if not any(summaries):  # no summary on either side: the dims select nothing
                fields.remove("persistence_dims")
            if not any("persistent_betti" in kinds for kinds in summaries):  # min_persistence is used by no side
                fields.remove("min_persistence")
            diff = _differences({n: saved.get(n) for n in fields}, {n: now.get(n) for n in fields})
            if diff:  # the state key leaves the summaries' settings out: the Betti history is this callback's
                rank_zero_warn(
                    f"TopologyCallback: restored the checkpoint's topology history "
                    f"({plural(len(self.history), 'evaluation', 'evaluations')}), whose run computed {diff['saved']}; "
                    f"this callback computes {diff['now']}. The restored evaluations keep the persistence summaries "
                    "their runs computed (each record holds its own keys; a run resumed more than once may have "
                    "computed others)."
                )

    def _differs_only_in_persistence(self, saved: Any) -> bool:
        """Whether saved ``settings`` differ from this callback's only in the persistence summaries' settings (or in
        fields that do not change this view's numbers): its Betti history is this callback's."""
        if not isinstance(saved, dict):
            return False
        now, relevant = self._settings(), set(self.config.numeric_settings())
        names = [n for n in set(saved) | set(now) if saved.get(n) != now.get(n)]
        return bool(names) and all(n in _PERSISTENCE_FIELDS or n not in relevant for n in names)

    def _restores(self, key: str, state: dict[str, Any]) -> bool:
        """Whether this callback restores ``state``, saved under ``key`` that is not its ``state_key``: the key an
        earlier version gave this callback (with the persistence summaries' settings in it), or one whose saved
        settings differ from this callback's only in the persistence summaries' settings."""
        return key == self._key(with_persistence=True) or self._differs_only_in_persistence(state.get("settings"))

    @override
    def on_load_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        """Restore a state saved under an earlier version's key (which had the persistence summaries' settings in
        it) when its Betti settings are ours, and say by name which saved topology state no callback of this run
        restores (Lightning drops it quietly)."""
        saved = checkpoint.get("callbacks") or {}
        callbacks = [cb for cb in trainer.callbacks if isinstance(cb, TopologyCallback)]
        ours = {cb.state_key for cb in callbacks}
        theirs = {
            key: state
            for key, state in saved.items()
            if str(key).startswith(type(self).__name__) and key not in ours and isinstance(state, dict)
        }
        if self.state_key not in saved:
            for key, state in theirs.items():
                if self._restores(key, state):
                    self.load_state_dict(state)
                    break
        if self is not callbacks[0]:
            return  # one message per checkpoint
        for key, state in theirs.items():
            settings = state.get("settings")
            if any(cb._restores(key, state) for cb in callbacks):
                continue  # restored above by that callback
            diff = _differences(settings, self._settings()) if isinstance(settings, dict) else {}
            what = (
                f"it was computed with {diff['saved']}, this callback computes {diff['now']}"
                if diff
                else "it was saved by an older version with another state key"
            )
            rank_zero_warn(
                f"TopologyCallback: the checkpoint's topology history "
                f"({plural(len(state.get('history', [])), 'evaluation', 'evaluations')}) "
                f"is not restored: {what}. Pass the same values to resume it."
            )

    # ------------------------------------------------------------------ lifecycle
    @override
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        # Unknown layer names, a device this machine lacks and a missing numba (persistence) fail here, before any
        # training step.
        try:
            self.config.check_device()
            self.layer_names = resolve_layers(pl_module, self.config.layers, max_layers=self.config.max_layers)
            self._thinned = thinned_note(pl_module, self.config.layers, self.config.max_layers)
        except (UnknownLayerError, ConfigError) as err:
            raise TopologyMisconfiguration(str(err)) from err
        self._ordered = False
        self._module_types = self._types_of(pl_module, self.layer_names)
        if not self.layer_names:
            raise TopologyMisconfiguration(
                "TopologyCallback found no layer to watch; pass `layers=[...]` with names from "
                "`[n for n, _ in pl_module.named_modules()]`."
            )
        self._check_prefixes(trainer)
        if self.config.persistence:
            require_kernels()  # without numba: fail here, not after an epoch of training
        if stage == "fit":
            self._check_monitors(trainer)
        elif stage in ("test", "predict"):
            # Nothing is measured in these runs: say so once, rather than leave a user looking for numbers.
            run = getattr(stage, "value", stage)  # a TrainerFn
            rank_zero_info(
                f"TopologyCallback: trainer.{run} runs no validation, so nothing is measured; the callback "
                "measures at validation (trainer.fit, trainer.validate). For this data: trainer.validate(model, "
                "dataloaders=...), or lightning_topo.analyse(model, data)."
            )

    def _check_prefixes(self, trainer: Trainer) -> None:
        """Two callbacks with one prefix would log the same keys, the later overwriting the earlier in the loggers,
        in ``trainer.callback_metrics`` (what early stopping and checkpoints read) and in the figures."""
        others = [
            cb
            for cb in trainer.callbacks  # type: ignore[attr-defined]
            if isinstance(cb, TopologyCallback) and cb is not self and cb.prefix == self.prefix
        ]
        if others:
            diff = _differences(others[0]._settings(), self._settings())
            which = f" (one computes {diff['saved']}, the other {diff['now']})" if diff else ""
            raise TopologyMisconfiguration(
                f"Two TopologyCallbacks in this Trainer log under the same prefix {self.prefix!r}{which}: each "
                f"would overwrite the other's '{self.prefix}/decay_rate', layer values and figures, and early "
                "stopping or checkpoints would read whichever came last. Give one of them another prefix, e.g. "
                f"TopologyCallback(..., prefix='{self.prefix}_2'), and monitor '{self.prefix}_2/decay_rate' to "
                "stop on it."
            )

    def _saves_at_evaluations(self, trainer: Trainer, checkpoint: ModelCheckpoint) -> bool:
        """Whether ``checkpoint`` saves at the end of the epochs this callback evaluates only: one validation per
        epoch, its ``every_n_epochs`` a multiple of ours and no step or time interval. ``ModelCheckpoint`` keeps
        these arguments in attributes of its own (it has no public accessor), read here without changing them."""
        every = getattr(checkpoint, "_every_n_epochs", None)
        steps = getattr(checkpoint, "_every_n_train_steps", None)
        interval = getattr(checkpoint, "_train_time_interval", None)
        interval_of_validation = trainer.val_check_interval  # a float is a share of the epoch, an int a batch count
        one_per_epoch = (
            trainer.check_val_every_n_epoch == 1
            and isinstance(interval_of_validation, float)
            and interval_of_validation == 1.0
        )
        return (
            isinstance(every, int)
            and every > 0
            and every % self.every_n_epochs == 0
            and not steps
            and interval is None
            and one_per_epoch
        )

    def _check_monitors(self, trainer: Trainer) -> None:
        """Lightning's ``EarlyStopping`` and ``ModelCheckpoint`` read their ``monitor`` at every validation (every
        save); with ``every_n_epochs > 1`` a ``topology/...`` value is missing before the first evaluation (they
        raise) and stale after it: say so now, not after an epoch of training. A ``decay_rate`` monitored with
        ``mode="min"`` (Lightning's default) is said too: higher is more simplification."""
        from lightning_topo.callbacks.early_stopping import TopologyEarlyStopping

        for cb in trainer.callbacks:  # type: ignore[attr-defined]
            if (
                isinstance(cb, (EarlyStopping, ModelCheckpoint))
                and getattr(cb, "monitor", None) == f"{self.prefix}/decay_rate"
                and getattr(cb, "mode", None) == "min"
            ):
                does = "stops when it stops falling" if isinstance(cb, EarlyStopping) else "keeps the least simplified"
                self._warn_once(
                    f"mode-{id(cb)}",
                    f"TopologyCallback: {type(cb).__name__}(monitor={cb.monitor!r}, mode='min'): the decay rate "
                    f"rises as the network simplifies its classes over depth (higher = more simplification), so "
                    f"mode='min' {does}; pass mode='max' (TopologyEarlyStopping's default) unless that is what you "
                    "want.",
                )
        if self.every_n_epochs == 1:
            return
        n = self.every_n_epochs
        ours = f"TopologyCallback(every_n_epochs={n}) evaluates at one validation run in {n}"
        for cb in trainer.callbacks:  # type: ignore[attr-defined]
            monitor = getattr(cb, "monitor", None)
            if not (isinstance(monitor, str) and monitor.startswith(f"{self.prefix}/")):
                continue
            if isinstance(cb, EarlyStopping) and not isinstance(cb, TopologyEarlyStopping):
                message = (
                    f"EarlyStopping(monitor={monitor!r}) checks the value after every validation, and {ours}: the "
                    "first check would fail (the value is not logged yet) and later ones would count the last "
                    "evaluation again. Use lightning_topo.TopologyEarlyStopping (it counts fresh evaluations only), "
                    "or every_n_epochs=1 with Trainer(check_val_every_n_epoch=...)."
                )
                if cb.strict:
                    raise TopologyMisconfiguration(message)
                self._warn_once(f"monitor-{id(cb)}", f"TopologyCallback: {message}")
            elif isinstance(cb, ModelCheckpoint) and not self._saves_at_evaluations(trainer, cb):
                self._warn_once(
                    f"monitor-{id(cb)}",
                    f"TopologyCallback: ModelCheckpoint(monitor={monitor!r}) reads the value at every save, and "
                    f"{ours}: its first save before the first evaluation raises (no such key), and saves between "
                    f"evaluations would rank by the last one. Give the ModelCheckpoint every_n_epochs="
                    f"{self.every_n_epochs} too (with one validation per epoch), or use every_n_epochs=1 with "
                    "Trainer(check_val_every_n_epoch=...).",
                )

    def _should_run(self, trainer: Trainer) -> bool:
        if trainer.sanity_checking and not self.run_on_sanity_check:
            return False
        if trainer.fast_dev_run and not self.run_on_fast_dev_run:
            return False
        if trainer.state.fn == "fit" and not trainer.sanity_checking:
            return self.validation_runs % self.every_n_epochs == 0
        return True

    @staticmethod
    def _types_of(pl_module: LightningModule, names: Sequence[str]) -> dict[str, str]:
        modules = dict(named_user_modules(pl_module))
        return {n: type(modules[split_call(n)[0]]).__name__ for n in names if split_call(n)[0] in modules}

    def _ensure_sample(self, trainer: Trainer) -> FixedSample | None:
        """The sample of the validation set being evaluated: picked once per dataset, so ``trainer.validate(model,
        other_loader)`` measures that loader's data, and the next fit evaluation its own sample again."""
        loaders = trainer.val_dataloaders
        if isinstance(loaders, Mapping):  # {name: loader}: Lightning runs them in this order
            names: list[Any] = list(loaders)
            candidates = [loaders[name] for name in names]
        elif isinstance(loaders, (list, tuple)):
            names, candidates = list(range(len(loaders))), list(loaders)
        else:
            names, candidates = [0], [loaders]
        if len(candidates) > 1:
            # The first loader with data (an empty one is skipped by Lightning's loop: nothing to sample there)
            pick = next((i for i, loader in enumerate(candidates) if not _is_empty(loader)), 0)
            named = isinstance(trainer.val_dataloaders, Mapping)
            which = f"{names[pick]!r}, dataloader_idx {pick}" if named else f"dataloader_idx {pick}"
            self._warn_once(
                "loaders",
                f"TopologyCallback: the trainer has {len(candidates)} validation dataloaders"
                f"{f' {names}' if named else ''}; the topology sample is drawn from the "
                f"{'first one' if pick == 0 else 'first non-empty one'} only ({which}).",
            )
            loaders = candidates[pick]
        else:
            loaders = candidates[0] if candidates else None
        if loaders is None:
            self._warn_once("no-val", "TopologyCallback: no validation dataloader, so there is nothing to sample.")
            return None
        dataset = getattr(loaders, "dataset", loaders)
        module, datamodule = trainer.lightning_module, trainer.datamodule
        batch_fn = validation_batch_fn(module, datamodule, module.device)
        # The sample is the batch the hooks make: another model's (or DataModule's) hooks make another one
        hooked: tuple[Any, ...] = () if batch_fn is None else batch_fn.owners  # type: ignore[attr-defined]
        cached = self._samples.get(id(dataset))
        if (
            cached is not None
            and cached[0] is dataset
            and len(cached[1]) == len(hooked)
            and all(ref() is obj for ref, obj in zip(cached[1], hooked, strict=True))
        ):
            self.sample = cached[2]
            if trainer.state.fn == "fit" and self._fit_sample is not self.sample:
                self._adopt_fit_sample(self.sample)  # first drawn by a `validate` before this fit
            return self.sample
        cfg = self.config
        try:
            sample = build_sample(
                loaders,
                samples_per_class=cfg.per_class_cap,
                max_samples=cfg.total_cap,
                seed=cfg.seed,
                input_fn=cfg.input_fn,
                target_fn=cfg.target_fn,
                batch_fn=batch_fn,
            )
        except SampleError as err:
            raise TopologyMisconfiguration(f"TopologyCallback cannot sample the validation set: {err}") from err
        # Keep the fit's sample and the latest other one: repeated validate runs on new datasets hold no more.
        keep = {id(d) for d, _, smp in self._samples.values() if smp is self._fit_sample}
        self._samples = {key: value for key, value in self._samples.items() if key in keep}
        self._samples[id(dataset)] = (dataset, tuple(weakref.ref(obj) for obj in hooked), sample)
        self.sample = sample
        for note in sample.notes:
            self._warn_once(note, note)
        fitting = trainer.state.fn == "fit"
        if fitting:
            self._adopt_fit_sample(sample)
        limit = trainer.limit_val_batches
        if not trainer.fast_dev_run and not (isinstance(limit, float) and limit == 1.0):
            self._warn_once(
                "limit_val_batches",
                f"TopologyCallback: `limit_val_batches={limit}` limits Lightning's validation loop, not the topology "
                f"sample: it is drawn from the whole validation set ({len(sample.labels)} inputs, at most "
                "`samples_per_class` per class and `max_samples` in all); lower those to evaluate fewer inputs.",
            )
        stage = "" if fitting else f" ({getattr(trainer.state.fn, 'value', trainer.state.fn)})"
        # Said at the first evaluation on this sample, when the layers are ordered: a module that runs twice is
        # then two layers ('pool', 'pool#2').
        self._announce = (
            f"on {plural(len(sample.labels), 'validation input')} ({plural(len(sample.classes), 'class', 'classes')})"
            f"{stage}."
        )
        return sample

    def _adopt_fit_sample(self, sample: FixedSample) -> None:
        """Make ``sample`` the fit's (kept in the checkpoint), saying so where it differs from the sample the
        history so far was measured on: the checkpoint's (a resumed run), or an earlier one of this fit (a
        validation set that changed: ``reload_dataloaders_every_n_epochs`` with new data)."""
        earlier = self._fit_sample
        self._fit_sample = sample
        if self._restored_indices is not None and earlier is None:
            if sample.indices.tolist() != self._restored_indices:
                rank_zero_warn(
                    "TopologyCallback: the resumed run sampled different validation inputs than the checkpoint "
                    "(the validation set or the sampling arguments changed); history before and after differ in "
                    "sample."
                )
        elif earlier is not None and not (
            torch.equal(earlier.indices, sample.indices)
            and earlier.inputs.shape == sample.inputs.shape
            and torch.equal(earlier.inputs, sample.inputs)
        ):
            self._warn_once(
                "resampled",
                "TopologyCallback: the validation set changed during the fit (a new dataset, e.g. with "
                "`reload_dataloaders_every_n_epochs`), so the topology sample was drawn again from it; the history "
                "mixes evaluations of different inputs from here on. Keep one validation set for a comparable curve.",
            )

    @override
    def on_validation_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # The sample is picked, and the layers ordered by a forward pass of one input, before the first
        # evaluation, so labels that are not classes, a failing `forward_fn` / `output_fn` or layers that never run
        # fail at the sanity check (before any training step) rather than after an epoch.
        if trainer.state.fn == "fit" and not trainer.sanity_checking:
            self.validation_runs += 1  # the n-th validation run of the fit evaluates when n % every_n_epochs == 0
        if self._should_run(trainer) or trainer.sanity_checking:
            sample = self._ensure_sample(trainer)
            if trainer.sanity_checking and sample is not None and len(sample.labels):
                self._ensure_ordered(trainer, pl_module, sample)

    @override
    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._drop_pending()
        # One process, `overlap` (the default): the evaluation starts at the first validation batch and its Betti
        # numbers are computed on a background thread while Lightning's loop validates; read at the epoch's end.
        self._overlap_armed = self.config.overlap and trainer.world_size == 1 and self._should_run(trainer)

    @override
    def on_validation_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        if not self._overlap_armed:
            return
        self._overlap_armed = False
        start = _clock()
        self._pending = self._start_evaluation(trainer, pl_module)
        self._pending_seconds = _clock() - start

    def _start_evaluation(self, trainer: Trainer, pl_module: LightningModule) -> PendingEvaluation | None:
        """The sample's forward pass (the first half of an evaluation); ``None`` when there is nothing to sample."""
        sample = self._ensure_sample(trainer)
        if sample is None or len(sample.labels) == 0:
            return None
        self._ordering_seconds = self._ensure_ordered(trainer, pl_module, sample)
        if self._announce is not None:
            count = len(self.layer_names)
            thinned = f" ({self._thinned})" if self._thinned else ""
            rank_zero_info(
                f"TopologyCallback: watching {count} layer{'s' if count != 1 else ''}{thinned} {self._announce}"
            )
            self._announce = None
        if self.config.persistence and not kernels_loaded(self.config.persistence_dims):
            self._warn_once(
                "compile",
                "TopologyCallback: persistence is on, and its compiled kernels are not loaded in this process yet: "
                "this evaluation loads them from numba's disk cache, or compiles them the first time in an "
                "environment (about 20-30 s on 2 cores; later runs start in under a second).",
                info=True,
            )
        # Each rank runs its strided slice of the sample; the metric's states are combined across ranks.
        positions = torch.arange(trainer.global_rank, len(sample.labels), trainer.world_size)
        # Built here (kept for the next evaluation) and reset once, by `start_evaluation`.
        self._metric = reusable_metric(
            self._metric, self.layer_names, sample.classes, self.config, metric_device=pl_module.device, reset=False
        )
        # Under the Trainer's precision, as validation runs the model (bf16-mixed: autocast), so the activations
        # measured are those validation computes.
        with trainer.precision_plugin.forward_context():
            return start_evaluation(
                pl_module,
                sample.inputs[positions],
                sample.labels[positions],
                self.layer_names,
                self.config,
                classes=sample.classes,
                positions=positions,
                metric_device=pl_module.device,
                metric=self._metric,
                token_mask=None if sample.token_mask is None else sample.token_mask[positions],
            )

    def _drop_pending(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
        self._pending = None
        self._overlap_armed = False

    @override
    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self._should_run(trainer):
            self._drop_pending()
            return
        start = _clock()
        started, self._pending = self._pending, None
        self._overlap_armed = False
        if started is None:  # no overlap (or no validation batch): the whole evaluation runs now
            started = self._start_evaluation(trainer, pl_module)
        else:
            start -= self._pending_seconds  # the time the first validation batch waited counts too
        if started is None:
            return
        result = started.result()
        self.timings.append(_clock() - start - self._ordering_seconds)
        self._ordering_seconds = 0.0
        for message in result.warnings:
            self._warn_once(message, f"TopologyCallback: {message}")
        self.last_result = result
        self.last_diagrams = {layer.name: layer.diagrams for layer in result.layers if layer.diagrams is not None}
        self._log(trainer, result)
        if trainer.sanity_checking:
            return  # `run_on_sanity_check`: in `last_result` and `callback_metrics`, not an evaluation of the fit
        # A `validate` run's values are logged and kept apart: they are not epochs of the fit.
        records = self.history if trainer.state.fn == "fit" else self.validate_history
        records.append(self._record(trainer, result))
        self._diagrams_of["fit" if records is self.history else "validate"] = self.last_diagrams
        if trainer.is_global_zero and self.chart_kinds and trainer.loggers:
            self._send_charts(
                trainer, records, self.last_diagrams
            )  # loggers get nothing from the sanity check, as in Lightning
        elif trainer.is_global_zero and self.chart_kinds and self.chart_kinds != CHART_TARGETS:
            self._warn_once(  # charts asked for by name, and no logger to take them
                "no-chart-target",
                f"TopologyCallback: charts={list(self.chart_kinds)} and the trainer has no logger (logger=False): no "
                "chart is drawn (PNG files go under a logger's log dir). Pass a logger, e.g. "
                "lightning.pytorch.loggers.CSVLogger('logs'), or draw them with callback.plot().",
            )

    @override
    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Note what the callback holds as the fit starts (after a checkpoint's state is restored), and say so when
        it is reused in another trainer with an earlier fit's history (Lightning's callbacks keep their state)."""
        reused = self.history and self._fit_trainer not in (None, id(trainer)) and not self._loaded_in_fit
        if reused and not trainer.strategy.restore_checkpoint_after_setup:  # there a checkpoint comes after this
            held = plural(len(self.history), "evaluation", "evaluations")
            rank_zero_warn(
                f"TopologyCallback: this callback already holds {held} of an earlier fit (another Trainer); its "
                "history, figures and every_n_epochs count go on from them. Create a new TopologyCallback for each "
                "run to start afresh."
            )
        self._fit_trainer = id(trainer)
        self._before_fit = (len(self.history), self.validation_runs)

    @override
    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Say so when a whole fit evaluated nothing (no validation ran, or fewer runs than ``every_n_epochs``)."""
        evaluations, runs = self._before_fit
        if len(self.history) > evaluations or self._loaded_in_fit or trainer.fast_dev_run or trainer.interrupted:
            return
        if self.validation_runs == runs:
            why = (
                "the fit ran no validation (no validation dataloader, an empty validation set, limit_val_batches=0 "
                "or check_val_every_n_epoch beyond max_epochs)"
            )
        else:
            why = (
                f"the fit ran {self.validation_runs - runs} validation run(s) and every_n_epochs={self.every_n_epochs} "
                f"evaluates at one in {self.every_n_epochs}"
            )
        rank_zero_warn(f"TopologyCallback evaluated nothing: {why}.")

    @override
    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage == "fit":
            self._loaded_in_fit = False
        # The last evaluation's figures start drawing now, in the background (see `wait_for_charts`).
        self._drop_pending()
        self._charts.finish()
        self._validate_charts_writer.finish()
        skipped = self._charts.renderer.skipped
        # This fit runs on a copy of the user's callback that the strategy's launcher made (a copy sent to another
        # process by other means, a Ray trial, launches nothing and is not said to be the strategy's)
        copy = os.getpid() != self._built_in and getattr(trainer.strategy, "launcher", None) is not None
        # Said where it loses something: TensorBoard's images of the skipped steps (a PNG file is rewritten anyway)
        tensorboard = "tensorboard" in self.chart_kinds and any(k == "tensorboard" for k, _ in chart_targets(trainer))
        if stage == "fit" and skipped > self._skipped_said and tensorboard:
            self._skipped_said = skipped
            rank_zero_info(
                f"TopologyCallback: the figures of {plural(skipped, 'evaluation')} were not drawn: evaluations came "
                "faster than the drawing budget (about a tenth of the wall time), so only the newest was drawn each "
                "time (TensorBoard has images at the drawn steps only; omega_history and the W&B table hold every "
                f"epoch). The last evaluation's figures are drawn now{'' if copy else '; callback.plot() draws any'}."
            )
        if stage == "fit" and copy and self.history:
            rank_zero_info(
                "TopologyCallback: this fit ran in processes its strategy started (ddp_spawn, ddp_fork or "
                "ddp_notebook), each on a copy of the callback: the TopologyCallback in the process that called "
                "fit() stays as it was (no history, no figures), as every callback's state does there. The values "
                "are in the loggers and trainer.callback_metrics; the history is in the checkpoints "
                "(ckpt['callbacks'][callback.state_key]['history'], restored on resume); strategy='ddp' keeps it in "
                "the callback."
            )

    @override
    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        self._drop_pending()
        self._charts.finish()
        self._validate_charts_writer.finish()

    def _ensure_ordered(self, trainer: Trainer, pl_module: LightningModule, sample: FixedSample) -> float:
        """:meth:`_order_layers` once per sample, on every rank together (``forward_fn`` runs there first); the
        seconds it took (0 when the layers were ordered already)."""
        if self._ordered:
            return 0.0
        start = _clock()
        if trainer.world_size > 1:
            self._check_same_sample(trainer, pl_module, sample)
        with ranks_fail_together(pl_module.device, sync=trainer.world_size > 1):
            self._order_layers(pl_module, sample)
        return _clock() - start

    @staticmethod
    def _check_same_sample(trainer: Trainer, pl_module: LightningModule, sample: FixedSample) -> None:
        """Under DDP every rank draws the sample and evaluates its share (``sample[rank::world_size]``), which is
        right only where all ranks drew the same one. An ``IterableDataset`` that each process streams its own part
        of gives each its own sample: their shares then cover half of each (and classes are summed by position,
        class 0 of one rank with class 5 of another), or the ranks' metrics do not even have one shape. Refused
        on every rank (each compares the same gathered fingerprints)."""
        labels = sample.labels.contiguous()
        inputs = sample.inputs.detach().contiguous()
        fingerprint = [  # crc32 reads the arrays' buffers in place (no copy of a large sample)
            len(labels),
            zlib.crc32(labels.view(torch.uint8).numpy()),
            zlib.crc32(inputs.reshape(-1).view(torch.uint8).numpy()),
        ]
        mine = torch.tensor(fingerprint, dtype=torch.int64, device=pl_module.device)
        every = trainer.strategy.all_gather(mine).reshape(trainer.world_size, -1).cpu()
        if bool((every == every[0]).all()):
            return
        sizes = every[:, 0].tolist()
        raise TopologyMisconfiguration(
            f"TopologyCallback: the {trainer.world_size} processes drew different topology samples from their "
            f"validation data (sizes {sizes} by rank): each must see the same validation set, of which it evaluates "
            "its share. An IterableDataset streamed in parts, one per process, gives each its own; use a map-style "
            "(indexable) validation dataset, which Lightning's DistributedSampler splits, or let every process "
            "stream the whole validation set."
        )

    def _order_layers(self, pl_module: LightningModule, sample: FixedSample) -> None:
        """Put the watched layers in the order the forward pass runs them (the decay over depth needs it), one layer
        per call of a module that runs more than once, and drop those that never run (by name)."""
        try:
            order, notes = watched_layers(
                pl_module,
                sample.inputs[:2],
                self.layer_names,
                forward_fn=self.config.forward_fn,
                output_fn=self.config.output_fn,
                auto=self.config.layers == "auto",
                cubical=self.config.complex == "cubical",
                inspect=self._threshold_check(pl_module, sample.inputs[:2]),
            )
        except (UnknownLayerError, ForwardError, ThresholdRuleError) as err:  # the first forward pass on the sample
            raise TopologyMisconfiguration(f"TopologyCallback: {err}") from err
        for key, message in notes:
            if key == "flat":  # what the zeros of vector layers mean: information, not a problem to fix
                rank_zero_info(f"TopologyCallback: {message}")
            else:
                self._warn_once(key, f"TopologyCallback: {message}")
        self.layer_names = order
        self._module_types = self._types_of(pl_module, self.layer_names)
        self._ordered = True
        restored, self._restored_layers = self._restored_layers, []
        if restored and restored != order:
            rank_zero_warn(
                f"TopologyCallback: the checkpoint's run watched layers {restored}, this run watches {order}; the "
                "history mixes both (its records keep the layers they had)."
            )

    def _threshold_check(self, pl_module: LightningModule, probe: Tensor) -> Callable[[str, Tensor], None] | None:
        """For a ``threshold`` callable (cubical view): a check of what it returns on each watched layer's volumes of
        the ordering pass's input, so a rule that does not give one threshold per volume fails at the sanity check,
        not after an epoch of training (as in the evaluation, before any Betti number)."""
        rule = self.config.threshold
        if self.config.complex != "cubical" or not callable(rule):
            return None
        layout = token_layout(pl_module, probe)

        def check(name: str, output: Tensor) -> None:
            if output.ndim > 4:
                return  # not a volume: the evaluation says so for the layer
            try:
                sublevel_thresholds(cubical_volumes(output.detach(), layout), rule)
            except ThresholdRuleError as err:
                raise ThresholdRuleError(f"layer '{name}': {err}") from err

        return check

    def _send_charts(
        self, trainer: Trainer, records: list[dict[str, Any]], diagrams: dict[str, PersistenceDiagrams]
    ) -> None:
        wanted = {kind for kind, _ in chart_targets(trainer)}
        if "png" not in self.chart_kinds and not wanted & set(self.chart_kinds):
            loggers = [type(logger).__name__ for logger in trainer.loggers]
            self._warn_once(
                "no-chart-target",
                f"TopologyCallback: charts={list(self.chart_kinds)} and the trainer's loggers are {loggers}: no chart "
                "is drawn. Add the logger those charts are for, or include 'png' (PNG files under the log dir of "
                "any logger), or charts='auto'.",
            )
        if {"tensorboard", "png"} & wanted & set(self.chart_kinds) and not _MATPLOTLIB_AVAILABLE:
            self._warn_once(
                "no-mpl",
                'TopologyCallback: figures for TensorBoard / PNG need matplotlib: pip install "lightning-topo[plot]"; '
                "skipping them.",
            )
        writer = self._charts if trainer.state.fn == "fit" else self._validate_charts_writer
        writer.send(trainer, records, diagrams)

    def plot(self, validate: bool = False) -> dict[str, Any]:
        """Matplotlib figures of the fit's history so far: ``betti_vs_depth`` (latest evaluation), ``omega_history``
        (Omega vs depth, a line per epoch) and ``decay``, and with ``persistence`` set a
        ``persistence_diagram/{layer}`` per watched layer (the latest evaluation's diagrams; for notebooks; needs
        matplotlib). Empty before the first evaluation.

        Args:
            validate: the figures of the ``trainer.validate`` runs instead (:attr:`validate_history` and the
                diagrams of the latest of them): a ``validate`` run between two plots of the fit changes neither.
        """
        history = self.validate_history if validate else self.history
        if not history:
            warnings.warn(
                f"TopologyCallback.plot(): no {'validate run' if validate else 'evaluation'} recorded by this object "
                "yet (a fit under strategy='ddp_spawn', 'ddp_fork' or 'ddp_notebook' runs on copies of it in other "
                "processes: its history is in the checkpoints and its values in the loggers).",
                UserWarning,
                stacklevel=2,
            )
            return {}
        if validate:
            return figures_of(self.validate_history, self._diagrams_of["validate"])
        return figures_of(self.history, self._diagrams_of["fit"])

    # ------------------------------------------------------------------ logging
    def metrics_of(self, result: TopologyResult) -> dict[str, float]:
        """The flat ``{prefix}/...`` scalars of one evaluation (what gets logged)."""
        metrics: dict[str, float] = {}
        p = self.prefix
        for layer in result.layers:
            betti = layer.class_betti()  # (C, K), also for one class
            mean = torch.nanmean(betti, dim=0) if layer.problem is None else betti[0]
            for i in range(self.config.betti_dims):
                metrics[f"{p}/{layer.name}/{_BETTI_KEYS[i]}"] = float(mean[i])
            metrics[f"{p}/{layer.name}/omega"] = layer.omega
            for key, value in layer.mean_persistence().items():
                metrics[f"{p}/{layer.name}/{key}"] = value
            if self.log_per_class:
                persistence = layer.class_persistence()
                for j, (row, c) in enumerate(zip(betti, result.classes, strict=False)):
                    for i in range(self.config.betti_dims):
                        metrics[f"{p}/{layer.name}/class_{c}/{_BETTI_KEYS[i]}"] = float(row[i])
                    for key, values in persistence.items():
                        metrics[f"{p}/{layer.name}/class_{c}/{key}"] = float(values[j])
        omega_last = result.layers[-1].omega if result.layers else math.nan
        for key, value in zip(RUN_KEYS, (result.theta, result.decay_rate, omega_last), strict=True):
            metrics[f"{p}/{key}"] = value
        return metrics

    def _log(self, trainer: Trainer, result: TopologyResult) -> None:
        metrics = self.metrics_of(result)
        values = {key: torch.tensor(value) for key, value in metrics.items()}
        # Every rank: the values are already identical on all of them (the metric states were reduced).
        trainer.callback_metrics.update(values)
        if trainer.sanity_checking or not trainer.loggers:
            return  # as Lightning: nothing reaches the loggers during the sanity check
        trainer.logged_metrics.update(values)
        log_scalars(trainer, metrics)

    def _record(self, trainer: Trainer, result: TopologyResult) -> dict[str, Any]:
        layers = {}
        for layer in result.layers:
            layers[layer.name] = {
                "betti": [[float(v) for v in row] for row in layer.class_betti().tolist()],
                "omega": float(layer.omega),
                "problem": layer.problem,
                "module": self._module_types.get(layer.name),
            }
            if layer.persistence is not None:  # per class, as "betti"
                layers[layer.name]["persistence"] = {
                    k: [float(v) for v in t.tolist()] for k, t in layer.class_persistence().items()
                }
        return {
            "epoch": int(trainer.current_epoch),
            "global_step": int(trainer.global_step),
            "step": logging_step(trainer),
            "classes": [int(c) for c in result.classes],
            "layers": layers,
            "theta": float(result.theta),
            "decay_rate": float(result.decay_rate),
        }

    def _warn_once(self, key: str, message: str, *, info: bool = False) -> None:
        if key not in self._warned:
            self._warned.add(key)
            (rank_zero_info if info else rank_zero_warn)(message)


def _is_empty(loader: Any) -> bool:
    """Whether a validation loader is known to yield nothing (of length 0: no batch, or its dataset no item)."""
    try:
        return len(loader) == 0
    except TypeError:  # not sized (an IterableDataset): not known to be empty
        return False


def _differences(saved: dict[str, Any], now: dict[str, Any]) -> dict[str, str]:
    """``{"saved": "k=10, seed=1", "now": "k=14, seed=0"}`` for the settings that differ (empty when none do)."""
    names = [n for n in sorted(set(saved) | set(now)) if saved.get(n) != now.get(n)]
    if not names:
        return {}
    return {
        "saved": ", ".join(f"{n}={saved.get(n)!r}" for n in names),
        "now": ", ".join(f"{n}={now.get(n)!r}" for n in names),
    }
