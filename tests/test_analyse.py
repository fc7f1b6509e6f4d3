"""`analyse` / `TopologyReport` / `rank_models` against the callback, scipy and the report's own JSON."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch
from lightning.pytorch import Trainer, seed_everything
from models import quiet_trainer, resnet18
from scipy import stats
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_topo import ConfigError, TopologyCallback, TopologyConfig, TopologyReport, analyse, rank_models
from lightning_topo.analysis.ranking import correlations
from lightning_topo.capture import UnknownLayerError
from lightning_topo.datasets import DigitsDataModule
from lightning_topo.metrics import BettiNumbers, DecayRate, LayerwiseTopology, TopologicalComplexity
from lightning_topo.models import Classifier, digits_cnn, mlp

matplotlib.use("Agg")


def _fit(tmp_path: Path, model: Classifier, callback: TopologyCallback, epochs: int) -> Trainer:
    trainer = quiet_trainer(tmp_path, [callback], max_epochs=epochs)
    trainer.fit(model, datamodule=DigitsDataModule(batch_size=64))
    return trainer


def _assert_report_equals_logged(report: TopologyReport, metrics: dict, dims: int) -> None:
    means = report.mean_betti()
    assert len(report.layers) >= 2
    for i, name in enumerate(report.layers):
        for k in range(dims):
            assert float(metrics[f"topology/{name}/b{k}"]) == pytest.approx(float(means[i, k]), abs=1e-6), (name, k)
        assert float(metrics[f"topology/{name}/omega"]) == pytest.approx(float(report.omega[i]), abs=1e-6)
    assert float(metrics["topology/theta"]) == pytest.approx(report.theta, abs=1e-6)
    assert float(metrics["topology/decay_rate"]) == pytest.approx(report.decay_rate, abs=1e-6)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The digits CNN trained 2 epochs with the callback; what it logged at the end."""
    seed_everything(0, workers=True)
    model = Classifier(digits_cnn(), lr=0.01)
    callback = TopologyCallback()
    trainer = _fit(tmp_path_factory.mktemp("analyse"), model, callback, epochs=2)
    return {"model": model, "metrics": dict(trainer.callback_metrics), "callback": callback}


def test_analyse_equals_callback_cubical(trained: dict) -> None:
    report = analyse(trained["model"], DigitsDataModule(batch_size=64), progress=False)
    assert report.layers == trained["callback"].layer_names
    assert report.indices.tolist() == trained["callback"].sample.indices.tolist()
    _assert_report_equals_logged(report, trained["metrics"], 3)
    # The per-input values are the engine's numbers on the sample, averaged per class into `betti`.
    assert report.per_input is not None and report.per_input.shape == (len(report.layers), 200, 3)
    for j, c in enumerate(report.classes):
        mask = report.labels == c
        assert torch.allclose(report.per_input[:, mask].mean(dim=1), report.betti[:, j])


def test_metric_classes_equal_callback_cubical(trained: dict) -> None:
    """The torchmetrics classes, fed the sample layer by layer from the model's own activations (their own
    cubical_betti at each volume's mean), give the numbers the callback logged."""
    callback, model, metrics = trained["callback"], trained["model"], trained["metrics"]
    sample, names = callback.sample, callback.layer_names
    num_classes = len(sample.classes)
    decay = DecayRate(num_layers=len(names), num_classes=num_classes, threshold="mean")
    theta_metric = DecayRate(num_layers=len(names), num_classes=num_classes, kind="theta", threshold="mean")
    outputs: dict[str, torch.Tensor] = {}
    hooks = [
        model.get_submodule(n).register_forward_hook(lambda m, a, out, n=n: outputs.__setitem__(n, out.detach()))
        for n in names
    ]
    model.eval()
    with torch.no_grad():
        model(sample.inputs)
    for h in hooks:
        h.remove()
    for i, name in enumerate(names):
        betti = BettiNumbers(num_classes=num_classes, threshold="mean")
        omega = TopologicalComplexity(num_classes=num_classes, threshold="mean")
        volumes = outputs[name]
        for m in (betti, omega):
            m.update(volumes, sample.labels)
        decay.update(volumes=volumes, labels=sample.labels, layer=i)
        theta_metric.update(volumes=volumes, labels=sample.labels, layer=i)
        means = betti.compute().nanmean(dim=0)
        for k in range(3):
            assert float(metrics[f"topology/{name}/b{k}"]) == pytest.approx(float(means[k]), abs=1e-6), (name, k)
        assert float(metrics[f"topology/{name}/omega"]) == pytest.approx(float(omega.compute()), abs=1e-6)
    assert float(metrics["topology/decay_rate"]) == pytest.approx(float(decay.compute()), abs=1e-6)
    assert float(metrics["topology/theta"]) == pytest.approx(float(theta_metric.compute()), abs=1e-6)


