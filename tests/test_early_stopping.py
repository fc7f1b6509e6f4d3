"""TopologyEarlyStopping: plateau and Betti-floor rules, reasons, state, resume; scripted and real values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.callbacks.early_stopping import EarlyStoppingReason
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from torch.utils.data import DataLoader, TensorDataset

from lightning_topo import TopologyCallback, TopologyEarlyStopping
from lightning_topo.datasets import DigitsDataModule
from lightning_topo.models import Classifier, digits_cnn

NAN = float("nan")


class Scripted(LightningModule):
    """Logs a scripted decay rate and deepest-layer Omega at the end of each validation epoch."""

    def __init__(self, decay: list[float], omega_last: list[float] | None = None) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)
        self.decay = decay
        self.omega_last = omega_last if omega_last is not None else [5.0] * len(decay)

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self.layer(batch[0]).pow(2).mean()

    def validation_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        pass

    def on_validation_epoch_end(self) -> None:
        e = self.current_epoch
        self.log("topology/decay_rate", self.decay[e], on_epoch=True)
        self.log("topology/omega_last", self.omega_last[e], on_epoch=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)


class Probe(Callback):
    """Records the stopper's counters when training (re)starts, i.e. right after a checkpoint is restored."""

    def __init__(self, stopper: TopologyEarlyStopping) -> None:
        self.stopper = stopper
        self.at_start: dict[str, Any] = {}

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        s = self.stopper
        self.at_start = {"wait_count": s.wait_count, "floor_count": s.floor_count, "best": float(s.best_score)}


def _loader() -> DataLoader:
    return DataLoader(TensorDataset(torch.randn(8, 2)), batch_size=4)


def _fit(model: LightningModule, callbacks: list[Callback], root: Path, epochs: int = 10, **kw: Any) -> Trainer:
    trainer = Trainer(
        max_epochs=epochs,
        callbacks=callbacks,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=any(isinstance(c, ModelCheckpoint) for c in callbacks),
        default_root_dir=root,
        num_sanity_val_steps=0,
        accelerator="cpu",
    )
    trainer.fit(model, _loader(), _loader(), **kw)
    return trainer


@pytest.mark.parametrize(
    "make",
    [
        lambda: EarlyStopping(monitor="topology/decay_rate", mode="max", patience=2),
        lambda: TopologyEarlyStopping(patience=2),
    ],
    ids=["EarlyStopping", "Topology"],
)
def test_plateau_stops_with_patience_reason(tmp_path: Path, make: Any) -> None:
    decay = [0.1, 0.3, 0.5, 0.5, 0.49, 0.5, 0.6, 0.7, 0.8, 0.9]
    stopper = make()
    trainer = _fit(Scripted(decay), [stopper], tmp_path)
    assert stopper.stopped_epoch == 4  # best 0.5 at epoch 2; no improvement at epochs 3 and 4
    assert stopper.stopping_reason == EarlyStoppingReason.PATIENCE_EXHAUSTED
    assert "did not improve in the last 2 records" in stopper.stopping_reason_message
    assert trainer.current_epoch == 5 and float(stopper.best_score) == pytest.approx(0.5)


def test_theta_in_min_mode(tmp_path: Path) -> None:
    class Theta(Scripted):
        def on_validation_epoch_end(self) -> None:
            self.log("topology/theta", self.decay[self.current_epoch], on_epoch=True)

    stopper = TopologyEarlyStopping(monitor="topology/theta", mode="min", patience=1, min_delta=0.05)
    _fit(Theta([-0.1, -0.3, -0.32, -0.5, -0.6]), [stopper], tmp_path)
    assert stopper.stopped_epoch == 2  # -0.32 is not 0.05 below -0.3
    assert stopper.stopping_reason == EarlyStoppingReason.PATIENCE_EXHAUSTED


def test_betti_floor_stops_with_its_reason(tmp_path: Path) -> None:
    decay = [0.1 * i for i in range(10)]  # always improving: the plateau rule never fires
    omega_last = [4.0, 3.0, 1.02, 2.0, 1.04, 1.0, 1.01, 0.99, 1.0, 1.0]
    stopper = TopologyEarlyStopping(patience=5, floor_patience=3)
    trainer = _fit(Scripted(decay, omega_last), [stopper], tmp_path)
    assert stopper.stopped_epoch == 6  # epochs 4, 5, 6 at the floor (epoch 3 broke the first run)
    assert trainer.current_epoch == 7
    assert stopper.floor_reached and stopper.floor_count == 3
    assert stopper.stopping_reason == EarlyStoppingReason.STOPPING_THRESHOLD
    assert stopper.stopping_reason_message.startswith("Betti floor reached: topology/omega_last = 1.010")
    assert stopper.wait_count == 0


def test_floor_tolerance_and_plain_early_stopping_ignores_floor(tmp_path: Path) -> None:
    decay = [0.1 * i for i in range(6)]
    omega_last = [1.2] * 6  # above 1 + 0.05, within 1 + 0.25
    strict = TopologyEarlyStopping(floor_patience=2)
    _fit(Scripted(decay, omega_last), [strict], tmp_path, epochs=6)
    assert strict.stopping_reason == EarlyStoppingReason.NOT_STOPPED and strict.floor_count == 0
    loose = TopologyEarlyStopping(floor_patience=2, floor_tol=0.25)
    _fit(Scripted(decay, omega_last), [loose], tmp_path, epochs=6)
    assert loose.stopped_epoch == 1 and loose.floor_reached


