"""The callback reuses one `LayerwiseTopology` across evaluations (reset, not rebuilt): the numbers must be those of
a fresh metric every time, after a problem layer, with other classes, and after a resume."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Trainer, seed_everything
from models import quiet_trainer
from torch import nn

from lightning_topo import TopologyCallback
from lightning_topo.analysis import evaluate_topology
from lightning_topo.analysis.evaluate import reusable_metric
from lightning_topo.config import TopologyConfig
from lightning_topo.datasets import DigitsDataModule
from lightning_topo.metrics import LayerwiseTopology
from lightning_topo.models import Classifier, digits_cnn


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU())


def _same(a, b) -> None:
    assert [layer.name for layer in a.layers] == [layer.name for layer in b.layers]
    for x, y in zip(a.layers, b.layers, strict=True):
        torch.testing.assert_close(x.betti, y.betti, equal_nan=True)
        assert (x.omega == y.omega) or (x.omega != x.omega and y.omega != y.omega)
        assert x.problem == y.problem
    assert a.classes == b.classes
    assert (a.theta == b.theta) or (a.theta != a.theta and b.theta != b.theta)
    assert a.warnings == b.warnings


def test_reused_metric_gives_fresh_numbers_on_new_data() -> None:
    net, cfg, names = _net(), TopologyConfig(), ["1", "3"]
    metric = None
    for seed in range(3):  # three evaluations in a row, each on other inputs
        g = torch.Generator().manual_seed(seed)
        x, y = torch.rand(12, 1, 8, 8, generator=g), torch.arange(12) % 3
        metric = reusable_metric(metric, names, [0, 1, 2], cfg, sync=True)
        reused = evaluate_topology(net, x, y, names, cfg, classes=[0, 1, 2], metric=metric)
        fresh = evaluate_topology(net, x, y, names, cfg, classes=[0, 1, 2])
        _same(reused, fresh)
        assert int(metric.count.sum()) == 2 * 12  # the states were reset, not accumulated


def test_reuse_after_a_problem_layer_clears_the_problem() -> None:
    cfg, names = TopologyConfig(), ["1", "3"]
    metric = reusable_metric(None, names, [0, 1], cfg)
    metric.update("1", problem="broken")
    metric.compute()
    again = reusable_metric(metric, names, [0, 1], cfg)
    assert again is metric and metric.problems == {} and int(metric.problem.sum()) == 0
    x, y = torch.rand(6, 1, 8, 8), torch.arange(6) % 2
    _same(evaluate_topology(_net(), x, y, names, cfg, metric=again), evaluate_topology(_net(), x, y, names, cfg))


def test_a_metric_for_other_layers_classes_or_config_is_not_reused() -> None:
    cfg = TopologyConfig()
    metric = reusable_metric(None, ["1", "3"], [0, 1], cfg)
    assert isinstance(metric, LayerwiseTopology)
    assert reusable_metric(metric, ["1", "3"], [0, 1], cfg) is metric
    assert reusable_metric(metric, ["3", "1"], [0, 1], cfg) is not metric
    assert reusable_metric(metric, ["1", "3"], [0, 1, 2], cfg) is not metric
    assert reusable_metric(metric, ["1", "3"], [0, 1], TopologyConfig()) is not metric
    assert reusable_metric(metric, ["1", "3"], [0, 1], cfg, sync=False) is not metric


def _fit(tmp_path: Path, epochs: int, callback: TopologyCallback, ckpt: str | None = None) -> Trainer:
    seed_everything(0, workers=True)
    trainer = quiet_trainer(tmp_path, [callback], max_epochs=epochs, deterministic=True)
    trainer.fit(Classifier(digits_cnn(), lr=0.01), datamodule=DigitsDataModule(batch_size=64), ckpt_path=ckpt)
    return trainer


def test_callback_history_equals_fresh_evaluations_and_survives_resume(tmp_path: Path) -> None:
    """Each epoch's history entry equals a fresh `evaluate_topology` of that epoch's weights, and a run resumed from
    a checkpoint (a new callback, so a new metric) keeps the saved history and continues it."""
    names = ["net.1", "net.4", "net.8"]
    seen: list = []

    class Checked(TopologyCallback):
        def on_validation_epoch_end(self, trainer, pl_module) -> None:
            super().on_validation_epoch_end(trainer, pl_module)
            s = self.sample
            fresh = evaluate_topology(pl_module, s.inputs, s.labels, self.layer_names, self.config, classes=s.classes)
            _same(self.last_result, fresh)
            seen.append(self._metric)

    full = Checked(layers=names, charts=False)
    trainer = _fit(tmp_path / "full", 3, full)
    assert len(full.history) == 3 and len({id(m) for m in seen}) == 1  # one metric, reused

    first = Checked(layers=names, charts=False)
    t1 = _fit(tmp_path / "a", 2, first)
    path = str(tmp_path / "a.ckpt")
    t1.save_checkpoint(path)
    resumed = Checked(layers=names, charts=False)
    _fit(tmp_path / "b", 3, resumed, ckpt=path)
    # The restored epochs are the saved ones; the resumed epoch is checked against a fresh evaluation above (its
    # weights differ from the uninterrupted run's: Lightning does not restore the shuffling order mid-fit).
    assert len(resumed.history) == 3 and resumed.history[:2] == full.history[:2]
    assert resumed.state_dict()["sample_indices"] == full.state_dict()["sample_indices"]
    assert trainer.callback_metrics.keys() >= {f"topology/{n}/omega" for n in names}


def test_the_callback_resets_its_metric_once_per_evaluation(tmp_path: Path, monkeypatch) -> None:
    """One reset per evaluation (the callback keeps the metric, `evaluate_topology` resets it): resetting twice
    cost as much as a layer's statistics."""
    resets: list[int] = []
    original = LayerwiseTopology.reset

    def counted(self) -> None:
        resets.append(id(self))
        original(self)

    monkeypatch.setattr(LayerwiseTopology, "reset", counted)
    callback = TopologyCallback(layers=["net.1", "net.4", "net.8"], charts=False)
    _fit(tmp_path, 3, callback)
    assert len(callback.history) == 3
    assert resets.count(id(callback._metric)) == 3 and len(resets) == 3