def test_analyse_equals_callback_rips(tmp_path: Path) -> None:
    seed_everything(1, workers=True)
    model = Classifier(mlp(in_features=64, hidden=24, depth=3), lr=0.01)
    callback = TopologyCallback(complex="rips", k=8, samples_per_class=15)
    trainer = _fit(tmp_path, model, callback, epochs=1)
    dm = DigitsDataModule(batch_size=64)
    report = analyse(model, dm, complex="rips", k=8, samples_per_class=15, progress=False)
    _assert_report_equals_logged(report, dict(trainer.callback_metrics), 2)
    assert report.per_input is None and report.betti.shape == (3, 10, 2)
    # The metric the callback feeds, fed by hand with pooled embeddings, gives the same numbers.
    sample, names = callback.sample, callback.layer_names
    metric = LayerwiseTopology(names, sample.classes, callback.config)
    model.eval()
    with torch.no_grad():
        h = sample.inputs.flatten(1)
        outputs = {}
        for name, module in model.net.named_children():
            h = module(h)
            outputs[f"net.{name}"] = h
    for name in names:
        metric.update(name, outputs[name], sample.labels)
    result = metric.compute()
    for i, layer in enumerate(result.layers):
        assert torch.allclose(layer.betti, report.betti[i], equal_nan=True) and layer.omega == report.omega[i]
    assert result.theta == pytest.approx(report.theta, abs=1e-12)
    # Streaming layer by layer (the default for Rips) and one pass over all layers agree exactly.
    one_pass = analyse(model, dm, complex="rips", k=8, samples_per_class=15, layer_by_layer=False, progress=False)
    assert torch.equal(one_pass.betti, report.betti)


def test_data_kinds_give_the_same_report(trained: dict) -> None:
    dm = DigitsDataModule(batch_size=64)
    dm.setup("validate")
    kwargs = {"samples_per_class": 5, "progress": False}
    from_dm = analyse(trained["model"], dm, **kwargs)
    from_loader = analyse(trained["model"], DataLoader(dm.val_set, batch_size=7), **kwargs)
    from_dataset = analyse(trained["model"], dm.val_set, **kwargs)
    assert from_dm.equals(from_loader) and from_dm.equals(from_dataset)
    assert len(from_dm.labels) == 50


def test_model_state_is_restored(trained: dict) -> None:
    model = trained["model"]
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    analyse(model, DigitsDataModule(), samples_per_class=3, progress=False)
    assert model.training and all(m.training for m in model.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not any(m._forward_hooks for m in model.modules())


def test_json_round_trip_is_exact(trained: dict, tmp_path: Path) -> None:
    report = analyse(trained["model"], DigitsDataModule(), samples_per_class=4, progress=False, name="cnn")
    path = report.to_json(tmp_path / "sub" / "report.json")
    back = TopologyReport.from_json(path)
    assert back.equals(report)
    assert torch.equal(back.betti, report.betti) and torch.equal(back.per_input, report.per_input)
    assert back.theta == report.theta and back.decay_rate == report.decay_rate  # bit-exact floats
    assert back.layers == report.layers and back.classes == report.classes and back.name == "cnn"
    assert back.indices.tolist() == report.indices.tolist()


class _NaNAfter(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * math.nan


def test_nan_layer_reported_and_round_trips(tmp_path: Path) -> None:
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), _NaNAfter(), nn.ReLU())
    data = TensorDataset(torch.rand(20, 1, 8, 8), torch.arange(20) % 2)
    with pytest.warns(UserWarning, match="NaN or Inf"):
        report = analyse(net, data, progress=False)
    assert set(report.problems) == {"2", "3"} and math.isnan(report.theta)
    assert torch.isnan(report.betti[2:]).all() and torch.isfinite(report.betti[:2]).all()
    back = TopologyReport.from_json(report.to_json(tmp_path / "nan.json"))
    assert back.equals(report) and math.isnan(back.theta) and back.problems == report.problems


