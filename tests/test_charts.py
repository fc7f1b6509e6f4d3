"""Charts: W&B (offline, read back from the run files), TensorBoard figures, PNG files, callback.plot()."""

from __future__ import annotations

import io
import math
import os
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


def test_wandb_charts_read_back_from_the_offline_run(tmp_path: Path) -> None:
    import wandb

    _trainer, topo = _fit(tmp_path, [WandbLogger(save_dir=str(tmp_path), offline=True, project="t")], epochs=3)
    wandb.finish()
    (run_dir,) = wandb_records.run_dirs(str(tmp_path))
    rows = wandb_records.history(run_dir)
    chart_rows = [r for r in rows if "topology/layers/path" in r]
    assert len(chart_rows) == 3  # one per evaluation
    steps = [r["_step"] for r in rows]
    assert steps == sorted(steps)
    assert [r["trainer/global_step"] for r in chart_rows] == [h["global_step"] for h in topo.history]
    # The layer table of the last evaluation holds the history's numbers.
    last = wandb_records.table(run_dir, chart_rows[-1], "topology/layers")
    assert last["columns"] == ["depth", "layer", "b0", "b1", "b2", "omega"]
    assert [row[1] for row in last["data"]] == topo.layer_names
    for row in last["data"]:
        layer = topo.history[-1]["layers"][row[1]]
        assert row[5] == pytest.approx(layer["omega"])
        assert row[2] == pytest.approx(np.mean([b[0] for b in layer["betti"]]))
    # The line chart's table: one line per series (b0, b1, b2, omega) over the layers.
    line = wandb_records.table(run_dir, chart_rows[-1], "topology/betti_vs_depth_table")
    assert sorted({r[1] for r in line["data"]}) == ["b0", "b1", "b2", "omega"]
    assert len(line["data"]) == 4 * len(topo.layer_names)
    # Epoch x layer view: every evaluation so far.
    grid = wandb_records.table(run_dir, chart_rows[-1], "topology/omega_epoch_layer")
    assert len(grid["data"]) == 3 * len(topo.layer_names)
    decay = wandb_records.table(run_dir, chart_rows[-1], "topology/decay_over_epochs_table")
    assert sorted({r[1] for r in decay["data"]}) == ["decay_rate", "theta"]
    # The scalars went through pl_module.log into the same run.
    logged = [r["topology/decay_rate"] for r in rows if "topology/decay_rate" in r]
    assert logged == pytest.approx([h["decay_rate"] for h in topo.history])
    assert any(f"topology/{topo.layer_names[0]}/b0" in r for r in rows)


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
    steps = []
    for run_dir in wandb_records.run_dirs(str(tmp_path)):
        steps += [r["trainer/global_step"] for r in wandb_records.history(run_dir) if "topology/layers/path" in r]
    assert len(steps) == 4
    assert steps == sorted(steps) and len(set(steps)) == 4
    assert [h["epoch"] for h in topo.history] == [0, 1, 2, 3]


def test_tensorboard_figures_have_content(tmp_path: Path) -> None:
    import matplotlib.image
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    trainer, topo = _fit(tmp_path, [TensorBoardLogger(tmp_path, name="tb")], epochs=2)
    events = EventAccumulator(trainer.logger.log_dir, size_guidance={"images": 0})
    events.Reload()
    assert {"topology/betti_vs_depth", "topology/decay", "topology/omega_heatmap"} <= set(events.Tags()["images"])
    images = events.Images("topology/betti_vs_depth")
    assert [i.step for i in images] == [h["global_step"] for h in topo.history]
    pixels = matplotlib.image.imread(io.BytesIO(images[-1].encoded_image_string), format="png")
    assert _ink(pixels) > 0.02


def test_png_files_and_plot_without_wandb_or_tensorboard(tmp_path: Path) -> None:
    import matplotlib.image

    trainer, topo = _fit(tmp_path, [CSVLogger(tmp_path, name="csv")], epochs=2)
    folder = Path(trainer.logger.log_dir) / "topology"
    assert sorted(os.listdir(folder)) == [
        "betti_vs_depth_epoch000.png",
        "betti_vs_depth_epoch001.png",
        "decay.png",
        "omega_heatmap.png",
    ]
    for png in folder.iterdir():
        assert _ink(matplotlib.image.imread(png)) > 0.02, png
    figures = topo.plot()
    assert set(figures) == {"betti_vs_depth", "decay", "omega_heatmap"}
    lines = figures["betti_vs_depth"].axes[0].get_lines()
    assert [line.get_label() for line in lines] == ["b0", "b1", "b2", "Omega"]
    assert all(len(line.get_xdata()) == len(topo.layer_names) for line in lines)
    assert len(figures["decay"].axes[0].get_lines()) == 2
    image = figures["omega_heatmap"].axes[0].get_images()[0].get_array()
    assert image.shape == (2, len(topo.layer_names)) and not np.isnan(image).all()


def test_csv_tensorboard_and_wandb_together(tmp_path: Path) -> None:
    import wandb

    loggers = [
        CSVLogger(tmp_path, name="csv"),
        TensorBoardLogger(tmp_path, name="tb"),
        WandbLogger(save_dir=str(tmp_path), offline=True, project="t"),
    ]
    _trainer, topo = _fit(tmp_path, loggers, epochs=2)
    wandb.finish()
    assert (Path(loggers[0].log_dir) / "topology" / "decay.png").exists()
    assert any(f.startswith("events.out") for f in os.listdir(loggers[1].log_dir))
    rows = wandb_records.history(wandb_records.run_dirs(str(tmp_path))[0])
    assert sum("topology/layers/path" in r for r in rows) == 2
    with open(Path(loggers[0].log_dir) / "metrics.csv") as f:
        assert "topology/decay_rate" in f.readline()
    assert not math.isnan(topo.history[-1]["decay_rate"])


def test_chart_arguments() -> None:
    with pytest.raises(MisconfigurationException, match="`charts` must be"):
        TopologyCallback(charts=["plotly"])
    assert TopologyCallback(charts=False).chart_kinds == ()
    assert TopologyCallback(charts="png").chart_kinds == ("png",)


def test_asking_for_wandb_without_it_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    import lightning_topo.callbacks.topology as callback_module

    monkeypatch.setattr(callback_module, "_WANDB_AVAILABLE", False)  # as on an install without the extra
    with pytest.raises(MisconfigurationException, match=r'pip install "lightning-topo\[wandb\]"'):
        TopologyCallback(charts=["wandb"])
    assert TopologyCallback().chart_kinds  # "auto" still works: W&B charts only go to a WandbLogger
