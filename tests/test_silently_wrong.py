"""Issue 19: the cases a new user met where a number was silently wrong, NaN, or a crash after an epoch.

Each test runs the real thing (Lightning fits and validations on scikit-learn's digits, CPU) and asserts the numbers.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import pytest
import torch
from ddp_run import report_values, topology_values
from lightning.pytorch import Trainer, seed_everything
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from models import TutorialCNN, quiet_trainer
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_topo import TopologyCallback, analyse
from lightning_topo.capture import UnknownLayerError, resolve_layers, trace_layers
from lightning_topo.config import TopologyConfig
from lightning_topo.datasets import load_digits_tensors
from lightning_topo.models import Classifier, digits_cnn

_trainer = quiet_trainer


def _digits(size: int = 8, channels: int = 1) -> tuple[TensorDataset, TensorDataset]:
    x, y = load_digits_tensors(size)
    x = x.expand(-1, channels, -1, -1).contiguous() if channels > 1 else x
    return TensorDataset(x[:1200], y[:1200]), TensorDataset(x[1200:], y[1200:])


# 1. In-place ops after a watched layer -------------------------------------------------------------------------
@pytest.mark.parametrize("view", ["rips", "cubical"])
def test_inplace_relu_after_the_watched_layer_changes_nothing(view: str) -> None:
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(60, 8), torch.arange(60) % 2)
    reports = []
    for inplace in (False, True):
        torch.manual_seed(1)
        net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(inplace=inplace), nn.Linear(16, 4), nn.ReLU(inplace=inplace))
        rips = {"k": 4} if view == "rips" else {}
        cfg = TopologyConfig(layers=["0", "2"], complex=view, samples_per_class=30, batch_size=16, **rips)
        reports.append(analyse(net, data, cfg, progress=False))
    plain, inplace_ = reports
    assert torch.equal(plain.betti, inplace_.betti)
    assert plain.decay_rate == inplace_.decay_rate or (math.isnan(plain.decay_rate) and math.isnan(inplace_.decay_rate))


def test_pooled_embedding_is_a_copy_not_a_view() -> None:
    from lightning_topo.capture import capture_layers

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(inplace=True))
    x = torch.randn(20, 8)
    captured = capture_layers(net, x, ["0"], TopologyConfig(complex="rips"))
    with torch.no_grad():
        expected = net[0](x)
    assert float(captured.values["0"].min()) < 0  # pre-ReLU values, not overwritten by the in-place ReLU
    torch.testing.assert_close(captured.values["0"], expected)


# 2. validate(model, other_loader) after fit --------------------------------------------------------------------
def test_validate_on_another_loader_measures_that_loader(tmp_path: Path) -> None:
    seed_everything(0)
    train, val = _digits()
    other = TensorDataset(train.tensors[0][:400], train.tensors[1][:400])
    model = Classifier(digits_cnn())
    topo = TopologyCallback(samples_per_class=8, charts=False)
    trainer = _trainer(tmp_path, [topo], max_epochs=2)
    trainer.fit(model, DataLoader(train, batch_size=64), DataLoader(val, batch_size=64))
    fit_history = [dict(h) for h in topo.history]
    assert len(fit_history) == 2

    trainer.validate(model, DataLoader(other, batch_size=64), verbose=False)
    logged = topology_values(trainer)
    expected = report_values(analyse(model, other, topo.config, progress=False))
    assert set(expected) <= set(logged)
    for key, value in expected.items():
        assert logged[key] == pytest.approx(value, rel=1e-6, abs=1e-9), key  # logged as float32 tensors
    assert topo.history == fit_history  # the fit's history is untouched
    assert len(topo.validate_history) == 1
    # The fit's own sample is used again for its validation set.
    trainer.validate(model, DataLoader(val, batch_size=64), verbose=False)
    expected_val = report_values(analyse(model, val, topo.config, progress=False))
    assert topology_values(trainer)["topology/decay_rate"] == pytest.approx(expected_val["topology/decay_rate"])
    assert topo.state_dict()["sample_indices"] == topo._fit_sample.indices.tolist()


# 3. Float and one-hot labels -----------------------------------------------------------------------------------
class _FloatLabels(Classifier):
    """A user's module whose loss takes float class labels (it casts them)."""

    def _step(self, batch, stage):
        x, y = batch
        return super()._step((x, y.long()), stage)


