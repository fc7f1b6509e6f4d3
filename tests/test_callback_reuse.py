"""The callback reuses one `LayerwiseTopology` across evaluations (reset, not rebuilt): the numbers must be those of
a fresh metric every time, after a problem layer, with other classes, and after a resume."""

from __future__ import annotations

from pathlib import Path

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