def _filled(cfg: TopologyConfig, classes: list[int], sync: bool = False) -> LayerwiseTopology:
    metric = LayerwiseTopology(["a", "b"], classes, cfg, sync_on_compute=sync)
    g = torch.Generator().manual_seed(len(classes))
    labels = torch.tensor(classes * 3)
    for name in ("a", "b"):
        if cfg.complex == "cubical":
            summaries = torch.rand(len(labels), len(cfg.persistence_keys), generator=g, dtype=torch.float64)
            betti = torch.randint(0, 5, (len(labels), 3), generator=g)
            metric.update(name, betti, labels, persistence=summaries if cfg.persistence_keys else None)
        else:
            metric.update(name, torch.rand(len(labels), 4, generator=g), labels)
    return metric


def _identical(a, b) -> None:
    assert type(a) is type(b)
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a.isnan(), b.isnan())
        assert torch.equal(a.nan_to_num(), b.nan_to_num())
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for key in a:
            _identical(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _identical(x, y)
    elif dataclasses.is_dataclass(a):
        for f in dataclasses.fields(a):
            _identical(getattr(a, f.name), getattr(b, f.name))
    else:
        assert a == b or (a != a and b != b)


@pytest.mark.parametrize(
    ("cfg", "classes"),
    [
        (TopologyConfig(), [0, 1, 2]),
        (TopologyConfig(), [4]),  # one class: torchmetrics makes 1-element tensors 0-d
        (TopologyConfig(persistence=["total_persistence", "entropy"]), [0, 1]),
        (TopologyConfig(persistence=["persistent_betti"], persistence_dims=[0]), [3]),
        (TopologyConfig(complex="rips", k=2, maxdim=0), [7]),
        (TopologyConfig(complex="rips", k=2), [0, 1]),
    ],
)
def test_result_equals_torchmetrics_compute(cfg: TopologyConfig, classes: list[int]) -> None:
    """`result()` (the computation without torchmetrics' wrapper, when nothing is synchronised) gives what
    `compute()` gives: the same values, dtypes and shapes (0-d where torchmetrics squeezes), warnings included."""
    fast, standard = _filled(cfg, classes), _filled(cfg, classes)
    _identical(fast.result(), standard.compute())
    assert fast.result() is fast.result()  # cached, as compute()
    problem = _filled(cfg, classes)
    problem.update("a", problem="broken")
    _identical(problem.result(), _filled_with_problem(cfg, classes).compute())


def _filled_with_problem(cfg: TopologyConfig, classes: list[int]) -> LayerwiseTopology:
    metric = _filled(cfg, classes)
    metric.update("a", problem="broken")
    return metric


def test_result_synchronises_through_compute_under_ddp(monkeypatch) -> None:
    """With states to gather (`sync_on_compute` and a distributed run), `result()` is torchmetrics' `compute()`."""
    metric = _filled(TopologyConfig(), [0, 1], sync=True)
    calls: list[bool] = []
    monkeypatch.setattr(metric, "compute", lambda: calls.append(True) or "computed")
    assert metric.result() is not None and not calls  # no process group: the direct computation
    metric._computed = None
    monkeypatch.setattr(metric, "distributed_available_fn", lambda: True)
    assert metric.result() == "computed" and calls == [True]
    unsynced = _filled(TopologyConfig(), [0, 1], sync=False)
    monkeypatch.setattr(unsynced, "distributed_available_fn", lambda: True)
    monkeypatch.setattr(unsynced, "compute", lambda: calls.append(False) or "computed")
    assert unsynced.result() != "computed" and calls == [True]
