"""End-to-end: TopologyCallback in real Lightning runs on scikit-learn's digits (CPU)."""

from __future__ import annotations

import csv
import gc
import math
import sys
import tracemalloc
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Trainer, seed_everything
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.callbacks.early_stopping import EarlyStoppingReason
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from models import quiet_trainer

from lightning_topo import TopologyCallback
from lightning_topo.capture import ForwardError
from lightning_topo.datasets import DigitsDataModule
from lightning_topo.functional import cubical_betti, omega
from lightning_topo.models import Classifier, digits_cnn, mlp


def _trainer(tmp_path: Path, callbacks: list, max_epochs: int, **kwargs) -> Trainer:
    """A quiet CPU trainer that logs to CSV (``_read_csv``), deterministic."""
    kwargs = {"logger": CSVLogger(tmp_path, name="run"), "deterministic": True, **kwargs}
    return quiet_trainer(tmp_path, callbacks, max_epochs=max_epochs, **kwargs)


def _read_csv(trainer: Trainer) -> list[dict[str, str]]:
    path = Path(trainer.logger.log_dir) / "metrics.csv"
    with open(path) as f:
        return list(csv.DictReader(f))


def _epoch_rows(rows: list[dict[str, str]], key: str) -> list[float]:
    return [float(r[key]) for r in rows if r.get(key) not in (None, "")]


