"""Models whose forward pass computes gradients (trained with ``Trainer(inference_mode=False)``): the topology
sample runs them under ``torch.no_grad`` where ``torch.inference_mode`` fails, with the same values."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from lightning.pytorch import LightningModule
from models import quiet_trainer
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_topo import TopologyCallback, analyse
from lightning_topo.capture import ForwardError
from lightning_topo.capture.hooks import needs_autograd, run_on_sample


class GradientFeatures(LightningModule):
    """A CNN whose forward pass adds the gradient of an energy with respect to its input (as physics-informed and
    energy-based models do): it needs autograd in eval, which ``torch.inference_mode`` forbids. The energy is a sum
    over voxels of ``stiffness * x**2``, so its gradient is computed voxel by voxel: the same bits however the inputs
    are batched (a convolution's gradient may round otherwise in another batch on another CPU)."""

    def __init__(self, with_gradient: bool = True) -> None:
        super().__init__()
        self.with_gradient = with_gradient
        self.stiffness = nn.Parameter(torch.tensor(0.75))
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.act = nn.ReLU()
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.head = nn.Linear(4 * 8 * 8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.with_gradient:
            with torch.enable_grad():
                x = x.clone().requires_grad_(True)
                (grad,) = torch.autograd.grad(self.energy(x), x, create_graph=self.training)
            x = x.detach() + 0.1 * grad
        return self.head(self.conv2(self.act(self.conv(x))).flatten(1))

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        return (self.stiffness * x**2).sum()

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", nn.functional.cross_entropy(self(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def _data() -> DataLoader:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(48, 1, 8, 8, generator=generator)
    y = torch.arange(48) % 3
    return DataLoader(TensorDataset(x, y), batch_size=16)


def _gradient_inputs(model: GradientFeatures, data: DataLoader) -> DataLoader:
    """The inputs the gradient model's layers see (input + 0.1 * gradient), for a plain twin of it."""
    inputs, labels = [], []
    for x, y in data:
        with torch.enable_grad():
            x = x.clone().requires_grad_(True)
            (grad,) = torch.autograd.grad(model.energy(x), x)
        inputs.append(x.detach() + 0.1 * grad)
        labels.append(y)
    return DataLoader(TensorDataset(torch.cat(inputs), torch.cat(labels)), batch_size=16)


def test_analyse_runs_a_model_that_needs_autograd_with_the_values_of_a_plain_twin() -> None:
    torch.manual_seed(0)
    model = GradientFeatures()
    data = _data()
    with pytest.warns(UserWarning, match="fails under torch.inference_mode .*runs under torch.no_grad"):
        report = analyse(model, data, layers=["conv", "act", "conv2"], samples_per_class=16, progress=False)
    assert needs_autograd(model)
    # The same weights without the gradient step, on the inputs the gradient step makes: the same activations
    twin = GradientFeatures(with_gradient=False)
    twin.load_state_dict(model.state_dict())
    layers = ["conv", "act", "conv2"]
    expected = analyse(twin, _gradient_inputs(model, data), layers=layers, samples_per_class=16, progress=False)
    assert report.layers == expected.layers == ["conv", "act", "conv2"]
    torch.testing.assert_close(torch.as_tensor(report.omega), torch.as_tensor(expected.omega))
    # Said once: the model's later passes run under no_grad at once
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        warnings.filterwarnings("ignore", message=".*(cubic fit|watched layers|vectors).*")
        again = analyse(model, data, layers=["conv", "act", "conv2"], samples_per_class=16, progress=False)
    torch.testing.assert_close(torch.as_tensor(again.omega), torch.as_tensor(report.omega))


def test_callback_with_inference_mode_off_measures_a_model_that_needs_autograd(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = GradientFeatures()
    callback = TopologyCallback(layers=["conv", "act", "conv2"], max_samples=48)
    trainer = quiet_trainer(tmp_path, [callback], max_epochs=1, inference_mode=False)
    with pytest.warns(UserWarning, match="runs under torch.no_grad"):
        trainer.fit(model, _data(), _data())
    metrics = trainer.callback_metrics
    for layer in ("conv", "act", "conv2"):
        assert torch.isfinite(metrics[f"topology/{layer}/omega"]), layer
    assert len(callback.history) == 1


def test_a_forward_pass_failing_either_way_raises_the_first_error() -> None:
    class Broken(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.calls: list[bool] = []

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.calls.append(torch.is_inference_mode_enabled())
            raise ValueError("inference" if torch.is_inference_mode_enabled() else "no_grad")

    model = Broken()
    with pytest.raises(ForwardError, match="ValueError: inference") as info:
        run_on_sample(model, torch.zeros(2, 3), probe=True)
    assert isinstance(info.value.__cause__, ValueError)
    assert model.calls == [True, False]  # tried under no_grad too
    assert not needs_autograd(model)
    # Not a probe (the sample's pass, whose hooks must not see a batch twice): no second try
    model.calls.clear()
    with pytest.raises(ForwardError, match="ValueError: inference"):
        run_on_sample(model, torch.zeros(2, 3))
    assert model.calls == [True]


def test_inside_inference_mode_there_is_no_second_try() -> None:
    model = GradientFeatures()
    with torch.inference_mode(), pytest.raises(ForwardError):
        run_on_sample(model, torch.zeros(2, 1, 8, 8), probe=True)
    assert not needs_autograd(model)


def test_the_retry_of_a_forward_fn_that_bypasses_the_model_counts_each_call_once() -> None:
    """The retry under no_grad kept the failed pass's per-module call counts when `forward_fn` bypassed the model's
    forward (and so its pre-hook): every module before the failure read as called twice ('body.0#2')."""
    from lightning_topo.capture import trace_layers

    class Body(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1 = nn.Linear(3, 4)
            self.act = nn.Tanh()
            self.fc2 = nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.act(self.fc1(x))
            with torch.enable_grad():
                h = h.clone().requires_grad_(True)
                (grad,) = torch.autograd.grad((h**2).sum(), h)
            return self.fc2(h.detach() + grad)

    holder = nn.Module()
    holder.body = Body()
    with pytest.warns(UserWarning, match="runs under torch.no_grad"):
        trace = trace_layers(holder, torch.zeros(2, 3), ["body.fc1", "body.act", "body.fc2"],
                             forward_fn=lambda model, x: model.body(x))  # fmt: skip
    assert trace.order == ["body.fc1", "body.act", "body.fc2"]
    assert trace.calls == {"body.fc1": 1, "body.act": 1, "body.fc2": 1}
