"""Persistence summaries in the product: config, summary functions, callback (logging, resume), analyse and the
report's round trips, figures (PNG, TensorBoard, W&B offline read back). The DDP check is in test_ddp.py."""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import wandb_records
from lightning.pytorch import Trainer, seed_everything
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger, WandbLogger
from models import quiet_trainer

from lightning_topo import PersistenceSummaries, TopologyCallback, TopologyConfig, TopologyReport, analyse
from lightning_topo.config import ConfigError
from lightning_topo.datasets import DigitsDataModule
from lightning_topo.functional import (
    cubical_betti,
    cubical_persistence,
    persistence_entropy,
    persistence_summaries,
    persistent_betti,
    sublevel_thresholds,
    total_persistence,
)
from lightning_topo.functional.persistence import PersistenceDiagrams
from lightning_topo.models import Classifier, digits_cnn

ALL = ["total_persistence", "entropy", "persistent_betti"]


# ---------------------------------------------------------------------------------------------------- config
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"persistence": ["entropi"]}, r"unknown summary 'entropi' \(did you mean 'entropy'\?\)"),
        ({"persistence": []}, "empty list; pass None"),
        ({"persistence": ["entropy"], "complex": "rips"}, "needs the cubical view"),
        ({"min_persistence": 1.5}, r"`min_persistence` must be a number in \[0, 1\]"),
        ({"min_persistence": -0.1}, r"`min_persistence` must be a number in \[0, 1\]"),
        ({"persistence_dims": [3]}, r"`persistence_dims` must be an integer in \[0, 2\].*got 3"),
        ({"persistence_dims": []}, "`persistence_dims` is empty"),
        ({"persistence_dims": [True]}, r"`persistence_dims` must be an integer in \[0, 2\].*got True"),
        ({"persistence_dims": [1.0]}, r"`persistence_dims` must be an integer in \[0, 2\].*got 1.0"),
    ],
)
def test_config_rejects_bad_persistence_settings(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        TopologyConfig(**kwargs)


def test_config_normalises_and_the_state_key_leaves_the_summaries_out() -> None:
    cfg = TopologyConfig(persistence=["persistent_betti", "total_persistence"], persistence_dims=[2, 0])
    assert cfg.persistence == ("total_persistence", "persistent_betti")  # canonical order
    assert cfg.persistence_dims == (0, 2)
    assert cfg.persistence_keys == ["total_persistence_0", "total_persistence_2", "persistent_b0", "persistent_b2"]
    assert TopologyConfig(persistence="entropy").persistence == ("entropy",)
    # Off (the default): the numeric settings, hence the callback's state key, are what they were.
    off = TopologyConfig().numeric_settings()
    assert "persistence" not in off and off == TopologyConfig(min_persistence=0.5).numeric_settings()
    on = cfg.numeric_settings()
    assert on["persistence"] == ["total_persistence", "persistent_betti"] and on["min_persistence"] == 0.1
    assert "min_persistence" not in TopologyConfig(persistence=["entropy"]).numeric_settings()
    # The state key leaves the summaries' settings out: turning them on, off or changing them keeps the Betti
    # history on resume (Lightning restores it by key, without its "please add the callbacks" warning).
    assert TopologyCallback().state_key == TopologyCallback(persistence=ALL, persistence_dims=[0, 2]).state_key
    # The dims as `cubical_persistence` takes them: one as an int, a NumPy array, a 1-d tensor.
    for dims in (np.array([2, 0]), torch.tensor([0, 2]), (2, 0, 2)):
        assert TopologyConfig(persistence=["entropy"], persistence_dims=dims).persistence_dims == (0, 2)
    assert TopologyConfig(persistence=["entropy"], persistence_dims=np.int64(1)).persistence_dims == (1,)


# ---------------------------------------------------------------------------------------------------- summaries
def _diagrams(pairs: list, dims: list, index: list, vmin: list, vmax: list, computed=(0, 1, 2)) -> PersistenceDiagrams:
    return PersistenceDiagrams(
        pairs=torch.tensor(pairs, dtype=torch.float64).reshape(-1, 2),
        dims=torch.tensor(dims, dtype=torch.long),
        index=torch.tensor(index, dtype=torch.long),
        num_volumes=len(vmin),
        computed_dims=tuple(computed),
        value_min=torch.tensor(vmin, dtype=torch.float64),
        value_max=torch.tensor(vmax, dtype=torch.float64),
    )


def test_summaries_by_hand() -> None:
    inf = math.inf
    d = _diagrams(
        [[0.0, inf], [1.0, 2.0], [0.5, 4.0], [2.0, 3.0], [1.0, inf], [3.0, 3.5]],
        [0, 0, 1, 1, 0, 2],
        [0, 0, 0, 0, 1, 1],
        [0.0, 1.0],
        [10.0, 5.0],
    )
    # volume 0: H0 lifetimes 10 (essential, ended at 10) and 1; H1 3.5 and 1; H2 none. volume 1: H0 4; H2 0.5.
    assert total_persistence(d).tolist() == [[11.0, 4.5, 0.0], [4.0, 0.0, 0.5]]
    p = [10 / 11, 1 / 11]
    q = [3.5 / 4.5, 1 / 4.5]
    expected = [[-sum(x * math.log(x) for x in p), -sum(x * math.log(x) for x in q), 0.0], [0.0, 0.0, 0.0]]
    assert torch.allclose(persistence_entropy(d), torch.tensor(expected, dtype=torch.float64), rtol=0, atol=1e-15)
    t = torch.tensor([1.5, 3.2])
    assert persistent_betti(d, t).tolist() == [[2, 1, 0], [1, 0, 1]]
    # min_persistence 0.2: volume 0 needs lifetime >= 2 (the [1, 2] H0 pair goes), volume 1 >= 0.8 (H2 goes).
    assert persistent_betti(d, t, min_persistence=0.2).tolist() == [[1, 1, 0], [1, 0, 0]]
    # a 0-d tensor (a sweep over torch.linspace) is the same number
    assert persistent_betti(d, t, min_persistence=torch.tensor(0.2)).tolist() == [[1, 1, 0], [1, 0, 0]]
    assert persistent_betti(d, t, dims=[2, 0]).tolist() == [[0, 2], [1, 1]]
    both = persistence_summaries(d, t, ["entropy", "persistent_betti"], 0.0, dims=[1])
    assert torch.allclose(both, torch.tensor([[expected[0][1], 1.0], [0.0, 0.0]], dtype=torch.float64))
    with pytest.raises(ValueError, match=r"must be dimensions the diagrams hold \(computed_dims=\(0,\)\)"):
        total_persistence(d.select(dim=0), dims=[1])
    with pytest.raises(ValueError, match="NaN at volume 1"):
        persistent_betti(d, torch.tensor([0.0, math.nan]))
    with pytest.raises(ValueError, match=r"min_persistence.*\[0, 1\]"):
        persistent_betti(d, 0.0, min_persistence=2.0)
    with pytest.raises(ValueError, match=r"min_persistence.*\[0, 1\]"):
        persistent_betti(d, 0.0, min_persistence=torch.tensor([0.1, 0.2]))


def _gudhi_lifetimes(volume: np.ndarray) -> dict[int, list[float]]:
    import gudhi

    cc = gudhi.CubicalComplex(vertices=volume)
    cc.compute_persistence(homology_coeff_field=2, min_persistence=0)
    out: dict[int, list[float]] = {0: [], 1: [], 2: []}
    for dim, (birth, death) in cc.persistence():
        out[dim].append((volume.max() if math.isinf(death) else death) - birth)
    return out


def test_summaries_equal_gudhi_lifetimes_and_betti() -> None:
    torch.manual_seed(0)
    volumes = torch.relu(torch.randn(5, 4, 7, 6))  # ReLU: plateaus of exact zeros, as real activations
    diagrams = cubical_persistence(volumes)
    thresholds = sublevel_thresholds(volumes, "mean")
    total, entropy = total_persistence(diagrams), persistence_entropy(diagrams)
    for b in range(len(volumes)):
        lifetimes = _gudhi_lifetimes(volumes[b].double().numpy())
        for k in range(3):
            life = np.asarray(lifetimes[k], dtype=np.float64)
            assert total[b, k].item() == pytest.approx(life.sum(), rel=1e-12, abs=1e-12)
            share = life[life > 0] / life.sum() if life.sum() > 0 else np.zeros(0)
            assert entropy[b, k].item() == pytest.approx(-(share * np.log(share)).sum(), rel=1e-10, abs=1e-12)
    # min_persistence = 0 gives exactly cubical_betti, at the threshold rule and at other thresholds.
    assert torch.equal(persistent_betti(diagrams, thresholds), cubical_betti(volumes, thresholds))
    for t in (0.0, 0.3, 1.0, 10.0):
        assert torch.equal(persistent_betti(diagrams, t), cubical_betti(volumes, t)), t
    # And a positive one never counts more.
    assert bool((persistent_betti(diagrams, thresholds, 0.1) <= cubical_betti(volumes, thresholds)).all())


def test_persistence_summaries_metric_class() -> None:
    torch.manual_seed(1)
    volumes = torch.rand(6, 3, 5, 5)
    labels = torch.tensor([0, 1, 0, 1, 0, 1])
    metric = PersistenceSummaries(num_classes=2, min_persistence=0.05)
    metric.update(volumes[:3], labels[:3])
    metric.update(volumes[3:], labels[3:])
    values = metric.compute()
    expected = persistence_summaries(cubical_persistence(volumes), sublevel_thresholds(volumes, "mean"), ALL, 0.05)
    keys = TopologyConfig(persistence=ALL).persistence_keys
    assert list(values) == keys
    for j, key in enumerate(keys):
        per_class = torch.stack([expected[labels == c, j].mean() for c in (0, 1)])
        assert torch.allclose(values[key], per_class, rtol=1e-12), key
    with pytest.raises(ValueError, match="did you mean 'entropy'"):
        PersistenceSummaries(summaries=["entropi"])
    # One summary and one dimension as plain values, as TopologyConfig takes them (not split into letters).
    one = PersistenceSummaries(summaries="entropy", dims=1)
    one.update(volumes)
    assert list(one.compute()) == ["persistence_entropy_1"]


def test_summaries_take_dims_as_cubical_persistence_does() -> None:
    torch.manual_seed(2)
    d = cubical_persistence(torch.rand(3, 3, 6, 6))
    functions = {
        "total": lambda dims: total_persistence(d, dims),
        "entropy": lambda dims: persistence_entropy(d, dims),
        "betti": lambda dims: persistent_betti(d, 0.5, 0.1, dims),
        "all": lambda dims: persistence_summaries(d, 0.5, ALL, 0.1, dims),
    }
    for name, f in functions.items():
        column = f((1,))
        for one in (1, np.int64(1), torch.tensor(1)):
            assert torch.equal(f(one), column), (name, one)
        assert torch.equal(f(torch.tensor([2, 0])), f((2, 0))), name  # a 1-d tensor, in the order given
        for bad, match in (
            ((), "`dims` is empty"),
            ((3,), r"`dims` must be an integer in \[0, 2\]"),
            ((-1,), r"`dims` must be an integer in \[0, 2\]"),
            ([True], r"`dims` must be an integer in \[0, 2\]"),
            ([1.0], r"`dims` must be an integer in \[0, 2\]"),
            ((1, 1), "repeats a dimension"),
        ):
            with pytest.raises(ValueError, match=match):
                f(bad)
    some = cubical_persistence(torch.rand(2, 3, 6, 6), dims=(0, 2))
    with pytest.raises(ValueError, match=r"\[1\] is not: pass it in `cubical_persistence"):
        persistence_entropy(some, dims=(0, 1))


def test_diagrams_refuse_pairs_outside_their_volumes_or_dims() -> None:
    with pytest.raises(ValueError, match=r"volume 0..0 \(`index` spans 0..1\)"):
        _diagrams([[0.0, 1.0], [0.0, 2.0]], [0, 0], [0, 1], [0.0], [2.0])
    with pytest.raises(ValueError, match=r"computed_dims=\(0,\) \(`dims` holds \[0, 1\]\)"):
        _diagrams([[0.0, 1.0], [0.0, 2.0]], [0, 1], [0, 0], [0.0], [2.0], computed=(0,))
    assert len(_diagrams([], [], [], [0.0], [1.0])) == 0


def test_meta_and_non_finite_volumes_get_a_clear_error() -> None:
    from lightning_topo.functional import NonFiniteError

    with pytest.raises(ValueError, match="is a meta tensor"):
        cubical_persistence(torch.empty(2, 3, 5, 5, device="meta"))
    with pytest.raises(ValueError, match="is a meta tensor"):
        cubical_betti(torch.empty(2, 3, 5, 5, device="meta"), 0.5)
    bad = torch.rand(3, 2, 4, 4)
    bad[1, 0, 0, 0] = float("nan")
    with pytest.raises(NonFiniteError, match=r"index 1 .*persistence diagrams of non-finite data are undefined"):
        cubical_persistence(bad)


# ---------------------------------------------------------------------------------------------------- the callback
def _rows(logger: CSVLogger) -> list[dict[str, str]]:
    with open(Path(logger.log_dir) / "metrics.csv") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def fit_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A 2-epoch fit of the digits CNN with persistence on, logging to CSV, TensorBoard and W&B (offline),
    checkpointing the last epoch; then a resumed third epoch."""
    tmp = tmp_path_factory.mktemp("persist")
    mp = pytest.MonkeyPatch()
    mp.setenv("WANDB_MODE", "offline")
    mp.setenv("WANDB_SILENT", "true")
    import wandb

    seed_everything(0)
    topo = TopologyCallback(samples_per_class=2, persistence=ALL, min_persistence=0.05)
    csv_logger = CSVLogger(tmp, name="csv")
    loggers = [csv_logger, TensorBoardLogger(tmp, name="tb"), WandbLogger(save_dir=str(tmp), offline=True, project="t")]
    ckpt = ModelCheckpoint(dirpath=tmp / "ckpt", save_last=True)
    common = dict(
        accelerator="cpu", enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
        default_root_dir=tmp, limit_train_batches=5,
    )  # fmt: skip
    model = Classifier(digits_cnn())
    trainer = Trainer(max_epochs=2, logger=loggers, callbacks=[topo, ckpt], **common)
    trainer.fit(model, datamodule=DigitsDataModule())
    assert topo.wait_for_charts(timeout=120)
    wandb.finish()
    # The same weights and sample through analyse.
    report = analyse(model, DigitsDataModule(), topo.config, progress=False)
    # Resume from the last checkpoint for a third epoch.
    resumed = TopologyCallback(samples_per_class=2, persistence=ALL, min_persistence=0.05)
    trainer2 = Trainer(max_epochs=3, logger=CSVLogger(tmp, name="csv2"), callbacks=[resumed], **common)
    trainer2.fit(Classifier(digits_cnn()), datamodule=DigitsDataModule(), ckpt_path=str(tmp / "ckpt" / "last.ckpt"))
    mp.undo()
    return {
        "tmp": tmp, "topo": topo, "trainer": trainer, "loggers": loggers, "report": report, "resumed": resumed,
        "model": model,
    }  # fmt: skip


def test_callback_logs_summaries_equal_to_analyse(fit_run: dict) -> None:
    topo, report, trainer = fit_run["topo"], fit_run["report"], fit_run["trainer"]
    rows = _rows(fit_run["loggers"][0])
    keys = topo.config.persistence_keys
    assert len(keys) == 9
    means = report.mean_persistence()
    assert report.layers == topo.layer_names
    for i, name in enumerate(topo.layer_names):
        for key in keys:
            logged = [float(r[f"topology/{name}/{key}"]) for r in rows if r.get(f"topology/{name}/{key}")]
            assert len(logged) == 2, (name, key)
            assert all(math.isfinite(v) for v in logged)
            assert logged[-1] == pytest.approx(float(means[key][i]), rel=1e-6, abs=1e-9), (name, key)
            assert float(trainer.callback_metrics[f"topology/{name}/{key}"]) == pytest.approx(logged[-1], rel=1e-6)
    # persistent_b with min_persistence > 0 never exceeds the Betti numbers; every record keeps the summaries.
    for i in range(len(topo.layer_names)):
        for k in range(3):
            assert float(means[f"persistent_b{k}"][i]) <= float(report.mean_betti()[i, k]) + 1e-12
    assert set(topo.history[-1]["layers"][topo.layer_names[0]]["persistence"]) == set(keys)
    assert set(topo.last_diagrams) == set(topo.layer_names)


def test_callback_without_persistence_logs_none(tmp_path: Path) -> None:
    seed_everything(0)
    topo = TopologyCallback(samples_per_class=1, layers=["net.0", "net.3"])
    logger = CSVLogger(tmp_path, name="csv")
    trainer = Trainer(
        max_epochs=1, logger=logger, callbacks=[topo], accelerator="cpu", enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, enable_checkpointing=False, limit_train_batches=2,
    )  # fmt: skip
    trainer.fit(Classifier(digits_cnn()), datamodule=DigitsDataModule())
    topo.wait_for_charts(timeout=120)
    assert not any("persist" in k for k in trainer.callback_metrics)
    assert "persistence" not in topo.history[-1]["layers"]["net.0"]
    assert topo.last_diagrams == {}


def test_resume_restores_the_summaries_history(fit_run: dict) -> None:
    topo, resumed = fit_run["topo"], fit_run["resumed"]
    assert resumed.state_key == topo.state_key
    assert [h["epoch"] for h in resumed.history] == [0, 1, 2]
    assert resumed.history[:2] == topo.history
    assert "persistence" in resumed.history[2]["layers"][resumed.layer_names[-1]]


# ---------------------------------------------------------------------------------------------------- report
def test_report_round_trips_keep_the_diagrams(fit_run: dict, tmp_path: Path) -> None:
    report = fit_run["report"]
    assert report.diagrams is not None and set(report.diagrams) == set(report.layers)
    n = len(report.labels)
    assert report.per_input_persistence is not None and report.per_input_persistence.shape == (len(report.layers), n, 9)
    for name, d in report.diagrams.items():
        assert d.num_volumes == n and len(d) > 0, name
    for back in (
        TopologyReport.from_json(report.to_json(tmp_path / "r.json")),
        TopologyReport.from_npz(report.to_npz(tmp_path / "r.npz")),
    ):
        assert back.equals(report)
        assert back.persistence_keys == report.persistence_keys
        assert torch.equal(back.persistence, report.persistence)
        for name, d in report.diagrams.items():
            e = back.diagrams[name]
            assert torch.equal(e.pairs, d.pairs) and torch.equal(e.dims, d.dims) and torch.equal(e.index, d.index)
            assert e.computed_dims == d.computed_dims and e.num_volumes == d.num_volumes
            assert torch.equal(e.value_min, d.value_min) and torch.equal(e.value_max, d.value_max)
    frame = pytest.importorskip("pandas") and report.to_pandas()
    assert "persistent_b1" in frame.columns
    # An older report (no persistence keys) still loads.
    data = report.to_dict()
    for key in ("persistence_keys", "persistence", "per_input_persistence", "diagrams"):
        data.pop(key)
    assert TopologyReport.from_dict(data).diagrams is None


# ---------------------------------------------------------------------------------------------------- figures
def test_persistence_figures_png_tensorboard_wandb(fit_run: dict) -> None:
    import matplotlib.image
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    topo, tmp = fit_run["topo"], fit_run["tmp"]
    # PNG under the CSV logger's folder, one per layer, with ink on it.
    folder = Path(fit_run["loggers"][0].log_dir) / "topology" / "persistence_diagram"
    assert sorted(p.stem for p in folder.glob("*.png")) == sorted(topo.layer_names)
    for png in folder.glob("*.png"):
        pixels = matplotlib.image.imread(png)
        assert float((pixels[..., :3] < 0.95).any(axis=-1).mean()) > 0.02, png
    # TensorBoard: an image per layer, read back from the event files.
    tags = set()
    for path in Path(fit_run["loggers"][1].log_dir).glob("events.out.tfevents.*"):
        for event in EventFileLoader(str(path)).Load():
            tags |= {v.tag for v in event.summary.value if v.HasField("tensor") and "persistence_diagram" in v.tag}
    assert tags == {f"topology/persistence_diagram/{n}" for n in topo.layer_names}
    # The custom-scalars layout has a chart per layer and summary; together they hold every persistence scalar.
    from tensorboard.plugins.custom_scalar import layout_pb2

    scalars, raw_layout = set(), b""
    for path in Path(fit_run["loggers"][1].log_dir).glob("events.out.tfevents.*"):
        for event in EventFileLoader(str(path)).Load():
            for v in event.summary.value:
                if v.metadata.plugin_data.plugin_name == "custom_scalars":
                    raw_layout = v.tensor.string_val[0]
                elif v.metadata.plugin_data.plugin_name == "scalars":
                    scalars.add(v.tag)
    layout = layout_pb2.Layout()
    layout.ParseFromString(raw_layout)
    (category,) = [c for c in layout.category if c.title == "topology: persistence per layer"]
    assert len(category.chart) == len(topo.layer_names) * 3  # total_persistence, persistence_entropy, persistent_b
    persistence_tags = {t for t in scalars if any(f"/{key}" in t for key in topo.config.persistence_keys)}
    charted = {t for t in scalars for c in category.chart for rx in c.multiline.tag if re.match(rx, t)}
    assert persistence_tags and charted == persistence_tags
    # W&B: a scatter chart per layer; its table holds the latest diagram's pairs.
    (run_dir,) = wandb_records.run_dirs(str(tmp))
    rows = [r for r in wandb_records.history(run_dir) if any("persistence_diagram" in k for k in r)]
    assert len(rows) == 2
    name = topo.layer_names[0]
    table = wandb_records.table(run_dir, rows[-1], f"topology/persistence_diagram/{name}_table")
    assert table["columns"] == ["dim", "birth", "death", "lifetime", "essential"]
    d = topo.last_diagrams[name]
    assert len(table["data"]) == min(len(d), 2000)
    essential = [r for r in table["data"] if r[4]]
    assert len(essential) == d.num_volumes  # one essential H0 class per input, on the inf line
    finite = sorted((r[1], r[2]) for r in table["data"] if not r[4])
    expected = sorted(tuple(p) for p in d.pairs[torch.isfinite(d.pairs[:, 1])].tolist())
    if len(d) <= 2000:
        assert finite == pytest.approx(expected)
    title = wandb_records.chart_settings(run_dir, f"topology/persistence_diagram/{name}")["stringSettings"]["title"]
    assert name in title and "essential" in title


def test_diagram_figure_density_above_the_point_count() -> None:
    from lightning_topo.loggers.figures import DENSITY_ABOVE, persistence_diagram_figure

    torch.manual_seed(0)
    births = torch.rand(10_000, dtype=torch.float64)
    pairs = torch.stack([births, births + torch.rand(10_000, dtype=torch.float64)], dim=1)
    pairs[0, 1] = math.inf
    d = _diagrams(pairs.tolist(), [0] * 10_000, [0] * 10_000, [0.0], [2.0], computed=(0,))
    assert len(d) > DENSITY_ABOVE
    fig = persistence_diagram_figure(d, "big")
    ax = fig.axes[0]
    assert ax.collections and type(ax.collections[0]).__name__ == "PolyCollection"  # hexbin density
    assert "inf" in [t.get_text() for t in ax.get_yticklabels()]
    assert ax.get_title() == "H0: 10000 pairs (1 essential)"


def test_diagram_figure_of_a_range_beyond_float64() -> None:
    """Values near +-1.5e308 (a diverged layer): the range overflows float64 and matplotlib raised LinAlgError, so
    the figure was lost with a warning. It is drawn in units of a power of two, named on both axes, and every pair
    sits where its value over that unit puts it."""
    from lightning_topo.functional import cubical_persistence
    from lightning_topo.loggers.figures import persistence_diagram_figure, png_bytes

    volume = torch.tensor([[[-1.5e308, 1.5e308, -1.0e308, 1.2e308, 0.0]]], dtype=torch.float64)
    d = cubical_persistence(volume, dims=(0,))
    fig = persistence_diagram_figure(d, "diverged")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "birth (x 2^1026)" and ax.get_ylabel() == "death (x 2^1026)"
    drawn = sorted(tuple(p) for p in ax.collections[0].get_offsets().tolist())
    finite = d.pairs[torch.isfinite(d.pairs[:, 1])]
    assert drawn == sorted(tuple(p) for p in torch.ldexp(finite, torch.tensor(-1026.0)).tolist())
    assert len(png_bytes(fig)) > 0


def test_one_class_with_persistence_logs_and_reports(tmp_path: Path) -> None:
    """Data with one label (or none): the summaries' per-class means are one value each (0-d, as torchmetrics'
    compute leaves them); the callback logged, recorded and the report stacked them as (C,) lists (it crashed)."""
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(0)
    data = TensorDataset(torch.randn(40, 1, 8, 8), torch.zeros(40, dtype=torch.long))
    net = digits_cnn((4, 8))
    report = analyse(net, data, persistence=["entropy"], layers=["0", "3"], progress=False)
    assert report.persistence is not None and report.persistence.shape == (2, 1, 3)
    assert bool(torch.isfinite(report.persistence).all())
    topo = TopologyCallback(persistence=["entropy"], layers=["net.0", "net.3"], log_per_class=True)
    trainer = quiet_trainer(tmp_path, [topo])
    with pytest.warns(UserWarning, match="one class"):
        trainer.fit(Classifier(net), DataLoader(data, batch_size=10), DataLoader(data, batch_size=10))
    recorded = topo.history[-1]["layers"]["net.0"]["persistence"]
    assert list(recorded) == ["persistence_entropy_0", "persistence_entropy_1", "persistence_entropy_2"]
    assert all(len(v) == 1 and math.isfinite(v[0]) for v in recorded.values())
    metrics = trainer.callback_metrics
    for k in range(3):
        assert float(metrics[f"topology/net.0/class_0/persistence_entropy_{k}"]) == pytest.approx(
            recorded[f"persistence_entropy_{k}"][0], rel=1e-6
        )


def test_one_class_and_one_betti_number_keep_their_shapes(tmp_path: Path) -> None:
    """The point-cloud view with maxdim=0 and one class: compute() leaves the layer's one Betti number 0-d. The
    report read its layers as Betti dimensions ((L,) for (L, 1, 1): betti_dims 8), the callback crashed."""
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(0)
    data = TensorDataset(torch.randn(60, 1, 8, 8), torch.zeros(60, dtype=torch.long))
    net = digits_cnn((4, 8))
    report = analyse(net, data, complex="rips", maxdim=0, layers=["0", "3", "6"], progress=False)
    assert tuple(report.betti.shape) == (3, 1, 1) and report.betti_dims == 1
    topo = TopologyCallback(complex="rips", maxdim=0, layers=["net.0", "net.3"], log_per_class=True)
    trainer = quiet_trainer(tmp_path, [topo])
    with pytest.warns(UserWarning, match="60 inputs instead of 300"):
        trainer.fit(Classifier(net), DataLoader(data, batch_size=10), DataLoader(data, batch_size=10))
    betti = topo.history[-1]["layers"]["net.0"]["betti"]
    assert len(betti) == 1 and len(betti[0]) == 1 and betti[0][0] >= 1
    assert float(trainer.callback_metrics["topology/net.0/class_0/b0"]) == betti[0][0]
    assert float(trainer.callback_metrics["topology/net.0/b0"]) == betti[0][0]