@pytest.fixture(scope="module")
def cnn_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One seeded 6-epoch fit of the digits CNN with the callback at defaults, shared by several tests."""
    tmp = tmp_path_factory.mktemp("cnn")
    seed_everything(0, workers=True)
    model = Classifier(digits_cnn(), lr=0.01)
    callback = TopologyCallback()
    trainer = _trainer(tmp, [callback], max_epochs=6)
    trainer.fit(model, datamodule=DigitsDataModule(batch_size=64))
    return {"trainer": trainer, "model": model, "callback": callback, "rows": _read_csv(trainer)}


def test_every_layer_logged_every_epoch(cnn_run: dict) -> None:
    callback, rows = cnn_run["callback"], cnn_run["rows"]
    assert len(callback.layer_names) >= 4
    for name in callback.layer_names:
        for key in ("b0", "b1", "b2", "omega"):
            values = _epoch_rows(rows, f"topology/{name}/{key}")
            assert len(values) == 6, (name, key)
            assert all(math.isfinite(v) for v in values)
    for key in ("topology/theta", "topology/decay_rate", "topology/omega_last"):
        assert len(_epoch_rows(rows, key)) == 6
    assert len(callback.history) == 6
    assert [h["epoch"] for h in callback.history] == list(range(6))


def test_logged_betti_equal_the_engine_on_the_same_tensors(cnn_run: dict) -> None:
    callback, model, rows = cnn_run["callback"], cnn_run["model"], cnn_run["rows"]
    sample = callback.sample
    captured: dict[str, torch.Tensor] = {}
    handles = [
        model.get_submodule(name).register_forward_hook(
            lambda m, i, o, name=name: captured.__setitem__(name, o.detach())
        )
        for name in callback.layer_names
    ]
    model.eval()
    with torch.inference_mode():
        model(sample.inputs)
    for h in handles:
        h.remove()
    for name in callback.layer_names:
        out = captured[name]
        volumes = out if out.ndim <= 4 else out.flatten(3)
        betti = cubical_betti(volumes, volumes.reshape(len(volumes), -1).double().mean(1))
        labels = sample.labels
        per_class = torch.stack([betti[labels == c].double().mean(0) for c in labels.unique()])
        expected = per_class.mean(0)
        for i, key in enumerate(("b0", "b1", "b2")):
            logged = _epoch_rows(rows, f"topology/{name}/{key}")[-1]
            assert logged == pytest.approx(expected[i].item(), rel=1e-6), (name, key)
        assert _epoch_rows(rows, f"topology/{name}/omega")[-1] == pytest.approx(omega(betti, labels).item(), rel=1e-6)


def test_deepest_omega_falls_with_training(cnn_run: dict) -> None:
    history = cnn_run["callback"].history
    last = cnn_run["callback"].layer_names[-1]
    assert history[-1]["layers"][last]["omega"] < history[0]["layers"][last]["omega"]
    assert cnn_run["trainer"].callback_metrics["val_acc"] > 0.8


def test_no_hooks_remain_after_fit_and_validate(cnn_run: dict) -> None:
    model, trainer = cnn_run["model"], cnn_run["trainer"]
    assert all(len(m._forward_hooks) == 0 for m in model.modules())
    trainer.validate(model, datamodule=DigitsDataModule(batch_size=64), verbose=False)
    assert all(len(m._forward_hooks) == 0 for m in model.modules())


def test_mlp_run_and_explicit_layers(tmp_path: Path) -> None:
    seed_everything(1)
    model = Classifier(mlp(in_features=64, hidden=32, depth=4), lr=0.01)
    callback = TopologyCallback(layers=["net.*"], samples_per_class=5)
    dm = DigitsDataModule(batch_size=64, flatten=True)
    trainer = _trainer(tmp_path, [callback], max_epochs=2)
    trainer.fit(model, datamodule=dm)
    assert callback.layer_names == [f"net.{i}" for i in range(10)]
    rows = _read_csv(trainer)
    assert len(_epoch_rows(rows, "topology/net.2/omega")) == 2
    assert len(callback.sample.labels) == 50


def test_rips_view_logs_per_class_clouds(tmp_path: Path) -> None:
    seed_everything(2)
    model = Classifier(mlp(in_features=64, hidden=32, depth=3), lr=0.01)
    callback = TopologyCallback(complex="rips", samples_per_class=15, k=5)
    trainer = _trainer(tmp_path, [callback], max_epochs=1)
    trainer.fit(model, datamodule=DigitsDataModule(batch_size=64, flatten=True))
    rows = _read_csv(trainer)
    name = callback.layer_names[-1]
    assert _epoch_rows(rows, f"topology/{name}/b0")[-1] >= 1.0
    assert f"topology/{name}/b2" not in rows[0]  # maxdim=1 logs b0 and b1 only


def test_unknown_layer_fails_before_training(tmp_path: Path) -> None:
    model = Classifier(digits_cnn())
    trainer = _trainer(tmp_path, [TopologyCallback(layers=["net.99"])], max_epochs=1)
    with pytest.raises(MisconfigurationException, match=r"net\.99"):
        trainer.fit(model, datamodule=DigitsDataModule())
    assert trainer.global_step == 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"complex": "alpha"}, "complex"),
        ({"threshold": "mode"}, "threshold"),
        ({"every_n_epochs": 0}, "every_n_epochs"),
        ({"max_samples": -1}, "max_samples"),
        ({"metric": "cosine"}, "metric"),
        ({"scale": 0.0}, "scale"),
    ],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(MisconfigurationException, match=match):
        TopologyCallback(**kwargs)


def test_nan_activations_warn_and_log_nan(tmp_path: Path) -> None:
    class ToNaN(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * float("nan")

    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 16), torch.nn.ReLU(), torch.nn.Linear(16, 10))
    net[3] = torch.nn.Sequential(torch.nn.Linear(16, 10), ToNaN())  # the deepest watched layer emits NaN
    model = Classifier(net)
    callback = TopologyCallback(layers=["net.2", "net.3"])
    trainer = _trainer(tmp_path, [callback], max_epochs=1)
    with pytest.warns(UserWarning, match="NaN or Inf"):
        trainer.validate(model, datamodule=DigitsDataModule(flatten=True), verbose=False)
    metrics = trainer.callback_metrics
    assert math.isnan(float(metrics["topology/net.3/omega"]))
    assert math.isfinite(float(metrics["topology/net.2/omega"]))
    assert math.isnan(float(metrics["topology/decay_rate"]))
    assert callback.validate_history[-1]["layers"]["net.3"]["problem"] == "NaN or Inf in its activations"
    assert callback.history == []  # a validate run is not an epoch of a fit


def test_exception_mid_epoch_leaves_no_hooks(tmp_path: Path) -> None:
    class Boom(RuntimeError):
        pass

    def exploding_forward(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        out = model(x[:2])
        if len(x) > 2:  # not the two-input pass that orders the layers: the evaluation's
            raise Boom("mid-evaluation failure")
        return out

    model = Classifier(digits_cnn())
    trainer = _trainer(tmp_path, [TopologyCallback(forward_fn=exploding_forward)], max_epochs=1)
    with pytest.raises(ForwardError, match="raised Boom: mid-evaluation failure") as err:
        trainer.fit(model, datamodule=DigitsDataModule())
    assert isinstance(err.value.__cause__, Boom)
    assert all(len(m._forward_hooks) == 0 for m in model.modules())


def test_sanity_check_skipped_and_every_n_epochs(tmp_path: Path) -> None:
    callback = TopologyCallback(every_n_epochs=2, samples_per_class=3)
    trainer = _trainer(tmp_path, [callback], max_epochs=4, num_sanity_val_steps=2)
    trainer.fit(Classifier(digits_cnn()), datamodule=DigitsDataModule())
    assert [h["epoch"] for h in callback.history] == [1, 3]


def test_early_stopping_on_decay_rate_and_resume(tmp_path: Path) -> None:
    seed_everything(3)
    stopper = EarlyStopping(monitor="topology/decay_rate", mode="max", patience=1, min_delta=5.0)
    callback = TopologyCallback(samples_per_class=5)
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    trainer = _trainer(tmp_path, [callback, stopper, ckpt], max_epochs=20, enable_checkpointing=True)
    trainer.fit(Classifier(digits_cnn()), datamodule=DigitsDataModule())
    # min_delta=5 cannot be beaten by a decay rate of about [-1, 1] after the first: stop after patience=1.
    assert trainer.should_stop and stopper.stopped_epoch == 1
    assert stopper.stopping_reason == EarlyStoppingReason.PATIENCE_EXHAUSTED
    assert trainer.current_epoch < 19
    assert len(callback.history) == 2
    saved = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=True)  # history is plain Python types
    assert any(v.get("history") == callback.history for v in saved["callbacks"].values() if isinstance(v, dict))

    resumed_cb = TopologyCallback(samples_per_class=5)
    resumed_stopper = EarlyStopping(monitor="topology/decay_rate", mode="max", patience=1, min_delta=5.0)
    trainer2 = _trainer(tmp_path, [resumed_cb, resumed_stopper], max_epochs=3)
    trainer2.fit(
        Classifier(digits_cnn()), datamodule=DigitsDataModule(), ckpt_path=str(tmp_path / "ckpt" / "last.ckpt")
    )
    assert [h["epoch"] for h in resumed_cb.history][:2] == [0, 1]
    assert resumed_cb.history[:2] == callback.history
    assert resumed_cb.sample.indices.tolist() == callback.sample.indices.tolist()
    # The restored wait count (1 = patience) makes the resumed run stop after its first epoch; a fresh
    # EarlyStopping would have counted epoch 2 as an improvement over -inf and not stopped.
    assert resumed_stopper.stopped_epoch == 2
    assert resumed_stopper.best_score == stopper.best_score


def _deep_size(obj: object) -> int:
    """Bytes held by a tree of dicts/lists/scalars (what ``sys.getsizeof`` misses: the contents)."""
    size = sys.getsizeof(obj)
    if isinstance(obj, dict):
        size += sum(_deep_size(k) + _deep_size(v) for k, v in obj.items())
    elif isinstance(obj, (list, tuple)):
        size += sum(_deep_size(v) for v in obj)
    return size


def test_memory_stays_flat_over_30_epochs(tmp_path: Path) -> None:
    from lightning.pytorch.callbacks import Callback

    class MemoryProbe(Callback):
        def __init__(self) -> None:
            self.traced: list[int] = []

        def on_train_epoch_end(self, trainer: Trainer, pl_module: torch.nn.Module) -> None:
            gc.collect()
            self.traced.append(tracemalloc.get_traced_memory()[0])

    probe = MemoryProbe()
    callback = TopologyCallback(samples_per_class=10)
    trainer = _trainer(
        tmp_path, [callback, probe], max_epochs=30, logger=False, limit_train_batches=2, limit_val_batches=2
    )
    tracemalloc.start()
    try:
        trainer.fit(Classifier(digits_cnn()), datamodule=DigitsDataModule(batch_size=64))
    finally:
        tracemalloc.stop()
    assert len(callback.history) == 30
    growth = probe.traced[-1] - probe.traced[4]
    # 25 evaluations of 100 inputs x 9 layers: only the history records may accumulate (their own size,
    # measured here, ~15 KB each), never anything proportional to the activations
    # (100 x 16 x 8 x 8 floats = 400 KB for one layer, ~2 MB for all layers of one epoch).
    record = _deep_size(callback.history[-1])
    assert record < 50_000
    assert growth < 25 * (record + 10_000), (record, probe.traced)


class _ClockedNet(torch.nn.Module):
    """A digits CNN whose forward pass advances a fake clock: 1000 s on two inputs (the callback's layer-ordering
    trace), 1 s on a batch."""

    def __init__(self, clock: list[float]) -> None:
        super().__init__()
        self.net = digits_cnn()
        self.clock = clock
        self.traces = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.traces += int(x.shape[0] == 2)
        self.clock[0] += 1000.0 if x.shape[0] == 2 else 1.0
        return self.net(x)


def test_timings_leave_out_the_layer_ordering_trace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each `validate` run orders the layers again by a forward pass of two inputs (no sanity check there): a
    one-off set-up, not part of the evaluation `callback.timings` reports (the GPU benchmark's per-evaluation
    seconds are read from it)."""
    from torch.utils.data import DataLoader, TensorDataset

    import lightning_topo.callbacks.topology as topology

    clock = [0.0]
    monkeypatch.setattr(topology, "_clock", lambda: clock[0])
    torch.manual_seed(0)
    net = _ClockedNet(clock)
    model = Classifier(net)
    x = torch.rand(40, 1, 8, 8)
    loader = DataLoader(TensorDataset(x, torch.arange(40) % 4), batch_size=10)
    callback = TopologyCallback(layers=["net.net.1", "net.net.4"], charts=False)
    for _ in range(2):
        quiet_trainer(tmp_path, [callback]).validate(model, loader, verbose=False)
    assert net.traces == 2  # each validate run traced once
    assert len(callback.timings) == 2
    assert all(0 < t < 1000 for t in callback.timings), callback.timings


def test_two_explicit_layers_and_a_test_run_say_what_they_mean(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Two layers chosen by name gave theta and decay_rate (a cubic over 2 points) without the note that
    `layers="auto"` gives; and `trainer.test` with the callback measured nothing and said nothing."""
    seed_everything(1)
    model = Classifier(mlp(in_features=64, hidden=16, depth=2), lr=0.01)
    callback = TopologyCallback(layers=["net.0", "net.2"], samples_per_class=3)
    dm = DigitsDataModule(batch_size=64, flatten=True)
    with pytest.warns(
        UserWarning, match=r"2 watched layers \(\['net\.0', 'net\.2'\]\): theta and decay_rate .* 2 points"
    ):
        quiet_trainer(tmp_path, [callback], limit_train_batches=1).fit(model, datamodule=dm)
    assert len(callback.history) == 1
    with caplog.at_level("INFO"):
        quiet_trainer(tmp_path, [callback]).test(model, datamodule=dm)
    said = [m for m in caplog.messages if "trainer.test runs no validation, so nothing is measured" in m]
    assert said, caplog.messages
    assert len(callback.history) == 1 and not callback.validate_history