def test_report_figure_table_and_pandas(trained: dict) -> None:
    report = analyse(trained["model"], DigitsDataModule(), samples_per_class=4, progress=False)
    fig = report.plot()
    ax = fig.axes[0]
    assert [line.get_label() for line in ax.get_lines()] == ["b0", "b1", "b2", "Omega"]
    assert np.allclose(ax.get_lines()[3].get_ydata(), report.omega.numpy())
    fig.canvas.draw()
    pixels = np.asarray(fig.canvas.buffer_rgba())[..., :3]
    assert (pixels.reshape(-1, 3) != pixels.reshape(-1, 3)[0]).any(axis=1).mean() > 0.02
    table = report.table()
    assert all(name in table for name in report.layers) and "theta" in table
    frame = report.to_pandas()
    assert len(frame) == len(report.layers) * len(report.classes)
    assert frame.loc[(frame.layer == report.layers[0]) & (frame["class"] == 3), "b1"].item() == pytest.approx(
        float(report.betti[0, 3, 1])
    )
    # A row's omega is its class's (b0 + b1 + b2); the layer's is the mean over its classes.
    first = frame[frame.layer == report.layers[0]]
    assert np.allclose(first.omega, first.b0 + first.b1 + first.b2)
    assert first.omega.mean() == pytest.approx(float(report.omega[0])) == first.layer_omega.iloc[0]


def test_auto_layers_of_a_resnet18_equivalent() -> None:
    data = TensorDataset(torch.rand(6, 3, 32, 32), torch.arange(6) % 2)
    report = analyse(resnet18(width=4), data, progress=False)
    assert report.layers == ["conv1", "bn1", "relu"] + [f"layer{i}.{j}" for i in range(1, 5) for j in (0, 1)]
    assert report.betti.shape == (11, 2, 3) and math.isfinite(report.theta)


def test_bad_arguments() -> None:
    data = TensorDataset(torch.rand(6, 1, 8, 8), torch.arange(6) % 2)
    with pytest.raises(UnknownLayerError, match="Close matches"):
        analyse(digits_cnn(), data, layers=["1x"], progress=False)
    with pytest.raises(TypeError, match="`data` must be a DataLoader"):
        analyse(digits_cnn(), {"x": data}, progress=False)  # (a list of items is a dataset: test_a_list_of_items)
    with pytest.raises(ConfigError, match="`complex` must be one of"):
        analyse(digits_cnn(), data, complex="alpha", progress=False)
    with pytest.raises(ConfigError, match="unknown argument"):
        analyse(digits_cnn(), data, TopologyConfig(), kk=3, progress=False)
    with pytest.raises(TypeError, match="`model` must be"):
        analyse("resnet", data, progress=False)


# ---------------------------------------------------------------------------------------------- ranking
def test_correlations_equal_scipy() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=9).tolist(), rng.normal(size=9).tolist()
    got = correlations(x, y)
    assert got["kendall_tau"] == stats.kendalltau(x, y).statistic
    assert got["kendall_p"] == stats.kendalltau(x, y).pvalue
    assert got["spearman_rho"] == stats.spearmanr(x, y).statistic
    assert got["spearman_p"] == stats.spearmanr(x, y).pvalue
    assert got["weighted_tau"] == stats.weightedtau(x, y).statistic
    with pytest.raises(ValueError, match="at least 3"):
        correlations([1.0, 2.0], [1.0, 2.0])


class _SmallResNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU())
        self.block = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        return self.head(torch.relu(h + self.block(h)))


