"""TopologyEarlyStopping: plateau and Betti-floor rules, reasons, state, resume; with scripted and real values."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.callbacks.early_stopping import EarlyStoppingReason
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from torch.utils.data import DataLoader, TensorDataset

from lightning_topo import TopologyCallback, TopologyEarlyStopping
from lightning_topo.data import DigitsDataModule
from lightning_topo.models import Classifier, digits_cnn


class Scripted(LightningModule):
    """Logs a scripted decay rate and deepest-layer Omega at each validation epoch."""

    def __init__(self, decay: list[float], omega_last: list[float]) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)
        self.decay, self.omega_last = decay, omega_last

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self.layer(batch[0]).pow(2).mean()

    def validation_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        pass

    def on_validation_epoch_end(self) -> None:
        e = self.current_epoch
        self.log("topology/decay_rate", self.decay[e])
        self.log("topology/omega_last", self.omega_last[e])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)


def _loader() -> DataLoader:
    return DataLoader(TensorDataset(torch.randn(8, 2)), batch_size=4)


def _fit(model: LightningModule, callbacks: list, tmp_path: Path, epochs: int = 10, **kw) -> Trainer:
    trainer = Trainer(
        max_epochs=epochs,
        callbacks=callbacks,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=any(isinstance(c, ModelCheckpoint) for c in callbacks),
        default_root_dir=tmp_path,
        num_sanity_val_steps=0,
        accelerator="cpu",
    )
    trainer.fit(model, _loader(), _loader(), **kw)
    return trainer


def test_plateau_stops_with_patience_reason(tmp_path: Path) -> None:
    decay = [0.1, 0.3, 0.5, 0.5, 0.49, 0.5, 0.6, 0.7, 0.8, 0.9]
    stopper = TopologyEarlyStopping(patience=2)
    trainer = _fit(Scripted(decay, [5.0] * 10), [stopper], tmp_path)
    assert stopper.stopped_epoch == 4  # no improvement at epochs 3 and 4
    assert stopper.stopping_reason == EarlyStoppingReason.PATIENCE_EXHAUSTED
    assert trainer.current_epoch == 5
    assert not stopper.floor_reached


def test_betti_floor_stops_with_its_reason(tmp_path: Path) -> None:
    decay = [0.1 * i for i in range(10)]  # always improving: the plateau rule never fires
    omega_last = [4.0, 3.0, 1.02, 2.0, 1.04, 1.0, 1.01, 0.99, 1.0, 1.0]
    stopper = TopologyEarlyStopping(patience=5, floor_patience=3)
    _fit(Scripted(decay, omega_last), [stopper], tmp_path)
    assert stopper.stopped_epoch == 6  # epochs 4, 5, 6 at the floor (epoch 3 broke the first run)
    assert stopper.floor_reached and stopper.stopping_reason == EarlyStoppingReason.STOPPING_THRESHOLD
    assert "Betti floor reached" in stopper.stopping_reason_message


def test_nan_evaluations_are_skipped(tmp_path: Path) -> None:
    decay = [0.1, float("nan"), float("nan"), 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]
    stopper = TopologyEarlyStopping(patience=2)
    with pytest.warns(UserWarning, match="skipped"):
        _fit(Scripted(decay, [5.0] * 10), [stopper], tmp_path)
    assert stopper.stopping_reason == EarlyStoppingReason.NOT_STOPPED


def test_state_round_trip_and_resume(tmp_path: Path) -> None:
    decay = [0.1 * i for i in range(10)]
    omega_last = [1.0] * 10
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    first = TopologyEarlyStopping(patience=5, floor_patience=4)
    _fit(Scripted(decay, omega_last), [first, ckpt], tmp_path, epochs=2)
    assert first.floor_count == 2
    state = first.state_dict()
    other = TopologyEarlyStopping(patience=5, floor_patience=4)
    other.load_state_dict(state)
    assert other.floor_count == 2 and other.best_score == first.best_score
    resumed = TopologyEarlyStopping(patience=5, floor_patience=4)
    _fit(Scripted(decay, omega_last), [resumed], tmp_path, epochs=10, ckpt_path=str(tmp_path / "ckpt" / "last.ckpt"))
    # Restored count 2 + epochs 2 and 3 at the floor: stop at epoch 3 (a fresh count would stop at 5).
    assert resumed.stopped_epoch == 3 and resumed.floor_reached


def test_bad_arguments() -> None:
    with pytest.raises(MisconfigurationException, match="`mode` must be one of"):
        TopologyEarlyStopping(mode="up")
    with pytest.raises(MisconfigurationException, match="`floor_patience`"):
        TopologyEarlyStopping(floor_patience=0)
    with pytest.raises(MisconfigurationException, match="`patience`"):
        TopologyEarlyStopping(patience=0)
    assert TopologyEarlyStopping().state_key != TopologyEarlyStopping(floor_patience=2).state_key


def test_real_run_stops_on_the_callbacks_decay_rate(tmp_path: Path) -> None:
    topo = TopologyCallback(samples_per_class=5)
    stopper = TopologyEarlyStopping(patience=2, min_delta=5.0)  # unbeatable: stops after patience
    trainer = Trainer(
        max_epochs=20,
        callbacks=[topo, stopper],
        logger=False,
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        accelerator="cpu",
        default_root_dir=tmp_path,
    )
    trainer.fit(Classifier(digits_cnn()), datamodule=DigitsDataModule())
    assert stopper.stopped_epoch == 2 and stopper.stopping_reason == EarlyStoppingReason.PATIENCE_EXHAUSTED
    assert len(topo.history) == 3