def test_whole_number_float_labels_are_classes(tmp_path: Path) -> None:
    _, val = _digits()
    x, y = val.tensors
    results = {}
    for name, labels in (("int", y), ("float", y.float())):
        topo = TopologyCallback(charts=False)
        torch.manual_seed(0)
        loader = DataLoader(TensorDataset(x, labels), batch_size=64)
        _trainer(tmp_path, [topo]).validate(_FloatLabels(digits_cnn()), loader, verbose=False)
        assert topo.sample.classes == list(range(10))
        results[name] = topo.last_result
    assert results["float"].omega.tolist() == results["int"].omega.tolist()
    assert len(topo.sample.labels) == 200


def test_one_hot_labels_are_read_by_argmax_with_a_warning(tmp_path: Path) -> None:
    _, val = _digits()
    x, y = val.tensors
    topo = TopologyCallback(charts=False)
    with pytest.warns(UserWarning, match="one-hot"):
        _trainer(tmp_path, [topo]).validate(
            Classifier(digits_cnn()), DataLoader(TensorDataset(x, nn.functional.one_hot(y, 10).float())), verbose=False
        )
    assert topo.sample.classes == list(range(10))
    assert topo.sample.labels.tolist() == sorted(topo.sample.labels.tolist())
    assert torch.equal(topo.sample.labels, y[topo.sample.indices])


@pytest.mark.parametrize("labels", ["soft", "regression"])
def test_labels_that_are_not_classes_fail_before_training(tmp_path: Path, labels: str) -> None:
    train, val = _digits()
    y = val.tensors[1].float()
    y = torch.softmax(torch.randn(len(y), 10), dim=1) if labels == "soft" else y + 0.5
    topo = TopologyCallback(charts=False)
    trainer = _trainer(tmp_path, [topo], num_sanity_val_steps=1)
    with pytest.raises(MisconfigurationException, match="target_fn"):
        trainer.fit(
            Classifier(digits_cnn()),
            DataLoader(train, batch_size=64),
            DataLoader(TensorDataset(val.tensors[0], y), batch_size=64),
        )
    assert trainer.global_step == 0


