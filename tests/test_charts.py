"""Charts: W&B (offline, read back from the run files), TensorBoard figures, PNG files, callback.plot()."""

from __future__ import annotations

import io
import math
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import wandb_records
from lightning.pytorch import Trainer, seed_everything
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger, WandbLogger
from lightning.pytorch.utilities.exceptions import MisconfigurationException

from lightning_topo import TopologyCallback
from lightning_topo.datasets import DigitsDataModule
from lightning_topo.models import Classifier, digits_cnn

pytest.importorskip("matplotlib")


@pytest.fixture(autouse=True)
def _offline_wandb(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")


def _fit(
    tmp_path: Path, loggers: list, epochs: int, callbacks: list | None = None, ckpt: str | None = None, seed: int = 0
) -> tuple[Trainer, TopologyCallback]:
    seed_everything(seed)
    topo = TopologyCallback(samples_per_class=5)
    trainer = Trainer(
        max_epochs=epochs,
        logger=loggers,
        callbacks=[topo, *(callbacks or [])],
        accelerator="cpu",
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=tmp_path,
        enable_checkpointing=bool(callbacks),
        log_every_n_steps=5,
    )
    trainer.fit(Classifier(digits_cnn()), datamodule=DigitsDataModule(), ckpt_path=ckpt)
    return trainer, topo


def _ink(png: np.ndarray) -> float:
    rgb = png[..., :3].astype(np.float64)
    if rgb.max() > 1.0:
        rgb = rgb / 255.0
    return float((rgb < 0.95).any(axis=-1).mean())


def _scalar_rows(rows: list[dict]) -> list[dict]:
    return [r for r in rows if "topology/decay_rate" in r]


def test_wandb_charts_read_back_from_the_offline_run(tmp_path: Path) -> None:
    import wandb

    _trainer, topo = _fit(tmp_path, [WandbLogger(save_dir=str(tmp_path), offline=True, project="t")], epochs=3)
    wandb.finish()
    (run_dir,) = wandb_records.run_dirs(str(tmp_path))
    rows = wandb_records.history(run_dir)
    # Steps never go back: every record (charts, topology scalars, Lightning's own) in order.
    steps = [r["trainer/global_step"] for r in rows]
    assert steps == sorted(steps) and [r["_step"] for r in rows] == sorted(r["_step"] for r in rows)
    chart_rows = [r for r in rows if "topology/depth_profile/path" in r]
    scalar_rows = _scalar_rows(rows)
    assert len(chart_rows) == len(scalar_rows) == 3  # one per evaluation
    # Charts sit at the step of their epoch's scalars, and scalar rows carry the epoch.
    assert [r["trainer/global_step"] for r in chart_rows] == [r["trainer/global_step"] for r in scalar_rows]
    assert [r["epoch"] for r in scalar_rows] == [h["epoch"] for h in topo.history] == [0, 1, 2]
    assert [r["topology/decay_rate"] for r in scalar_rows] == pytest.approx([h["decay_rate"] for h in topo.history])
    assert all(f"topology/{topo.layer_names[0]}/b0" in r for r in scalar_rows)
    # The depth profile is appended: each log uploads only that evaluation's rows (storage grows linearly).
    modules = dict(Classifier(digits_cnn()).named_modules())
    for row, record in zip(chart_rows, topo.history, strict=True):
        assert row["topology/depth_profile/log_mode"] == "INCREMENTAL"
        increment = wandb_records.table(run_dir, row, "topology/depth_profile")
        assert increment["columns"] == ["epoch", "step", "depth", "layer", "module", "b0", "b1", "b2", "omega"]
        assert [r[3] for r in increment["data"]] == topo.layer_names  # layer names, in forward order
        assert [r[4] for r in increment["data"]] == [type(modules[n]).__name__ for n in topo.layer_names]
        assert {r[0] for r in increment["data"]} == {record["epoch"]}
        assert {r[1] for r in increment["data"]} == {row["trainer/global_step"]}
        for r in increment["data"]:
            layer = record["layers"][r[3]]
            assert r[8] == pytest.approx(layer["omega"])
            assert r[5] == pytest.approx(np.mean([b[0] for b in layer["betti"]]))
    # Omega vs depth: one line per evaluated epoch, each with that epoch's numbers.
    lines = wandb_records.table(run_dir, chart_rows[-1], "topology/omega_vs_depth_table")
    for record in topo.history:
        values = [r[2] for r in lines["data"] if r[1] == f"epoch {record['epoch']}"]
        assert values == pytest.approx([record["layers"][n]["omega"] for n in topo.layer_names])
    latest = wandb_records.table(run_dir, chart_rows[-1], "topology/betti_vs_depth_table")
    assert sorted({r[1] for r in latest["data"]}) == ["b0", "b1", "b2", "omega"]
    # Both charts name the layers on their x axis, in depth order.
    for key in ("topology/omega_vs_depth", "topology/betti_vs_depth"):
        xname = wandb_records.chart_settings(run_dir, key)["stringSettings"]["xname"]
        assert xname == "layer depth: " + " · ".join(f"{d} {n}" for d, n in enumerate(topo.layer_names, start=1))


def test_wandb_one_callback_over_two_runs_and_two_evaluations_per_epoch(tmp_path: Path) -> None:
    """A callback reused over two runs (a seed loop), each with a new WandbLogger: the second run crashed after its
    first epoch (W&B: "An incremental Table can only be logged to one Run"). With val_check_interval=0.5 the
    Omega-vs-depth lines were keyed by epoch, so two evaluations of one epoch shared a line."""
    import wandb

    topo = TopologyCallback(samples_per_class=5)
    for run in range(2):
        seed_everything(run)
        logger = WandbLogger(save_dir=str(tmp_path / f"run{run}"), offline=True, project="t")
        trainer = Trainer(
            max_epochs=1, logger=logger, callbacks=[topo], accelerator="cpu", enable_progress_bar=False,
            enable_model_summary=False, num_sanity_val_steps=0, default_root_dir=tmp_path, enable_checkpointing=False,
            val_check_interval=0.5, limit_train_batches=4,
        )  # fmt: skip
        trainer.fit(Classifier(digits_cnn()), datamodule=DigitsDataModule())
        wandb.finish()
    for run in range(2):
        (run_dir,) = wandb_records.run_dirs(str(tmp_path / f"run{run}"))
        chart_rows = [r for r in wandb_records.history(run_dir) if "topology/depth_profile/path" in r]
        assert len(chart_rows) == 2  # two evaluations per run
        for row in chart_rows:  # each run's own rows only
            increment = wandb_records.table(run_dir, row, "topology/depth_profile")
            assert {r[1] for r in increment["data"]} == {row["trainer/global_step"]}
        lines = wandb_records.table(run_dir, chart_rows[1], "topology/omega_vs_depth_table")
        keys = sorted({r[1] for r in lines["data"]})
        assert len(keys) == 2 * (run + 1)  # a line per evaluation (the reused callback's history holds both runs')
    assert keys == ["evaluation 0", "evaluation 1", "evaluation 2", "evaluation 3"]  # steps went back: positions
    (run_dir,) = wandb_records.run_dirs(str(tmp_path / "run0"))
    chart_rows = [r for r in wandb_records.history(run_dir) if "topology/depth_profile/path" in r]
    lines = wandb_records.table(run_dir, chart_rows[1], "topology/omega_vs_depth_table")
    assert sorted({r[1] for r in lines["data"]}) == [f"global step {r['global_step']}" for r in topo.history[:2]]


def test_wandb_steps_stay_monotonic_after_resume(tmp_path: Path) -> None:
    import wandb

    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    logger = WandbLogger(save_dir=str(tmp_path), offline=True, project="t")
    _fit(tmp_path, [logger], epochs=2, callbacks=[ckpt])
    run_id = logger.experiment.id
    wandb.finish()
    logger2 = WandbLogger(save_dir=str(tmp_path), offline=True, project="t", id=run_id, resume="allow")
    _, topo = _fit(tmp_path, [logger2], epochs=4, ckpt=str(tmp_path / "ckpt" / "last.ckpt"))
    wandb.finish()
    chart_steps, all_steps = [], []
    for run_dir in wandb_records.run_dirs(str(tmp_path)):
        rows = wandb_records.history(run_dir)
        all_steps += [r["trainer/global_step"] for r in rows]
        chart_steps += [r["trainer/global_step"] for r in rows if "topology/depth_profile/path" in r]
    assert len(chart_steps) == 4 and len(set(chart_steps)) == 4
    assert all_steps == sorted(all_steps)
    assert [h["epoch"] for h in topo.history] == [0, 1, 2, 3]


def _tensorboard_events(log_dir: str) -> tuple[dict[str, list[int]], dict[str, list[tuple[int, bytes]]], bytes]:
    """Scalar steps and images per tag, and the custom-scalars layout, from every event file of a run."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    scalars: dict[str, list[int]] = {}
    images: dict[str, list[tuple[int, bytes]]] = {}
    layout = b""
    for path in sorted(Path(log_dir).glob("events.out.tfevents.*")):
        # The loader turns every summary into a tensor summary tagged with its plugin (as TensorBoard reads it).
        for event in EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                plugin = value.metadata.plugin_data.plugin_name
                if plugin == "custom_scalars":
                    layout = value.tensor.string_val[0]
                elif plugin == "scalars":
                    scalars.setdefault(value.tag, []).append(event.step)
                elif plugin == "images":  # string_val: width, height, encoded image
                    images.setdefault(value.tag, []).append((event.step, value.tensor.string_val[2]))
    return scalars, images, layout


def test_tensorboard_layout_figures_at_the_scalar_steps(tmp_path: Path) -> None:
    import re

    import matplotlib.image
    from tensorboard.plugins.custom_scalar import layout_pb2

    trainer, topo = _fit(tmp_path, [TensorBoardLogger(tmp_path, name="tb")], epochs=3)
    assert topo.wait_for_charts(timeout=120)
    scalars, images, raw_layout = _tensorboard_events(trainer.logger.log_dir)
    # The custom-scalars layout: Omega of every layer on one chart, b0/b1/b2 per layer, decay rate and theta.
    assert raw_layout, "no custom-scalars layout written"
    layout = layout_pb2.Layout()
    layout.ParseFromString(raw_layout)
    charts = {c.title: list(c.multiline.tag) for category in layout.category for c in category.chart}
    omega_tags = [t for t in scalars if t.endswith("/omega")]
    matched = [t for t in omega_tags if any(re.match(rx, t) for rx in charts["Omega of every layer"])]
    assert sorted(matched) == sorted(f"topology/{n}/omega" for n in topo.layer_names)
    assert any(re.match(rx, "topology/decay_rate") for rx in charts["decay_rate (higher = more simplification)"])
    assert any(re.match(rx, "topology/theta") for rx in charts["theta (the paper's ranking score)"])
    modules = dict(Classifier(digits_cnn()).named_modules())
    for depth, name in enumerate(topo.layer_names, start=1):
        title = f"{depth}. {name} ({type(modules[name]).__name__})"
        betti = [t for t in scalars if any(re.match(rx, t) for rx in charts[title])]
        assert sorted(betti) == [f"topology/{name}/b{k}" for k in range(3)]
    # Figures at the step of their epoch's scalars; the last evaluation's figures are always there.
    scalar_steps = scalars["topology/decay_rate"]
    assert len(scalar_steps) == 3
    assert set(images) == {"topology/betti_vs_depth", "topology/omega_history", "topology/decay"}
    for tag, logged in images.items():
        steps = [step for step, _ in logged]
        assert set(steps) <= set(scalar_steps), (tag, steps, scalar_steps)
        assert steps[-1] == scalar_steps[-1]
    assert topo._charts._figure_writers == {}  # the event file of the figures is closed once they are written
    # Content: a fixed-size picture with ink on it.
    sizes = set()
    for tag, logged in images.items():
        for _step, png in logged:
            pixels = matplotlib.image.imread(io.BytesIO(png), format="png")
            sizes.add(pixels.shape[:2])
            assert _ink(pixels) > 0.02, tag
    assert sizes == {(460, 700)}


def test_two_callbacks_keep_both_layouts_in_tensorboard(tmp_path: Path) -> None:
    """TensorBoard's Custom Scalars tab shows a run's latest layout only: a second callback's layout (another
    prefix) hid the first's charts. Read back as the tab reads it (its data provider, one point)."""
    from tensorboard import context
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
    from tensorboard.data import provider
    from tensorboard.plugins.custom_scalar import layout_pb2, metadata

    seed_everything(0)
    logger = TensorBoardLogger(tmp_path, name="tb")
    first = TopologyCallback(samples_per_class=2, charts=["tensorboard"])
    second = TopologyCallback(samples_per_class=2, charts=["tensorboard"], prefix="topology_b", threshold="median")
    trainer = Trainer(
        max_epochs=1,
        limit_train_batches=2,
        logger=logger,
        callbacks=[first, second],
        accelerator="cpu",
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(Classifier(digits_cnn()), datamodule=DigitsDataModule())
    assert first.wait_for_charts(timeout=120) and second.wait_for_charts(timeout=120)
    mux = plugin_event_multiplexer.EventMultiplexer()
    mux.AddRunsFromDirectory(str(tmp_path / "tb"))
    mux.Reload()
    read = data_provider.MultiplexerDataProvider(mux, str(tmp_path / "tb")).read_tensors(
        context.RequestContext(),
        experiment_id="",
        plugin_name=metadata.PLUGIN_NAME,
        run_tag_filter=provider.RunTagFilter(tags=[metadata.CONFIG_SUMMARY_TAG]),
        downsample=1,
    )
    ((points,),) = [list(tags.values()) for tags in read.values()]
    layout = layout_pb2.Layout()
    layout.ParseFromString(points[0].numpy.item())
    titles = [category.title for category in layout.category]
    assert titles == [
        "topology",
        "topology: Betti numbers per layer",
        "topology_b",
        "topology_b: Betti numbers per layer",
    ]


def test_png_files_and_figure_content(tmp_path: Path) -> None:
    import matplotlib.image

    trainer, topo = _fit(tmp_path, [CSVLogger(tmp_path, name="csv")], epochs=3)
    assert topo.wait_for_charts(timeout=120)
    folder = Path(trainer.logger.log_dir) / "topology"
    assert sorted(os.listdir(folder)) == ["betti_vs_depth.png", "decay.png", "omega_history.png"]
    assert sorted(topo.chart_files) == sorted(str(p) for p in folder.iterdir())
    for png in folder.iterdir():
        assert _ink(matplotlib.image.imread(png)) > 0.02, png
    figures = topo.plot()
    assert list(figures) == ["betti_vs_depth", "omega_history", "decay"]
    modules = dict(Classifier(digits_cnn()).named_modules())
    kinds = [type(modules[n]).__name__ for n in topo.layer_names]
    last = topo.history[-1]
    # Betti numbers vs depth: b0, b1, b2 and Omega of the latest epoch; ticks name the layer and its type.
    ax = figures["betti_vs_depth"].axes[0]
    assert [line.get_label() for line in ax.get_lines()] == ["b0", "b1", "b2", "Omega"]
    assert ax.get_lines()[3].get_ydata() == pytest.approx([last["layers"][n]["omega"] for n in topo.layer_names])
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert all(n in t and k in t for t, n, k in zip(ticks, topo.layer_names, kinds, strict=True))
    # Omega history: one line per evaluated epoch with that epoch's numbers.
    lines = figures["omega_history"].axes[0].get_lines()
    assert len(lines) == 3
    for line, record in zip(lines, topo.history, strict=True):
        assert line.get_ydata() == pytest.approx([record["layers"][n]["omega"] for n in topo.layer_names])
    # Decay: two axes, the direction in each label, whole epochs on the x axis.
    top, bottom = figures["decay"].axes[:2]
    assert "higher" in top.get_ylabel() and "decay_rate" in top.get_ylabel()
    assert "paper's score" in bottom.get_ylabel() and "theta" in bottom.get_ylabel()
    assert top.get_lines()[0].get_ydata() == pytest.approx([h["decay_rate"] for h in topo.history])
    assert bottom.get_lines()[0].get_ydata() == pytest.approx([h["theta"] for h in topo.history])
    figures["decay"].canvas.draw()
    ticks = [t for t in bottom.get_xticks() if bottom.get_xlim()[0] <= t <= bottom.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks)


def test_figures_keep_their_size_as_epochs_and_layers_grow() -> None:
    from lightning_topo.loggers.figures import figures_of

    def history(epochs: int, layers: int) -> list[dict]:
        names = [f"block{i}.conv" for i in range(layers)]
        return [
            {
                "epoch": e,
                "theta": -0.1 * e,
                "decay_rate": 0.1 * e,
                "layers": {
                    n: {"betti": [[1.0, float(i), 0.0]], "omega": 1.0 + i, "module": "Conv2d"}
                    for i, n in enumerate(names)
                },
            }
            for e in range(epochs)
        ]

    small, large = figures_of(history(2, 3)), figures_of(history(60, 30))
    for name in small:
        assert tuple(small[name].get_size_inches()) == tuple(large[name].get_size_inches()), name
    assert len(large["omega_history"].axes[0].get_lines()) == 60


def test_thin_epochs_keeps_first_and_latest() -> None:
    from lightning_topo.loggers.charts import thin_epochs

    history = [{"epoch": e} for e in range(57)]
    kept = [r["epoch"] for r in thin_epochs(history, 10)]
    assert len(kept) == 10 and kept[0] == 0 and kept[-1] == 56 and kept == sorted(kept)
    assert [r["epoch"] for r in thin_epochs(history[:4], 10)] == [0, 1, 2, 3]


def test_training_does_not_wait_for_figures(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """With the first drawing held back, the whole fit ends before any figure exists; they come afterwards. The
    evaluations whose figures were not drawn are said at the end of the fit (TensorBoard had one image, at the last
    step, and nothing told a user why); with no TensorBoard logger nothing is lost (the PNG files are rewritten
    anyway) and nothing is said."""
    import logging

    from lightning.pytorch.callbacks import Callback

    seen: dict[str, bool] = {}

    class Look(Callback):
        def on_train_end(self, trainer: Trainer, pl_module: object) -> None:
            seen["figures during training"] = (Path(trainer.logger.log_dir) / "topology").exists()

    for tensorboard in (True, False):
        seed_everything(0)
        topo = TopologyCallback(samples_per_class=5)
        topo._charts.renderer.first_delay_s = 3600.0  # nothing is drawn until fitting ends (teardown flushes)
        loggers = [CSVLogger(tmp_path, name=f"csv{tensorboard}")]
        if tensorboard:
            loggers.append(TensorBoardLogger(tmp_path, name="tb"))
        trainer = Trainer(
            max_epochs=2,
            logger=loggers,
            callbacks=[topo, Look()],
            enable_progress_bar=False,
            enable_model_summary=False,
            enable_checkpointing=False,
            num_sanity_val_steps=0,
        )
        caplog.clear()
        with caplog.at_level(logging.INFO):
            trainer.fit(Classifier(digits_cnn()), datamodule=DigitsDataModule())
        assert topo.wait_for_charts(timeout=120)
        assert seen == {"figures during training": False}
        assert topo._charts.renderer.skipped == 1 and topo._charts.renderer.done == 1  # only the latest was drawn
        said = [r.getMessage() for r in caplog.records if "were not drawn" in r.getMessage()]
        if tensorboard:
            assert len(said) == 1 and "the figures of 1 evaluation were not drawn" in said[0], said
        else:
            assert said == []
        pngs = [p for p in topo.chart_files if str(p).endswith(".png")]
        assert len(pngs) == 3 and all(os.path.exists(p) for p in pngs)


def test_a_failing_figure_warns_and_training_goes_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import lightning_topo.loggers.charts as charts

    def broken(history: object) -> dict:
        raise ValueError("no figure today")

    monkeypatch.setattr(charts, "figures_of", broken)  # fault injection: a matplotlib failure
    with pytest.warns(UserWarning, match="drawing the figures failed"):
        trainer, topo = _fit(tmp_path, [CSVLogger(tmp_path, name="csv")], epochs=2)
        topo.wait_for_charts(timeout=120)
    assert trainer.current_epoch == 2 and len(topo.history) == 2
    assert isinstance(topo._charts.renderer.errors[0], ValueError)


def test_csv_tensorboard_and_wandb_together(tmp_path: Path) -> None:
    import wandb

    loggers = [
        CSVLogger(tmp_path, name="csv"),
        TensorBoardLogger(tmp_path, name="tb"),
        WandbLogger(save_dir=str(tmp_path), offline=True, project="t"),
    ]
    _trainer, topo = _fit(tmp_path, loggers, epochs=2)
    topo.wait_for_charts(timeout=120)
    wandb.finish()
    assert (Path(loggers[0].log_dir) / "topology" / "decay.png").exists()
    _scalars, images, layout = _tensorboard_events(loggers[1].log_dir)
    assert layout and "topology/decay" in images
    rows = wandb_records.history(wandb_records.run_dirs(str(tmp_path))[0])
    assert sum("topology/depth_profile/path" in r for r in rows) == 2
    with open(Path(loggers[0].log_dir) / "metrics.csv") as f:
        assert "topology/decay_rate" in f.readline()
    assert not math.isnan(topo.history[-1]["decay_rate"])


def test_chart_arguments() -> None:
    with pytest.raises(MisconfigurationException, match="`charts` must be"):
        TopologyCallback(charts=["plotly"])
    assert TopologyCallback(charts=False).chart_kinds == ()
    assert TopologyCallback(charts="png").chart_kinds == ("png",)


def test_charts_asked_for_without_a_logger_say_so(tmp_path: Path) -> None:
    """charts=["png"] with logger=False drew nothing and said nothing (charts="auto" stays quiet: nothing asked)."""
    for charts, warns in ((["png"], True), ("auto", False)):
        topo = TopologyCallback(samples_per_class=2, charts=charts)
        trainer = Trainer(
            max_epochs=1, logger=False, callbacks=[topo], accelerator="cpu", enable_progress_bar=False,
            enable_model_summary=False, num_sanity_val_steps=0, default_root_dir=tmp_path, enable_checkpointing=False,
            limit_train_batches=2,
        )  # fmt: skip
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            trainer.fit(Classifier(digits_cnn()), datamodule=DigitsDataModule(classes=[0, 1]))
        said = [str(w.message) for w in record if "no chart is drawn" in str(w.message)]
        assert bool(said) == warns, (charts, said)
        assert topo.chart_files == [] and len(topo.history) == 1


def test_asking_for_wandb_without_it_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    import lightning_topo.callbacks.topology as callback_module

    monkeypatch.setattr(callback_module, "_WANDB_AVAILABLE", False)  # as on an install without the extra
    with pytest.raises(MisconfigurationException, match=r'pip install "lightning-topo\[wandb\]"'):
        TopologyCallback(charts=["wandb"])
    assert TopologyCallback().chart_kinds  # "auto" still works: W&B charts only go to a WandbLogger


def test_callback_pickles_for_ddp_spawn(tmp_path: Path) -> None:
    import pickle

    _trainer, topo = _fit(tmp_path, [TensorBoardLogger(tmp_path, name="tb")], epochs=1)
    assert topo.wait_for_charts(timeout=120)
    copy = pickle.loads(pickle.dumps(topo))
    assert copy.history == topo.history and copy.chart_files == topo.chart_files
    assert copy._charts.renderer.idle and copy._charts.renderer.on_idle.__self__ is copy._charts


def test_model_checkpoint_monitors_a_topology_scalar(tmp_path: Path) -> None:
    """The scalars reach ``trainer.callback_metrics`` (not through ``self.log``): ModelCheckpoint can monitor them.

    (A ``/`` in a key inserted into a file name makes a folder: ``auto_insert_metric_name=False`` avoids it.)
    """
    ckpt = ModelCheckpoint(
        dirpath=tmp_path / "ckpt",
        monitor="topology/decay_rate",
        mode="max",
        filename="epoch={epoch}-decay={topology/decay_rate:.4f}",
        auto_insert_metric_name=False,
    )
    trainer, topo = _fit(tmp_path, [CSVLogger(tmp_path, name="csv")], epochs=3, callbacks=[ckpt])
    best = max(topo.history, key=lambda h: h["decay_rate"])
    assert float(ckpt.best_model_score) == pytest.approx(best["decay_rate"])
    assert f"epoch={best['epoch']}" in Path(ckpt.best_model_path).name
    assert float(trainer.logged_metrics["topology/decay_rate"]) == pytest.approx(topo.history[-1]["decay_rate"])