def test_rank_a_zoo_end_to_end() -> None:
    torch.manual_seed(0)
    zoo = {
        "cnn_8": digits_cnn((8, 16)),
        "cnn_32": digits_cnn((32, 64)),
        "cnn_3deep": digits_cnn((8, 16, 16)),
        "mlp_2x32": mlp(in_features=64, hidden=32, depth=2),
        "mlp_4x16": mlp(in_features=64, hidden=16, depth=4),
        "resnet": _SmallResNet(),
    }
    scores = {name: s for name, s in zip(zoo, [0.91, 0.95, 0.93, 0.88, 0.85, 0.96], strict=True)}
    ranking = rank_models(zoo, DigitsDataModule(), scores=scores, samples_per_class=5, progress=False)
    assert sorted(ranking.names) == sorted(zoo)
    thetas = [row["theta"] for row in ranking.rows]
    assert all(math.isfinite(t) for t in thetas) and thetas == sorted(thetas)
    assert [row["rank"] for row in ranking.rows] == list(range(1, 7))
    predictor = [-row["theta"] for row in ranking.rows]
    score = [row["score"] for row in ranking.rows]
    assert ranking.correlations == pytest.approx(correlations(predictor, score))
    assert ranking.correlations["kendall_tau"] == stats.kendalltau(predictor, score).statistic
    assert ranking.correlations["weighted_tau"] == stats.weightedtau(predictor, score).statistic
    # Reports can be ranked again without re-analysing, by the depth-normalised alternative too.
    again = rank_models(ranking.reports, scores=scores, by="decay_rate")
    decays = [row["decay_rate"] for row in again.rows]
    assert decays == sorted(decays, reverse=True)
    text = ranking.table()
    assert "Kendall tau" in text and all(name in text for name in zoo)
    fig = ranking.plot()
    assert len(fig.axes[0].collections[0].get_offsets()) == 6


def test_rank_bad_arguments() -> None:
    data = TensorDataset(torch.rand(6, 1, 8, 8), torch.arange(6) % 2)
    with pytest.raises(ValueError, match="missing \\['b'\\]"):
        rank_models({"a": digits_cnn(), "b": digits_cnn()}, data, scores={"a": 1.0}, progress=False)
    with pytest.raises(ValueError, match="`by` must be one of"):
        rank_models({"a": digits_cnn()}, data, by="omega")
    with pytest.raises(TypeError, match=r"must be an nn\.Module or a TopologyReport"):
        rank_models({"a": "resnet18"}, data)


def test_point_cloud_view_warns_when_k_makes_the_graph_nearly_complete() -> None:
    """At 20 inputs per class, k = 14 joins almost every pair: b0 = 1 carries no information, and a warning says
    so; with 40 per class (> 2k) it does not fire, nor at the defaults (k from the class size)."""
    import warnings as _warnings

    torch.manual_seed(0)
    model = digits_cnn()
    with pytest.warns(UserWarning, match=r"k = 14 is at least half of the sampled points of 10 classes") as said:
        analyse(model, DigitsDataModule(), complex="rips", k=14, samples_per_class=20, progress=False)
    # One message for all the classes (it was one per class: 100 classes, 100 lines), naming five of them.
    dense = [str(w.message) for w in said if "at least half" in str(w.message)]
    assert len(dense) == 1 and "(class 0: 20, class 1: 20" in dense[0] and "and 5 more" in dense[0]
    # A k capped to a small class's size says so.
    small = TensorDataset(torch.rand(12, 1, 8, 8), torch.arange(12) % 2)
    with pytest.warns(UserWarning, match=r"k = 5 \(k=50 capped at each class's size - 1\)"):
        analyse(model, small, complex="rips", k=50, samples_per_class=6, progress=False)
    for kwargs in ({"k": 14, "samples_per_class": 40, "max_samples": 400}, {}):
        with _warnings.catch_warnings(record=True) as caught:
            _warnings.simplefilter("always")
            analyse(model, DigitsDataModule(), complex="rips", progress=False, **kwargs)
        assert not [w for w in caught if "at least half of class" in str(w.message)], kwargs