# 4. limit_val_batches ------------------------------------------------------------------------------------------
def test_limit_val_batches_is_said_once_and_the_sample_is_the_whole_set(tmp_path: Path) -> None:
    train, val = _digits()
    topo = TopologyCallback(charts=False)
    trainer = _trainer(tmp_path, [topo], max_epochs=2, limit_val_batches=0.1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(Classifier(digits_cnn()), DataLoader(train, batch_size=64), DataLoader(val, batch_size=64))
    said = [w for w in caught if "limit_val_batches" in str(w.message) and "TopologyCallback" in str(w.message)]
    assert len(said) == 1
    assert len(topo.sample.labels) == 200  # from the whole validation set, not from its first batch
    assert len(topo.history) == 2


# 5. Resume keeps the history when nothing that changes the numbers changed ---------------------------------------
def _fit_with_checkpoint(tmp_path: Path) -> tuple[Path, list]:
    train, val = _digits()
    seed_everything(0)
    topo = TopologyCallback(charts=False, samples_per_class=5)
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    trainer = _trainer(tmp_path, [topo, ckpt], enable_checkpointing=True)
    trainer.fit(Classifier(digits_cnn()), DataLoader(train, batch_size=64), DataLoader(val, batch_size=64))
    return tmp_path / "ckpt" / "last.ckpt", topo.history


def _fit_warnings(
    trainer: Trainer, model: nn.Module, train: TensorDataset, val: TensorDataset, ckpt: Path | None
) -> list[warnings.WarningMessage]:
    """The warnings of ``trainer.fit`` on these datasets (batches of 64), resumed from ``ckpt`` where given."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(model, DataLoader(train, batch_size=64), DataLoader(val, batch_size=64), ckpt_path=ckpt)
    return caught


def test_resume_keeps_history_across_irrelevant_changes_and_names_a_dropped_state(tmp_path: Path) -> None:
    path, saved = _fit_with_checkpoint(tmp_path)
    train, val = _digits()

    def resume(topo: TopologyCallback) -> list[warnings.WarningMessage]:
        return _fit_warnings(_trainer(tmp_path, [topo], max_epochs=2), Classifier(digits_cnn()), train, val, path)

    def same_input(item):  # an equivalent input_fn defined elsewhere
        return item[0]

    with pytest.warns(UserWarning, match="`k=10` has no effect: a point-cloud setting"):  # said on the cubical view
        kept = TopologyCallback(charts=False, samples_per_class=5, k=10, batch_size=7, input_fn=same_input)
    resume(kept)
    assert kept.history[:1] == saved and len(kept.history) == 2

    dropped = TopologyCallback(charts=False, samples_per_class=5, threshold=0.0)
    caught = resume(dropped)
    messages = [str(w.message) for w in caught if "not restored" in str(w.message)]
    assert len(messages) == 1 and "threshold='mean'" in messages[0] and "threshold=0.0" in messages[0]
    assert len(dropped.history) == 1  # only the new epoch

    resampled = TopologyCallback(charts=False, samples_per_class=6)
    caught = resume(resampled)
    assert len(resampled.history) == 1  # another sample: another history, named
    assert any("samples_per_class=5" in str(w.message) and "not restored" in str(w.message) for w in caught)


def test_resume_of_a_module_called_twice_and_out_of_order_layers_says_nothing_of_a_change(tmp_path: Path) -> None:
    """The saved layers (forward order, one per call: `pool`, `pool#2`) were compared at restore with the names as
    given (`layers=[...]` order, one per module): every such resume warned that "the history mixes both"."""
    train, val = _digits(size=32, channels=3)
    train = TensorDataset(train.tensors[0][:128], train.tensors[1][:128])

    def fit(ckpt: Path | None, layers: list[str], epochs: int) -> tuple[TopologyCallback, list[str]]:
        seed_everything(0)
        topo = TopologyCallback(charts=False, samples_per_class=2, layers=layers)
        saver = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
        trainer = _trainer(tmp_path, [topo, saver], max_epochs=epochs, enable_checkpointing=True)
        caught = _fit_warnings(trainer, Classifier(TutorialCNN()), train, val, ckpt)
        return topo, [str(w.message) for w in caught if "mixes both" in str(w.message)]

    layers = ["net.fc1", "net.pool", "net.conv1"]  # not in forward order; `pool` runs twice
    first, _ = fit(None, layers, 1)
    assert first.layer_names == ["net.conv1", "net.pool", "net.pool#2", "net.fc1"]
    last = tmp_path / "ckpt" / "last.ckpt"
    resumed, said = fit(last, layers, 2)
    assert said == [] and len(resumed.history) == 2
    assert [list(record["layers"]) for record in resumed.history] == [first.layer_names] * 2
    # A checkpoint whose run watched other layers (an older version's automatic choice, say) is still named.
    checkpoint = torch.load(last, weights_only=True)
    (key,) = [k for k in checkpoint["callbacks"] if k.startswith("TopologyCallback")]
    checkpoint["callbacks"][key]["layer_names"] = ["net.conv1", "net.fc1"]
    torch.save(checkpoint, last)
    _, said = fit(last, layers, 3)
    now = "['net.conv1', 'net.pool', 'net.pool#2', 'net.fc1']"
    assert len(said) == 1 and f"watched layers ['net.conv1', 'net.fc1'], this run watches {now}" in said[0]


# 8. A module used twice in forward ------------------------------------------------------------------------------
def test_tutorial_cnn_at_defaults_has_a_finite_decay_rate(tmp_path: Path) -> None:
    seed_everything(0)
    train, val = _digits(size=32, channels=3)
    model = Classifier(TutorialCNN())
    topo = TopologyCallback(charts=False)
    with pytest.warns(UserWarning, match="more than once"):
        _trainer(tmp_path, [topo], max_epochs=1).fit(
            model, DataLoader(train, batch_size=64), DataLoader(val, batch_size=64)
        )
    assert topo.layer_names == [f"net.{n}" for n in ("conv1", "pool", "conv2", "pool#2", "fc1", "fc2", "fc3")]
    result = topo.last_result
    assert all(layer.problem is None for layer in result.layers)
    assert math.isfinite(result.decay_rate) and math.isfinite(result.theta)
    # The two calls are two different volumes: 6x14x14 and 16x5x5.
    pool1, pool2 = result.layers[1], result.layers[3]
    assert pool1.per_input is not None and pool2.per_input is not None
    assert not torch.equal(pool1.per_input, pool2.per_input)
    # analyse agrees with the callback, layer for layer.
    report = analyse(model, val, topo.config, progress=False)
    assert report.layers == topo.layer_names
    assert report.omega.tolist() == pytest.approx(result.omega.tolist())


def test_shared_activation_is_a_layer_per_call_in_depth_order() -> None:
    class Shared(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.fc2, self.act, self.unused = nn.Linear(4, 8), nn.Linear(8, 8), nn.ReLU(), nn.Linear(2, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.act(self.fc2(self.act(self.fc1(x))))

    net = Shared()
    trace = trace_layers(net, torch.zeros(1, 4), ["act", "fc2", "unused"])
    assert trace.order == ["act", "fc2", "act#2"] and trace.never_run == ["unused"]
    data = TensorDataset(torch.randn(40, 4), torch.arange(40) % 2)
    with pytest.warns(UserWarning, match=r"\['unused'\] never run"):
        report = analyse(net, data, layers=["act", "fc2", "unused"], progress=False)
    assert report.layers == ["act", "fc2", "act#2"] and not report.problems
    only_second = analyse(net, data, layers=["act#2"], progress=False)
    assert only_second.betti[0].tolist() == report.betti[2].tolist()


# 10. A device the machine lacks --------------------------------------------------------------------------------
@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_device_without_cuda_fails_before_training(tmp_path: Path) -> None:
    train, val = _digits()
    trainer = _trainer(tmp_path, [TopologyCallback(device="cuda")])
    with pytest.raises(MisconfigurationException, match=r"`device='cuda'`.*no CUDA device"):
        trainer.fit(Classifier(digits_cnn()), DataLoader(train, batch_size=64), DataLoader(val, batch_size=64))
    assert trainer.global_step == 0
    with pytest.raises(ValueError, match="device"):
        analyse(Classifier(digits_cnn()), val, device="cuda:0", progress=False)


# Smaller ---------------------------------------------------------------------------------------------------------
def test_compiled_inner_net_names_have_no_orig_mod() -> None:
    model = Classifier(torch.compile(digits_cnn()))
    names = resolve_layers(model)
    assert names and not any("_orig_mod" in n for n in names)
    assert names == resolve_layers(Classifier(digits_cnn()))
    assert resolve_layers(model, ["net.0"]) == ["net.0"]


def test_a_compiled_model_does_not_recompile_for_the_callback(tmp_path: Path) -> None:
    # The sample's pass runs compiled code eagerly: our hooks break graphs and the sample's shapes differ from
    # training's, and the recompiles they caused (19 for the tutorial CNN) could reach dynamo's recompile_limit,
    # past which training itself runs eagerly.
    import torch._dynamo
    from torch._dynamo.utils import counters

    TutorialModule = _tutorial_module()
    data = TensorDataset(torch.randn(96, 3, 32, 32, generator=torch.Generator().manual_seed(0)), torch.arange(96) % 4)

    def graphs(callbacks: list) -> tuple[int, TutorialModule]:
        torch._dynamo.reset()
        counters.clear()
        torch.manual_seed(0)
        module = TutorialModule(torch.compile(TutorialCNN(), backend="eager"))
        quiet_trainer(tmp_path, callbacks, max_epochs=2).fit(
            module, DataLoader(data, batch_size=32), DataLoader(data, batch_size=40)
        )
        return int(counters["stats"]["unique_graphs"]), module

    alone, _ = graphs([])
    topo = TopologyCallback(charts=False)
    with_callback, module = graphs([topo])
    assert with_callback == alone
    # ... and the numbers are those of the same weights run without torch.compile.
    eager = TopologyCallback(charts=False)
    quiet_trainer(tmp_path, [eager]).validate(
        TutorialModule(module.net._orig_mod), DataLoader(data, batch_size=40), verbose=False
    )
    assert topo.last_result is not None and eager.last_result is not None
    assert [layer.name for layer in topo.last_result.layers] == [layer.name for layer in eager.last_result.layers]
    for a, b in zip(topo.last_result.layers, eager.last_result.layers, strict=True):
        assert torch.equal(a.per_input, b.per_input), a.name


def _tutorial_module() -> type:
    from lightning.pytorch import LightningModule

    class TutorialModule(LightningModule):
        def __init__(self, net: nn.Module) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x)

        def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
            return nn.functional.cross_entropy(self(batch[0]), batch[1])

        def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
            self.log("val_loss", nn.functional.cross_entropy(self(batch[0]), batch[1]))

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=0.01)

    return TutorialModule


def test_a_name_relative_to_the_wrapped_net_is_suggested() -> None:
    with pytest.raises(UnknownLayerError, match=r"'net\.0'"):
        resolve_layers(Classifier(digits_cnn()), ["0"])


def test_glob_star_stays_within_a_dotted_part() -> None:
    net = nn.Sequential(nn.Sequential(nn.Linear(2, 2), nn.Dropout()), nn.Sequential(nn.Linear(2, 2)))
    assert resolve_layers(net, ["*"]) == ["0", "1"]
    assert resolve_layers(net, ["*.*"]) == ["0.0", "0.1", "1.0"]
    assert resolve_layers(net, ["**"]) == ["0", "0.0", "0.1", "1", "1.0"]


def test_misspelt_callback_argument_names_the_callback_argument() -> None:
    with pytest.raises(MisconfigurationException, match=r"every_n_epoch'\].*did you mean `every_n_epochs`"):
        TopologyCallback(every_n_epoch=2)