def test_nan_evaluations_are_skipped_unless_check_finite(tmp_path: Path) -> None:
    decay = [0.1, NAN, NAN, 0.2, 0.3, 0.4]
    stopper = TopologyEarlyStopping(patience=2)
    with pytest.warns(UserWarning, match="skipped"):
        _fit(Scripted(decay), [stopper], tmp_path, epochs=6)
    assert stopper.stopping_reason == EarlyStoppingReason.NOT_STOPPED and stopper.wait_count == 0
    strict = TopologyEarlyStopping(patience=2, check_finite=True)
    _fit(Scripted(decay), [strict], tmp_path, epochs=6)
    assert strict.stopped_epoch == 1 and strict.stopping_reason == EarlyStoppingReason.NON_FINITE_METRIC


def test_missing_floor_key(tmp_path: Path) -> None:
    class NoFloor(Scripted):
        def on_validation_epoch_end(self) -> None:
            self.log("topology/decay_rate", self.decay[self.current_epoch], on_epoch=True)

    with pytest.raises(RuntimeError, match=r"topology/omega_last.*not logged"):
        _fit(NoFloor([0.1, 0.2]), [TopologyEarlyStopping(floor_patience=2)], tmp_path, epochs=2)
    lenient = TopologyEarlyStopping(floor_patience=2, strict=False)
    with pytest.warns(RuntimeWarning, match="not logged"):
        _fit(NoFloor([0.1, 0.2]), [lenient], tmp_path, epochs=2)
    assert lenient.stopping_reason == EarlyStoppingReason.NOT_STOPPED


def test_state_dict_round_trip() -> None:
    first = TopologyEarlyStopping(patience=5, floor_patience=4)
    first.wait_count, first.floor_count, first.best_score = 2, 3, torch.tensor(0.7)
    state = first.state_dict()
    assert state["floor_count"] == 3 and state["wait_count"] == 2 and state["floor_reached"] is False
    other = TopologyEarlyStopping(patience=5, floor_patience=4)
    other.load_state_dict(state)
    assert (other.wait_count, other.floor_count, float(other.best_score)) == (2, 3, pytest.approx(0.7))
    # A plain EarlyStopping state (no floor entries) loads with a zero floor count.
    plain = EarlyStopping(monitor="topology/decay_rate", mode="max").state_dict()
    other.load_state_dict(plain)
    assert other.floor_count == 0 and not other.floor_reached


def test_resume_restores_wait_and_floor_counters(tmp_path: Path) -> None:
    decay = [0.5, 0.4, 0.45, 0.3, 0.2, 0.1, 0.1, 0.1]  # best at epoch 0, then no improvement
    omega_last = [1.0] * 8
    ckpt_dir = tmp_path / "ckpt"

    def stopper() -> TopologyEarlyStopping:
        return TopologyEarlyStopping(patience=4, floor_patience=5)

    first = stopper()
    _fit(Scripted(decay, omega_last), [first, ModelCheckpoint(dirpath=ckpt_dir, save_last=True)], tmp_path, epochs=2)
    assert (first.wait_count, first.floor_count) == (1, 2)

    resumed = stopper()
    probe = Probe(resumed)
    callbacks = [resumed, probe, ModelCheckpoint(dirpath=tmp_path / "ckpt2", save_last=True)]
    _fit(Scripted(decay, omega_last), callbacks, tmp_path, epochs=8, ckpt_path=str(ckpt_dir / "last.ckpt"))
    assert probe.at_start == {"wait_count": 1, "floor_count": 2, "best": pytest.approx(0.5)}
    # Restored wait 1 + epochs 2, 3, 4 without improvement: patience 4 exhausted at epoch 4 (fresh: epoch 6),
    # the same evaluation at which the restored floor count reaches 5; the plateau reason is reported.
    assert resumed.stopped_epoch == 4
    assert resumed.stopping_reason == EarlyStoppingReason.PATIENCE_EXHAUSTED
    assert resumed.floor_count == 5 and not resumed.floor_reached


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mode": "up"}, "`mode` must be one of 'min', 'max', got 'up'"),
        ({"patience": 0}, "`patience` must be an integer >= 1"),
        ({"min_delta": -0.1}, "`min_delta` must be a finite number >= 0"),
        ({"floor_patience": 0}, "`floor_patience` must be None .* or an integer >= 1"),
        ({"floor": float("inf")}, "`floor` must be a finite number"),
        ({"floor_tol": -1.0}, "`floor_tol` must be a finite number >= 0"),
        ({"floor_key": ""}, "`floor_key` must be a non-empty"),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(MisconfigurationException, match=match):
        TopologyEarlyStopping(**kwargs)


def test_state_key_is_deterministic_and_includes_floor_settings() -> None:
    key = TopologyEarlyStopping(floor_patience=2).state_key
    assert key == TopologyEarlyStopping(floor_patience=2).state_key
    assert "floor_tol" in key and "'floor_patience': 2" in key
    others = [TopologyEarlyStopping(), TopologyEarlyStopping(floor_patience=2, floor_tol=0.1)]
    assert all(o.state_key != key for o in others)


def test_real_run_stops_on_the_callbacks_decay_rate(tmp_path: Path) -> None:
    topo = TopologyCallback(samples_per_class=3)
    stopper = TopologyEarlyStopping(patience=2, min_delta=5.0)  # unbeatable: stops after patience
    trainer = Trainer(
        max_epochs=20,
        callbacks=[topo, stopper],
        logger=False,
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_train_batches=2,
        limit_val_batches=1,
        accelerator="cpu",
        default_root_dir=tmp_path,
    )
    trainer.fit(Classifier(digits_cnn((4, 8))), datamodule=DigitsDataModule(classes=[0, 1, 2]))
    assert stopper.stopped_epoch == 2 and stopper.stopping_reason == EarlyStoppingReason.PATIENCE_EXHAUSTED
    assert len(topo.history) == 3
    assert "topology/omega_last" in trainer.callback_metrics
