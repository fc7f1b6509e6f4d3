"""`TopologyEarlyStopping`: stop when the embeddings' topology has stopped simplifying.

Two criteria, either of which stops the run:

1. **Plateau** (Lightning's ``EarlyStopping`` arithmetic): the monitored decay rate (default
   ``topology/decay_rate``, higher = more simplification, ``mode="max"``), smoothed by an exponential moving
   average (``ema_alpha``, default 0.3), has not improved by more than ``min_delta`` (default 0.05, relative to
   the best value so far: ``min_delta_mode="rel"``) for ``patience`` (default 15) evaluations.
   ``stopping_threshold`` / ``divergence_threshold`` work as in ``EarlyStopping``, on the smoothed value.
2. **Betti floor** (optional, ``floor_patience``): the deepest watched layer's Omega
   (``topology/omega_last``) has been ``<= floor + floor_tol`` (default 1.05: one component, no
   holes — Naitzat et al.'s end point) for ``floor_patience`` consecutive evaluations.

The defaults come from ``examples/stopping_rules.py`` (``docs/findings/stopping_rules``): every rule on the same
recorded trajectories of three tasks; no topology rule kept the accuracy of training to the end within 0.005
in half the epochs, and this one lost the least accuracy among those that halved the epochs on every task.
The old defaults (patience 3, no smoothing, ``min_delta=0``) stopped after a few epochs, far from converged.

An evaluation whose monitored value is NaN/Inf (a layer with NaN activations, or an all-zero Omega
curve; see ``TopologyCallback``) is skipped with a warning instead of stopping the run, unless
``check_finite=True``; it does not enter the moving average. The floor rule likewise skips evaluations where
``floor_key`` is not finite.

**Only fresh evaluations count.** When the trainer has a ``TopologyCallback`` (found in ``trainer.callbacks``),
a check counts only if one of them evaluated at this point of training (the last record of its ``history`` has
this ``epoch`` and ``global_step``). With ``TopologyCallback(every_n_epochs=n)`` the validations in between
are skipped: they are no error (even with ``strict=True``), and the values they would see, still in
``trainer.callback_metrics`` from the last evaluation, are not counted again, so ``patience``, the moving
average and ``floor_patience`` count evaluations, not epochs. Without a ``TopologyCallback`` (values logged by
the module itself) every check counts, as in ``EarlyStopping``: a repeated value is a plateau, not a stale one.
"""

from __future__ import annotations

import ast
import difflib
import inspect
import math
import numbers
from typing import Any

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import EarlyStopping
from lightning.pytorch.callbacks.early_stopping import EarlyStoppingReason
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from lightning.pytorch.utilities.rank_zero import rank_zero_info, rank_zero_warn
from torch import Tensor
from typing_extensions import override

from lightning_topo.callbacks.topology import DEFAULT_PREFIX, RUN_KEYS, TopologyCallback, TopologyMisconfiguration
from lightning_topo.functional._checks import check_int

__all__ = ["TopologyEarlyStopping"]


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


MIN_DELTA_MODES = ("abs", "rel")


