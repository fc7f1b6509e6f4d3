"""What validation does to a batch before the model sees it, the topology sample gets too; and one sample per fit.

Lightning documents ``on_after_batch_transfer`` (and ``on_before_batch_transfer``, on the LightningModule or the
DataModule) as the place for on-device normalisation. The callback and ``analyse`` built the sample from the
collated items without them, so they measured the model on inputs validation never feeds it (raw 0-255 pixels):
other numbers, no warning. The expected values here come from the model run on the inputs the hook makes,
computed without the hook (``analyse`` of the bare network on normalised data).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch import LightningDataModule, LightningModule, seed_everything
from models import quiet_trainer
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_topo import TopologyCallback, analyse
from lightning_topo.analysis.analyse import BatchHookError
from lightning_topo.callbacks.topology import TopologyMisconfiguration
from lightning_topo.capture import SampleError

LAYERS = ["net.0", "net.2", "net.5"]


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(6, 6, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 8, 3, padding=1),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 3),
    )


def _pixels() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    y = torch.arange(90) % 3
    x = (torch.rand(90, 3, 8, 8, generator=g) * 255).round()
    x[y == 1, 0] = 255 - x[y == 1, 0]
    return x, y


def _normalise(x: torch.Tensor) -> torch.Tensor:
    return (x / 255 - 0.5) / 0.25


class Plain(LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = _net()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return F.cross_entropy(self(x), y)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, _ = batch
        assert x.abs().max() <= 2.0 + 1e-6, "validation sees normalised inputs"

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.0)  # the weights stay those of _net(): comparable


class Normalising(Plain):
    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        x, y = batch
        return _normalise(x), y


class NormalisingData(LightningDataModule):
    def __init__(self) -> None:
        super().__init__()
        self.data = TensorDataset(*_pixels())

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.data, batch_size=16)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.data, batch_size=16)

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        x, y = batch
        return [_normalise(x), y]


def _expected() -> Any:
    x, y = _pixels()
    bare = [name.removeprefix("net.") for name in LAYERS]  # the same modules, in the bare network
    return analyse(_net(), TensorDataset(_normalise(x), y), layers=bare, progress=False)


@pytest.mark.parametrize("where", ["module", "datamodule"])
def test_the_sample_is_the_batch_the_hooks_make(tmp_path: Path, where: str) -> None:
    expected = _expected()
    callback = TopologyCallback(layers=LAYERS, charts=False, overlap=False)
    trainer = quiet_trainer(tmp_path, [callback])
    if where == "module":
        x, y = _pixels()
        trainer.fit(Normalising(), DataLoader(TensorDataset(x, y), batch_size=16), DataLoader(TensorDataset(x, y), 16))
    else:
        trainer.fit(Plain(), datamodule=NormalisingData())
    assert callback.sample is not None and float(callback.sample.inputs.abs().max()) <= 2.0 + 1e-6
    assert torch.equal(callback.sample.inputs, _normalise(_pixels()[0])[callback.sample.indices])
    logged = callback.history[-1]
    assert logged["decay_rate"] == pytest.approx(expected.decay_rate, abs=1e-12)
    # analyse of the LightningModule (or with the DataModule) on the raw pixels: the same hooks, the same numbers.
    if where == "module":
        x, y = _pixels()
        report = analyse(Normalising(), TensorDataset(x, y), layers=LAYERS, progress=False)
    else:
        report = analyse(Plain(), NormalisingData(), layers=LAYERS, progress=False)
    assert report.decay_rate == pytest.approx(expected.decay_rate, abs=1e-12)
    assert torch.equal(report.betti, expected.betti)


def test_a_module_without_hooks_is_sampled_as_before(tmp_path: Path) -> None:
    """No hook overridden: the sample is the items as they are (the TensorDataset fast path)."""
    x, y = _pixels()
    callback = TopologyCallback(layers=LAYERS, charts=False, overlap=False)
    quiet_trainer(tmp_path, [callback]).validate(
        Plain(), DataLoader(TensorDataset(_normalise(x), y), 16), verbose=False
    )
    assert callback.sample is not None and torch.equal(callback.sample.inputs, _normalise(x)[callback.sample.indices])


def test_another_model_s_hooks_make_another_sample_of_the_same_data(tmp_path: Path) -> None:
    """One callback, one dataset object, two models: the sample is drawn per dataset (kept for the next
    evaluation), but it is the batch the hooks make, so a model with other hooks gets its own (it got the first
    model's raw pixels)."""
    x, y = _pixels()
    loader = DataLoader(TensorDataset(x, y), batch_size=16)

    class Raw(Plain):
        def validation_step(self, batch: Any, batch_idx: int) -> None:
            pass

    callback = TopologyCallback(layers=LAYERS, charts=False, overlap=False)
    quiet_trainer(tmp_path, [callback]).validate(Raw(), loader, verbose=False)
    assert callback.sample is not None and float(callback.sample.inputs.max()) > 2.0  # raw pixels: no hook
    trainer = quiet_trainer(tmp_path, [callback])
    trainer.validate(Normalising(), loader, verbose=False)
    assert torch.equal(callback.sample.inputs, _normalise(x)[callback.sample.indices])
    decay_rate = float(trainer.callback_metrics["topology/decay_rate"])
    assert decay_rate == pytest.approx(_expected().decay_rate, abs=1e-6)  # logged as float32
    # The same model again: the same sample object, not drawn again
    model = Normalising()
    quiet_trainer(tmp_path, [callback]).validate(model, loader, verbose=False)
    first = callback.sample
    quiet_trainer(tmp_path, [callback]).validate(model, loader, verbose=False)
    assert callback.sample is first


def test_a_hook_that_fails_on_the_sample_is_named(tmp_path: Path) -> None:
    class Picky(Plain):
        def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
            raise KeyError("pixel_values")

    x, y = _pixels()
    loader = DataLoader(TensorDataset(x, y), batch_size=16)
    callback = TopologyCallback(layers=LAYERS, charts=False, overlap=False)
    with pytest.raises(TopologyMisconfiguration, match=r"Picky.on_after_batch_transfer raised KeyError") as error:
        quiet_trainer(tmp_path, [callback]).validate(Picky(), loader, verbose=False)
    # The error is typed: a SampleError whose `owner` is the module, raised where the module has its Trainer.
    assert isinstance(error.value.__cause__, BatchHookError) and isinstance(error.value.__cause__, SampleError)


def test_analyse_of_a_module_whose_hook_needs_its_trainer_warns_and_samples_without_it() -> None:
    """Lightning's own example augments ``if self.trainer.training:`` in ``on_after_batch_transfer``; outside a
    fit the module has no Trainer and the hook raises: ``analyse`` says so and samples without the hooks."""

    class Augmenting(Plain):
        def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
            if self.trainer.training:
                batch = [batch[0] + torch.randn_like(batch[0]), batch[1]]
            return batch

    x, y = _pixels()
    data = TensorDataset(_normalise(x), y)
    with pytest.warns(UserWarning, match="Augmenting is not attached to a Trainer, which the hook may need"):
        report = analyse(Augmenting(), data, layers=LAYERS, progress=False)
    assert report.decay_rate == pytest.approx(_expected().decay_rate, abs=1e-12)


def test_validate_before_fit_keeps_the_fit_s_sample_in_the_checkpoint(tmp_path: Path) -> None:
    """A ``validate`` before ``fit`` drew the sample; the fit found it cached and never made it the fit's, so the
    checkpoint held no ``sample_indices`` and a resume on other data said nothing."""
    seed_everything(0)
    x, y = _pixels()
    data = TensorDataset(_normalise(x), y)
    callback = TopologyCallback(layers=LAYERS, charts=False, overlap=False)
    trainer = quiet_trainer(tmp_path, [callback])
    model = Plain()
    loader = DataLoader(data, batch_size=16)
    trainer.validate(model, loader, verbose=False)
    trainer.fit(model, loader, loader)
    state = callback.state_dict()
    assert state["sample_indices"] is not None
    assert state["sample_indices"] == callback.sample.indices.tolist()


def test_a_validation_set_that_changes_during_the_fit_is_said(tmp_path: Path) -> None:
    """``reload_dataloaders_every_n_epochs`` with other data each epoch drew a new sample every epoch: a history of
    different inputs, with only the info line as a sign."""
    x, y = _pixels()

    class Shifting(Plain):
        def val_dataloader(self) -> DataLoader:
            epoch = self.current_epoch
            return DataLoader(TensorDataset(_normalise(x).roll(epoch, dims=0), y), batch_size=16)

        def train_dataloader(self) -> DataLoader:
            return DataLoader(TensorDataset(_normalise(x), y), batch_size=16)

    def fit(model: LightningModule) -> tuple[TopologyCallback, list[str]]:
        """Two epochs with the validation loader reloaded each; the callback and the warnings given."""
        callback = TopologyCallback(layers=LAYERS, charts=False, overlap=False)
        trainer = quiet_trainer(tmp_path, [callback], max_epochs=2, reload_dataloaders_every_n_epochs=1)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            trainer.fit(model)
        return callback, [str(w.message) for w in caught]

    _, messages = fit(Shifting())
    said = [m for m in messages if "the validation set changed during the fit" in m]
    assert len(said) == 1, messages

    class Same(Shifting):
        def val_dataloader(self) -> DataLoader:  # a new loader and dataset each epoch, the same data
            return DataLoader(TensorDataset(_normalise(x), y), batch_size=16)

    callback, messages = fit(Same())
    assert not [m for m in messages if "the validation set changed" in m]
    assert len(callback.history) == 2


def test_the_batch_function_names_the_objects_whose_hooks_it_calls() -> None:
    """The kept sample is tied to these objects only: validating with another DataModule whose hooks are Lightning's
    defaults does not draw the model's sample again."""
    from lightning_topo.analysis import validation_batch_fn

    class Bare(LightningDataModule):
        pass

    module, data = Normalising(), NormalisingData()
    assert validation_batch_fn(module, Bare(), torch.device("cpu")).owners == (module,)
    assert validation_batch_fn(Plain(), data, torch.device("cpu")).owners == (data,)
    both = validation_batch_fn(module, data, torch.device("cpu")).owners
    assert set(map(id, both)) == {id(module), id(data)}  # on_before: the DataModule's; on_after: the module's
    assert validation_batch_fn(Plain(), Bare(), torch.device("cpu")) is None