@pytest.mark.parametrize(
    ("name", "layers"),
    [
        ("outputs/digits_cnn/checkpoints/digits_cnn.ckpt", 8),
        ("/" + "/".join(f"experiments_folder_{i}" for i in range(12)) + "/model-epoch=37-step=12345.ckpt", 3),
        ("lightning_topo.models.a_model_class_with_a_rather_long_name_that_goes_on_and_on_CNNClassifier", 3),
        ("", 11),
    ],
)
def test_report_figure_texts_fit_inside_the_figure(name: str, layers: int) -> None:
    """report.png's title is short (the checkpoint's file name, not its path) and no text is clipped: after a
    draw, the title and the footer naming the full path lie inside the figure's bounding box."""
    from lightning_topo.analysis.report import short_name

    gen = torch.Generator().manual_seed(0)
    betti = torch.rand(layers, 2, 3, generator=gen, dtype=torch.float64) * 5
    report = TopologyReport(
        layers=[f"features.block{i}.conv" for i in range(layers)],
        classes=[0, 1],
        betti=betti,
        omega=betti.mean(1).sum(-1),
        theta=-0.1234,
        decay_rate=0.5678,
        labels=torch.tensor([0, 1]),
        indices=torch.tensor([0, 1]),
        name=name,
    )
    fig = report.plot()
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    title = fig.axes[0].title
    texts = [title, *fig.texts]  # the footer is one of the figure's texts (its supxlabel)
    for text in texts:
        box = text.get_window_extent(renderer)
        inside = fig.bbox.x0 <= box.x0 and box.x1 <= fig.bbox.x1 and fig.bbox.y0 <= box.y0 and box.y1 <= fig.bbox.y1
        assert inside, (text.get_text(), box, fig.bbox)
    shown = title.get_text().replace("\n", "")
    assert short_name(name) in shown and "theta = -0.123" in shown
    if "/" in name:
        assert name not in shown  # the path is not in the title ...
        footer = "".join(t.get_text().replace("\n", "") for t in texts[1:])
        assert footer == name  # ... but in full under the axes


def test_a_list_of_items_is_data() -> None:
    """A plain list of (input, label) items was refused; it is a map-style dataset to a DataLoader."""
    items = [(torch.rand(1, 8, 8), i % 2) for i in range(12)]
    assert analyse(digits_cnn(), items, samples_per_class=3, progress=False).labels.tolist() == [0, 0, 0, 1, 1, 1]
    with pytest.raises(TypeError, match=r"or a non-empty list\) of \(input, label\) items"):
        analyse(digits_cnn(), [], progress=False)


def test_a_euclidean_rips_scale_outside_the_clouds_is_said() -> None:
    """``complex="rips", metric="euclidean"`` at the default ``scale=2.5`` (meant in hops for ``knn_hops``) on
    activations of small magnitude joined every class into one component at every layer: Omega 1 everywhere, a
    decay rate of 0, and no word. The scale is now said to be outside the clouds, both ways; a scale inside them
    (and knn_hops) is not."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.ReLU(), torch.nn.Linear(8, 8), torch.nn.ReLU())
    data = TensorDataset(torch.randn(40, 3) * 0.1, torch.arange(40) % 2)
    said = {}
    for scale in (2.5, 1e-9, 0.05):
        report = analyse(net, data, complex="rips", metric="euclidean", scale=scale, progress=False)
        said[scale] = [w for w in report.warnings if "metric='euclidean': scale=" in w]
    assert len(said[2.5]) == 1 and "joins every class's cloud into one component" in said[2.5][0]
    assert len(said[1e-9]) == 1 and "leaves every point of every class apart" in said[1e-9][0]
    assert said[0.05] == []
    report = analyse(net, data, complex="rips", k=5, progress=False)
    assert not [w for w in report.warnings if "scale=" in w]


def test_a_dead_layer_is_said_to_be_constant_not_simplified(tmp_path: Path) -> None:
    """A layer of dead ReLUs (every output 0) has b = (1, 0, 0) at the mean threshold for every input: Omega 1, read
    by the decay rate (and TopologyEarlyStopping, mode max) as the most simplified layer. The callback and
    ``analyse`` now say so; a live layer, or a layer constant per channel only, is not flagged."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3),
    )  # fmt: skip
    with torch.no_grad():
        net[2].bias.fill_(-1e3)  # layer '3' (the ReLU after it) outputs zeros; layer '4' its bias per channel
    data = TensorDataset(torch.randn(60, 1, 12, 12), torch.arange(60) % 3)
    report = analyse(net, data, layers=[str(i) for i in range(5)], progress=False)
    said = [w for w in report.warnings if "constant output" in w]
    assert len(said) == 1 and said[0].startswith("layer '3' gives every one of the 60 sampled inputs"), said
    assert report.betti[report.layers.index("3")].tolist() == [[1.0, 0.0, 0.0]] * 3
    callback = TopologyCallback(layers=[f"net.{i}" for i in range(5)], charts=False)
    trainer = quiet_trainer(tmp_path, [callback])
    with pytest.warns(UserWarning, match="layer 'net.3' gives every one of the 60 sampled inputs a constant output"):
        trainer.validate(Classifier(net), DataLoader(data, batch_size=16), verbose=False)
    live = analyse(nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3)), data, progress=False)
    assert not [w for w in live.warnings if "constant output" in w]