class TopologyEarlyStopping(EarlyStopping):
    """Early stopping on the (smoothed) topology decay rate, with an optional Betti-floor rule.

    Args:
        monitor: the logged key to watch (default ``"topology/decay_rate"``).
        mode: ``"max"`` (default: the normalised decay rises while the net simplifies) or ``"min"``
            (e.g. for ``monitor="topology/theta"``).
        patience: evaluations without improvement before stopping (integer >= 1, default 15); with a
            ``TopologyCallback`` in the trainer, only its evaluations count (see "Only fresh evaluations count").
        min_delta: smallest change that counts as an improvement (finite, >= 0; default 0.05, read as a fraction
            of the best value so far under the default ``min_delta_mode="rel"``). The attribute ``min_delta`` then
            holds ``EarlyStopping``'s signed absolute threshold of the last evaluation (negative in ``mode="min"``;
            under ``"rel"`` recomputed as this fraction times ``|best|`` at each one).
        floor_patience: stop once ``floor_key`` has been ``<= floor + floor_tol`` for this many consecutive
            evaluations (integer >= 1; ``None``, the default, disables the rule).
        floor_key: the logged Omega of the deepest layer (default ``"topology/omega_last"``). With
            ``strict=True`` (the default) a missing key raises, as a missing ``monitor`` does.
        floor: the Betti floor (default 1.0: b0 = 1, no holes).
        floor_tol: tolerance above the floor (finite, >= 0; default 0.05).
        check_finite: stop when the monitored value is NaN/Inf (default False: skip that evaluation).
        log_rank_zero_only: log the status messages (``verbose=True``) on rank 0 only (default True).
        min_delta_mode: ``"rel"`` (default): an improvement must beat the best value so far by more than
            ``min_delta * |best|`` (the first finite value always counts); ``"abs"``: by more than ``min_delta``,
            as in ``EarlyStopping``.
        ema_alpha: watch the exponential moving average ``s = ema_alpha * x + (1 - ema_alpha) * s_prev`` of the
            monitored value ``x`` (started at the first finite value) instead of ``x``: a number in (0, 1]
            (default 0.3; 1 = the raw value), or ``None`` for the raw value. ``stopping_threshold`` and
            ``divergence_threshold`` apply to the average.
        **kwargs: passed on to ``EarlyStopping`` (``verbose``, ``strict``, ``stopping_threshold``,
            ``divergence_threshold``); checks always run at the end of validation, where the topology values are
            computed (``check_on_train_epoch_end=True`` is refused).

    Attributes:
        wait_count: evaluations since the last improvement of ``monitor`` (from ``EarlyStopping``).
        best_score: the best (smoothed) value so far, a float64 CPU tensor (from ``EarlyStopping``).
        relative_min_delta: the ``min_delta`` argument under ``min_delta_mode="rel"`` (``None`` under ``"abs"``).
        ema_value: the current moving average of ``monitor`` (``None`` before the first finite value, or without
            smoothing).
        floor_count: consecutive evaluations at the floor so far.
        floor_reached: True once the floor rule stopped the run.
        evaluations: the checks counted so far (fresh evaluations; see the module documentation).
        stopping_reason: an ``EarlyStoppingReason``; the floor rule reports ``STOPPING_THRESHOLD`` (the floor is
            a threshold on ``floor_key``) and sets ``floor_reached``. When both rules fire at the same
            evaluation, the plateau/threshold reason of ``EarlyStopping`` is reported.
        stopping_reason_message: a human-readable reason (the floor rule's starts with ``"Betti floor reached"``).

    The counters and the moving average are saved in checkpoints (``state_dict``) and restored on resume. Under
    DDP every rank evaluates the rules on its ``trainer.callback_metrics`` and the stop decision is reduced with
    ``trainer.strategy.reduce_boolean_decision`` (any rank stopping stops all); the reason attributes are set
    on the ranks whose own evaluation decided to stop. ``examples/stopping_rules.py`` simulates the same rules
    offline on recorded series (``plateau_stop``, ``floor_stop``); a test checks that both stop at the same epoch.

    Raises:
        MisconfigurationException: for an invalid argument (as ``EarlyStopping`` does for ``mode``); the
            message lists the valid values.

    Example:
        >>> from lightning.pytorch import LightningModule, Trainer
        >>> from lightning_topo import TopologyCallback
        >>> stopper = TopologyEarlyStopping(floor_patience=2)
        >>> trainer = Trainer(callbacks=[TopologyCallback(), stopper], logger=False, enable_progress_bar=False)
        >>> stopper.state_key
        "TopologyEarlyStopping{'monitor': 'topology/decay_rate', 'mode': 'max', 'min_delta_mode': 'rel', \
'ema_alpha': 0.3, 'floor_key': 'topology/omega_last', 'floor_patience': 2, 'floor': 1.0, 'floor_tol': 0.05}"
    """

    def __init__(
        self,
        monitor: str = "topology/decay_rate",
        mode: str = "max",
        patience: int = 15,
        min_delta: float = 0.05,
        floor_patience: int | None = None,
        floor_key: str = "topology/omega_last",
        floor: float = 1.0,
        floor_tol: float = 0.05,
        check_finite: bool = False,
        log_rank_zero_only: bool = True,
        min_delta_mode: str = "rel",
        ema_alpha: float | None = 0.3,
        **kwargs: Any,
    ) -> None:
        for name, key in (("monitor", monitor), ("floor_key", floor_key)):
            if not isinstance(key, str) or not key:
                raise MisconfigurationException(f"`{name}` must be a non-empty logged metric name, got {key!r}.")
        if mode not in self.mode_dict:
            raise MisconfigurationException(f"`mode` must be one of 'min', 'max', got {mode!r}.")
        patience = check_int(patience, "patience", 1, error=MisconfigurationException)
        if not _is_real(min_delta) or min_delta < 0:
            raise MisconfigurationException(f"`min_delta` must be a finite number >= 0, got {min_delta!r}.")
        if min_delta_mode not in MIN_DELTA_MODES:
            raise MisconfigurationException(
                f"`min_delta_mode` must be one of 'abs', 'rel' (a fraction of the best value), got {min_delta_mode!r}."
            )
        if ema_alpha is not None and (not _is_real(ema_alpha) or not 0 < ema_alpha <= 1):
            raise MisconfigurationException(
                f"`ema_alpha` must be None (no smoothing) or a number in (0, 1], got {ema_alpha!r}."
            )
        floor_patience = check_int(
            floor_patience, "floor_patience", 1, allow_none="floor rule off", error=MisconfigurationException
        )
        if not _is_real(floor):
            raise MisconfigurationException(f"`floor` must be a finite number, got {floor!r}.")
        if not _is_real(floor_tol) or floor_tol < 0:
            raise MisconfigurationException(f"`floor_tol` must be a finite number >= 0, got {floor_tol!r}.")
        accepted = [n for n in inspect.signature(EarlyStopping.__init__).parameters if n != "self"]
        unknown = sorted(set(kwargs) - set(accepted))
        if unknown:
            own = [
                n for n in inspect.signature(TopologyEarlyStopping.__init__).parameters if n not in ("self", "kwargs")
            ]
            close = {u: difflib.get_close_matches(u, [*own, *accepted], n=1) for u in unknown}
            hints = "; ".join(f"`{u}`: did you mean `{c[0]}`?" for u, c in close.items() if c)
            raise MisconfigurationException(
                f"TopologyEarlyStopping got unknown argument(s) {unknown}{' (' + hints + ')' if hints else ''}. It "
                f"takes {sorted(set(own) | set(accepted))}."
            )
        if kwargs.get("check_on_train_epoch_end"):
            raise MisconfigurationException(
                "`check_on_train_epoch_end=True` is not supported: the topology values are computed at the end of "
                "validation, so TopologyEarlyStopping checks there."
            )
        kwargs["check_on_train_epoch_end"] = False
        super().__init__(
            monitor=monitor,
            mode=mode,
            patience=patience,
            min_delta=float(min_delta),
            check_finite=check_finite,
            log_rank_zero_only=log_rank_zero_only,
            **kwargs,
        )
        self.min_delta_mode = min_delta_mode
        self.relative_min_delta = float(min_delta) if min_delta_mode == "rel" else None
        self.ema_alpha = None if ema_alpha is None else float(ema_alpha)
        self.ema_value: float | None = None
        self.floor_patience = floor_patience
        self.floor_key = floor_key
        self.floor = float(floor)
        self.floor_tol = float(floor_tol)
        self.floor_count = 0
        self.floor_reached = False
        self.evaluations = 0
        self._records_seen: list[dict[str, Any]] = []  # the TopologyCallbacks' last history records at the last check

    @property
    @override
    def state_key(self) -> str:
        return self._generate_state_key(**self._key_settings())

    def _key_settings(self) -> dict[str, Any]:
        """The settings the state is saved under (Lightning's ``state_key``): a resumed run restores the state of a
        ``TopologyEarlyStopping`` with these same values only."""
        return {
            "monitor": self.monitor,
            "mode": self.mode,
            "min_delta_mode": self.min_delta_mode,
            "ema_alpha": self.ema_alpha,
            "floor_key": self.floor_key,
            "floor_patience": self.floor_patience,
            "floor": self.floor,
            "floor_tol": self.floor_tol,
        }

    @override
    def on_load_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        """Say which saved early-stopping state this run does not restore, and why: Lightning keys it by the
        settings, and with another ``ema_alpha`` (say) it drops it quietly and the counts start afresh."""
        saved = checkpoint.get("callbacks") or {}
        name = type(self).__name__
        mine = [cb for cb in trainer.callbacks if isinstance(cb, TopologyEarlyStopping)]  # type: ignore[attr-defined]
        if self is not mine[0]:
            return  # one message per checkpoint
        ours = {cb.state_key for cb in mine}
        now = self._key_settings()
        for key in saved:
            if not (isinstance(key, str) and key.startswith(name + "{")) or key in ours:
                continue
            try:
                settings = ast.literal_eval(key[len(name) :])
            except (ValueError, SyntaxError):
                settings = None
            if isinstance(settings, dict):
                names = [n for n in now if settings.get(n) != now[n]]
                what = (
                    "it was saved with "
                    + ", ".join(f"{n}={settings.get(n)!r}" for n in names)
                    + "; this callback has "
                    + ", ".join(f"{n}={now[n]!r}" for n in names)
                )
            else:
                what = "it was saved under another state key"
            rank_zero_warn(
                f"TopologyEarlyStopping: the checkpoint's early-stopping state (best score, patience count, moving "
                f"average, floor count) is not restored: {what}. The counts start afresh; pass the same values to "
                "resume them."
            )

    @override
    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state.update(
            floor_count=self.floor_count,
            floor_reached=self.floor_reached,
            ema_value=self.ema_value,
            evaluations=self.evaluations,
        )
        return state

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        patience = self.patience
        super().load_state_dict(state_dict)  # Lightning's restores `patience` too: this run's is kept
        if self.patience != patience:
            rank_zero_info(
                f"TopologyEarlyStopping: resumed with patience={patience} (the checkpoint's run had "
                f"{self.patience}); the count of evaluations without improvement ({self.wait_count}) is restored."
            )
            self.patience = patience
        # `.get`: a state saved by a plain `EarlyStopping` has no floor entries.
        self.floor_count = int(state_dict.get("floor_count", 0))
        self.floor_reached = bool(state_dict.get("floor_reached", False))
        self.evaluations = int(state_dict.get("evaluations", 0))
        ema = state_dict.get("ema_value")
        self.ema_value = None if ema is None else float(ema)

    @override
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """``EarlyStopping``'s set-up, and a warning when ``monitor`` is a ``topology/...`` value and no
        ``TopologyCallback`` is in the trainer to log it (the first check would then fail: "not available")."""
        super().setup(trainer, pl_module, stage)
        prefixes = [cb.prefix for cb in trainer.callbacks if isinstance(cb, TopologyCallback)]  # type: ignore[attr-defined]
        if stage != "fit":
            return
        for key in (self.monitor, self.floor_key if self.floor_patience is not None else None):
            rest = next((key[len(p) + 1 :] for p in prefixes if key and key.startswith(f"{p}/")), None)
            if rest is not None and "/" not in rest and rest not in RUN_KEYS:  # a run-level key it never logs
                close = difflib.get_close_matches(rest, RUN_KEYS, n=1)
                hint = f" (did you mean '{key[: len(key) - len(rest)]}{close[0]}'?)" if close else ""
                raise TopologyMisconfiguration(
                    f"TopologyEarlyStopping watches `{key}`, which the TopologyCallback never logs{hint}: its "
                    f"run-level values are {list(RUN_KEYS)}, and per layer '{{prefix}}/{{layer}}/b0' and the like."
                )
        floor = self.floor_key if self.floor_patience is not None else None
        if floor is not None and prefixes and not any(floor.startswith(f"{p}/") for p in prefixes):
            run_key = floor.rsplit("/", 1)[-1]
            if floor.startswith(f"{DEFAULT_PREFIX}/") and run_key in RUN_KEYS:
                raise TopologyMisconfiguration(
                    f"TopologyEarlyStopping's floor rule watches `{floor}`, and the trainer's TopologyCallbacks log "
                    f"under {[f'{p}/' for p in prefixes]}: pass floor_key='{prefixes[0]}/{run_key}'."
                )
        if any(self.monitor.startswith(f"{p}/") for p in prefixes):
            return
        key = self.monitor.rsplit("/", 1)[-1]
        if not (self.monitor.startswith(f"{DEFAULT_PREFIX}/") or (prefixes and key in RUN_KEYS)):
            return  # a value of the user's own
        if not prefixes:
            rank_zero_warn(
                f"TopologyEarlyStopping watches `{self.monitor}`, and the trainer has no TopologyCallback to log it: "
                "add lightning_topo.TopologyCallback() to the Trainer's callbacks (or log the value yourself)."
            )
        else:
            rank_zero_warn(
                f"TopologyEarlyStopping watches `{self.monitor}`, and the trainer's TopologyCallbacks log under "
                f"{[f'{p}/' for p in prefixes]}: pass monitor='{prefixes[0]}/{key}' (and "
                f"floor_key='{prefixes[0]}/omega_last' for the floor rule)."
            )

    @override
    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Run ``EarlyStopping``'s own check on the smoothed value of a fresh evaluation, then the floor rule.

        Only public surface is used: for the duration of ``EarlyStopping.on_validation_end`` the moving average is
        in ``trainer.callback_metrics`` under a key of its own (``"topology/decay_rate (EMA 0.3)"``), which the
        documented ``monitor`` attribute names; the relative ``min_delta`` is set on the documented ``min_delta``
        attribute before it. Both are restored after the call. So the plateau rule's arithmetic, thresholds,
        messages and the agreement across ranks are Lightning's.
        """
        if trainer.state.fn != "fit" or trainer.sanity_checking or trainer.fast_dev_run:
            return  # as EarlyStopping: no checks outside fitting, during the sanity check or under fast_dev_run
        if not self._fresh_evaluation(trainer):
            return  # the same on every rank: each rank's TopologyCallback records every evaluation
        self.evaluations += 1
        logs = trainer.callback_metrics
        # EarlyStopping sets `stopped_epoch` where it decides to stop: from -1 here, its own decision is told apart
        # from another stopper's at the same check (each says its reason).
        epoch_before, self.stopped_epoch = self.stopped_epoch, -1
        raw = logs.get(self.monitor)
        finite = raw is not None and bool(torch.isfinite(raw).all())
        if raw is not None and not finite and not self.check_finite:
            rank_zero_warn(
                f"TopologyEarlyStopping: {self.monitor} = {float(raw.squeeze())} at epoch {trainer.current_epoch}; "
                "this evaluation is skipped (see the TopologyCallback warning for the layer at fault).",
                category=UserWarning,
            )
        elif not finite:  # missing (strict: EarlyStopping raises naming it) or non-finite with check_finite
            super().on_validation_end(trainer, pl_module)
        else:
            # EarlyStopping watches the smoothed float64 value under a key of its own for this one call (a value
            # logged with `self.log` is re-read from Lightning's results at each access, so it cannot be replaced).
            monitor, watched = self.monitor, self._watched_key()
            logs[watched] = self._smoothed(raw)
            self._set_min_delta()
            self.monitor = watched
            try:
                super().on_validation_end(trainer, pl_module)
            finally:
                self.monitor = monitor
                logs.pop(watched, None)
        plateau_stop = self.stopped_epoch == trainer.current_epoch
        if not plateau_stop:
            self.stopped_epoch = epoch_before
        floor_stop, floor_reason = self._evaluate_floor(trainer, logs)
        if self.floor_patience is not None:  # the same on every rank
            floor_stop = trainer.strategy.reduce_boolean_decision(floor_stop, all=False)
        if floor_stop and not plateau_stop:
            trainer.should_stop = True
            self.stopped_epoch = trainer.current_epoch
            self.floor_reached = True
            self.stopping_reason = EarlyStoppingReason.STOPPING_THRESHOLD
            self.stopping_reason_message = floor_reason or "another process reached the Betti floor"
            if floor_reason and self.verbose:
                rank_zero_info(f"TopologyEarlyStopping: {floor_reason}")
        if (plateau_stop or floor_stop) and not self.verbose:
            # Without `verbose` the run still says why it ended (once, on rank zero): a silent stop looks like a bug.
            least, steps = trainer.min_epochs or 0, trainer.min_steps or 0
            short = [f"min_epochs={least}"] if trainer.current_epoch + 1 < least else []
            short += [f"min_steps={steps}"] if trainer.global_step < steps else []
            what = (
                f"asks the run to stop at epoch {trainer.current_epoch} (Lightning trains on to {' and '.join(short)})"
                if short
                else f"stopped the run at epoch {trainer.current_epoch}"
            )
            rank_zero_info(
                f"TopologyEarlyStopping {what}: {self.stopping_reason_message or 'another process decided to stop'}"
            )

    @override
    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Nothing: the topology values come from validation, so the checks run in :meth:`on_validation_end`."""

    def _watched_key(self) -> str:
        """The name EarlyStopping's messages give the value it compares: the moving average, in float64."""
        return f"{self.monitor} (EMA {self.ema_alpha})" if self.ema_alpha is not None else f"{self.monitor} (float64)"

    def _smoothed(self, current: Tensor) -> Tensor:
        """The moving average after ``current`` (in float64 on the CPU, the arithmetic of the offline simulation in
        ``examples/stopping_rules.py``, so both stop at the same evaluation); ``current`` itself without smoothing."""
        value = current.detach().squeeze().to(device="cpu", dtype=torch.float64)
        if self.ema_alpha is None:
            return value
        x = float(value)
        self.ema_value = x if self.ema_value is None else self.ema_alpha * x + (1.0 - self.ema_alpha) * self.ema_value
        return torch.tensor(self.ema_value, dtype=torch.float64)

    def _set_min_delta(self) -> None:
        """Under ``min_delta_mode="rel"``: ``min_delta = relative_min_delta * |best|`` (signed as EarlyStopping's)."""
        if self.relative_min_delta is None:
            return
        best = float(self.best_score)
        delta = self.relative_min_delta * abs(best) if math.isfinite(best) else 0.0
        self.min_delta = delta if self.monitor_op == torch.gt else -delta

    def _fresh_evaluation(self, trainer: Trainer) -> bool:
        """Whether this check sees a new evaluation: the ``TopologyCallback`` whose ``prefix`` ``monitor`` names (any
        of the trainer's when none does) recorded one at this epoch and global step (``True`` when the trainer has
        none: every check counts, as in ``EarlyStopping``). Another callback's evaluation is not this monitor's: its
        value is stale (or not logged yet) then."""
        topology = [cb for cb in trainer.callbacks if isinstance(cb, TopologyCallback)]  # type: ignore[attr-defined]
        if not topology:
            return True
        named = [cb for cb in topology if self.monitor.startswith(f"{cb.prefix}/")]
        if named:  # the longest prefix: "topology/x" is not "topology"'s
            longest = max(len(cb.prefix) for cb in named)
            topology = [cb for cb in named if len(cb.prefix) == longest]
        here = (int(trainer.current_epoch), int(trainer.global_step))
        last = [cb.history[-1] for cb in topology if cb.history]
        fresh = any((record.get("epoch"), record.get("global_step")) == here for record in last)
        # (epoch, global step) is not unique: gradient accumulation can hold the step through several validations
        # of an epoch, and a check after one the callback skipped (every_n_epochs) saw the last record again. The
        # record objects tell: a new evaluation appends a new one (a restored history holds new objects too).
        if any(record is seen for record in last for seen in self._records_seen):
            fresh = False
        self._records_seen = last
        return fresh

    def _evaluate_floor(self, trainer: Trainer, logs: dict[str, Tensor]) -> tuple[bool, str | None]:
        """Update ``floor_count`` from ``logs[floor_key]``; return whether the floor rule stops, and why."""
        if self.floor_patience is None:
            return False, None
        value = logs.get(self.floor_key)
        if value is None:
            message = (
                f"TopologyEarlyStopping: the floor rule watches `{self.floor_key}`, which is not logged. Log it "
                f"(TopologyCallback does) or pass one of: `{'`, `'.join(logs.keys())}`"
            )
            if self.strict:
                raise RuntimeError(message)
            rank_zero_warn(message, category=RuntimeWarning)
            return False, None
        value = value.squeeze()
        if not bool(torch.isfinite(value).all()):
            rank_zero_warn(
                f"TopologyEarlyStopping: {self.floor_key} = {float(value)} at epoch {trainer.current_epoch}; the "
                "floor rule skips this evaluation."
            )
            return False, None
        level = self.floor + self.floor_tol
        self.floor_count = self.floor_count + 1 if float(value) <= level else 0
        if self.floor_count < self.floor_patience:
            return False, None
        return True, (
            f"Betti floor reached: {self.floor_key} = {float(value):.3f} <= {self.floor} + {self.floor_tol} for "
            f"{self.floor_count} consecutive evaluations. Signaling Trainer to stop."
        )
