"""`TopologyEarlyStopping`: stop when the embeddings' topology has stopped simplifying.

Two criteria, either of which stops the run:

1. **Plateau** (Lightning's ``EarlyStopping``): the monitored decay rate (default
   ``topology/decay_rate``, higher = more simplification, ``mode="max"``) has not improved by more
   than ``min_delta`` for ``patience`` evaluations.
2. **Betti floor** (optional, ``floor_patience``): the deepest watched layer's Omega
   (``topology/omega_last``) has stayed within ``floor_tol`` of ``floor`` (1 = one component, no holes:
   Naitzat et al.'s end point) for ``floor_patience`` consecutive evaluations.

An evaluation whose monitored value is NaN (a layer with NaN activations, see ``TopologyCallback``) is
skipped with a warning instead of stopping the run, unless ``check_finite=True``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import EarlyStopping
from lightning.pytorch.callbacks.early_stopping import EarlyStoppingReason
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from lightning.pytorch.utilities.rank_zero import rank_zero_warn
from torch import Tensor
from typing_extensions import override

__all__ = ["TopologyEarlyStopping"]


class TopologyEarlyStopping(EarlyStopping):
    """Early stopping on the topology decay rate, with an optional Betti-floor rule.

    Args:
        monitor: the logged key to watch (default ``"topology/decay_rate"``).
        mode: ``"max"`` (default: the normalised decay rises while the net simplifies) or ``"min"``
            (e.g. for ``"topology/theta"``).
        patience: evaluations without improvement before stopping (default 3).
        min_delta: smallest change that counts as an improvement.
        floor_patience: stop once ``floor_key`` has been ``<= floor + floor_tol`` for this many consecutive
            evaluations (``None``, the default, disables the rule).
        floor_key: the logged Omega of the deepest layer (default ``"topology/omega_last"``).
        floor: the Betti floor (default 1.0: b0 = 1, no holes).
        floor_tol: tolerance above the floor (default 0.05).
        check_finite: stop when the monitored value is NaN/Inf (default False: skip that evaluation).
        **kwargs: passed on to ``EarlyStopping`` (``verbose``, ``strict``, ``stopping_threshold``, ...).

    After stopping, ``stopping_reason`` / ``stopping_reason_message`` say why, as for ``EarlyStopping``;
    the floor rule reports ``EarlyStoppingReason.STOPPING_THRESHOLD`` and sets ``floor_reached = True``.

    Example:
        >>> from lightning.pytorch import Trainer
        >>> from lightning_topo import TopologyCallback
        >>> trainer = Trainer(callbacks=[TopologyCallback(), TopologyEarlyStopping(floor_patience=2)],
        ...                   logger=False, enable_progress_bar=False)
    """

    def __init__(
        self,
        monitor: str = "topology/decay_rate",
        mode: str = "max",
        patience: int = 3,
        min_delta: float = 0.0,
        floor_patience: int | None = None,
        floor_key: str = "topology/omega_last",
        floor: float = 1.0,
        floor_tol: float = 0.05,
        check_finite: bool = False,
        **kwargs: Any,
    ) -> None:
        if mode not in ("min", "max"):
            raise MisconfigurationException(f"`mode` must be one of ('min', 'max'), got {mode!r}.")
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise MisconfigurationException(f"`patience` must be an integer >= 1, got {patience!r}.")
        if floor_patience is not None and (
            isinstance(floor_patience, bool) or not isinstance(floor_patience, int) or floor_patience < 1
        ):
            raise MisconfigurationException(
                f"`floor_patience` must be None or an integer >= 1, got {floor_patience!r}."
            )
        if not (math.isfinite(floor) and math.isfinite(floor_tol) and floor_tol >= 0):
            raise MisconfigurationException(
                f"`floor` must be finite and `floor_tol` finite and >= 0, got floor={floor!r}, floor_tol={floor_tol!r}."
            )
        super().__init__(
            monitor=monitor, mode=mode, patience=patience, min_delta=min_delta, check_finite=check_finite, **kwargs
        )
        self.floor_patience = floor_patience
        self.floor_key = floor_key
        self.floor = float(floor)
        self.floor_tol = float(floor_tol)
        self.floor_count = 0
        self.floor_reached = False
        self._logs: dict[str, Tensor] = {}

    @property
    @override
    def state_key(self) -> str:
        return self._generate_state_key(
            monitor=self.monitor,
            mode=self.mode,
            floor_key=self.floor_key,
            floor_patience=self.floor_patience,
            floor=self.floor,
        )

    @override
    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state.update(floor_count=self.floor_count, floor_reached=self.floor_reached)
        return state

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self.floor_count = int(state_dict.get("floor_count", 0))
        self.floor_reached = bool(state_dict.get("floor_reached", False))

    @override
    def _run_early_stopping_check(self, trainer: Trainer) -> None:
        self._logs = dict(trainer.callback_metrics)
        current = self._logs.get(self.monitor)
        if current is not None and not self.check_finite and not bool(torch.isfinite(current).all()):
            rank_zero_warn(
                f"TopologyEarlyStopping: {self.monitor} is {float(current)} at epoch {trainer.current_epoch}; "
                "this evaluation is skipped (see the TopologyCallback warning for the layer at fault)."
            )
            return
        super()._run_early_stopping_check(trainer)

    @override
    def _evaluate_stopping_criteria(self, current: Tensor) -> tuple[bool, str | None]:
        should_stop, reason = super()._evaluate_stopping_criteria(current)
        if should_stop or self.floor_patience is None:
            return should_stop, reason
        value = self._logs.get(self.floor_key)
        if value is None or not bool(torch.isfinite(value).all()):
            return should_stop, reason
        if float(value) <= self.floor + self.floor_tol:
            self.floor_count += 1
        else:
            self.floor_count = 0
        if self.floor_count >= self.floor_patience:
            self.floor_reached = True
            self.stopping_reason = EarlyStoppingReason.STOPPING_THRESHOLD
            reason = (
                f"Betti floor reached: {self.floor_key} = {float(value):.3f} <= {self.floor} + {self.floor_tol} for "
                f"{self.floor_count} consecutive evaluations. Signaling Trainer to stop."
            )
            return True, reason
        return should_stop, reason
