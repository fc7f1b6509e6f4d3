"""A practitioner's trial after the first fit: two callbacks in one trainer, `validate` after `fit`, label columns,
resuming early stopping with other settings, chart kinds without their logger, a flat decay."""

from __future__ import annotations

import csv
import hashlib
import math
import warnings
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Trainer, seed_everything
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, WandbLogger
from torch.utils.data import DataLoader, TensorDataset

from lightning_topo import TopologyCallback, TopologyEarlyStopping
from lightning_topo.analysis import analyse
from lightning_topo.callbacks.topology import TopologyMisconfiguration
from lightning_topo.capture.sampling import class_labels
from lightning_topo.datasets import DigitsDataModule
from lightning_topo.functional import normalised_decay, theta
from lightning_topo.models import Classifier, digits_cnn


def _trainer(tmp_path: Path, callbacks: list, epochs: int = 2, **kwargs: object) -> Trainer:
    options = {
        "max_epochs": epochs,
        "limit_train_batches": 3,
        "logger": CSVLogger(tmp_path, name="csv"),
        "accelerator": "cpu",
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,
        "enable_checkpointing": False,
        "default_root_dir": tmp_path,
    }
    return Trainer(**{**options, **kwargs, "callbacks": callbacks})


def _csv_rows(trainer: Trainer) -> list[dict[str, str]]:
    with open(Path(trainer.logger.log_dir) / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_two_callbacks_with_one_prefix_are_refused_before_training(tmp_path: Path) -> None:
    """Both logged `topology/decay_rate`: the later overwrote the earlier in callback_metrics (what early stopping
    and checkpoints read), in the CSV and in the figures, with no warning."""
    seed_everything(0)
    trainer = _trainer(tmp_path, [TopologyCallback(samples_per_class=5), TopologyCallback(threshold="median")])
    with pytest.raises(TopologyMisconfiguration, match=r"same prefix 'topology'.*threshold='median'.*prefix="):
        trainer.fit(Classifier(digits_cnn()), datamodule=DigitsDataModule())
    assert trainer.global_step == 0


def test_two_callbacks_with_two_prefixes_log_apart(tmp_path: Path) -> None:
    seed_everything(0)
    a = TopologyCallback(samples_per_class=5)
    b = TopologyCallback(samples_per_class=5, threshold="median", prefix="topology_median")
    stop = TopologyEarlyStopping(monitor="topology_median/decay_rate", floor_key="topology_median/omega_last")
    trainer = _trainer(tmp_path, [a, b, stop])
    trainer.fit(Classifier(digits_cnn()), datamodule=DigitsDataModule())
    assert a.wait_for_charts(timeout=120) and b.wait_for_charts(timeout=120)
    assert [h["decay_rate"] for h in a.history] != [h["decay_rate"] for h in b.history]
    rows = [r for r in _csv_rows(trainer) if r.get("topology/decay_rate")]
    assert [float(r["topology/decay_rate"]) for r in rows] == pytest.approx([h["decay_rate"] for h in a.history])
    rows = [r for r in _csv_rows(trainer) if r.get("topology_median/decay_rate")]
    assert [float(r["topology_median/decay_rate"]) for r in rows] == pytest.approx([h["decay_rate"] for h in b.history])
    assert float(trainer.callback_metrics["topology/decay_rate"]) == pytest.approx(a.history[-1]["decay_rate"])
    assert stop.evaluations == 2  # it read the median callback's fresh values
    log_dir = Path(trainer.logger.log_dir)
    assert {Path(f).parent for f in a.chart_files} == {log_dir / "topology"}
    assert {Path(f).parent for f in b.chart_files} == {log_dir / "topology_median"}


def test_early_stopping_on_the_default_key_beside_a_prefixed_callback_says_which_key(tmp_path: Path) -> None:
    seed_everything(0)
    trainer = _trainer(
        tmp_path,
        [TopologyCallback(samples_per_class=5, prefix="topo"), TopologyEarlyStopping(strict=False)],
        epochs=1,
    )
    with pytest.warns(UserWarning, match=r"log under \['topo/'\]: pass monitor='topo/decay_rate'"):
        trainer.fit(Classifier(digits_cnn()), datamodule=DigitsDataModule())


@pytest.mark.parametrize("bad", ["", "/topology", "topology/", 3])
def test_bad_prefixes(bad: object) -> None:
    with pytest.raises(TopologyMisconfiguration, match="`prefix` must be"):
        TopologyCallback(prefix=bad)  # type: ignore[arg-type]


def test_validate_after_fit_keeps_the_fits_figures(tmp_path: Path) -> None:
    """`trainer.validate()` redrew omega_history.png and decay.png from its one evaluation, losing the fit's
    epochs; its figures now go to topology/validate/."""
    seed_everything(0)
    topo = TopologyCallback(samples_per_class=5)
    trainer = _trainer(tmp_path, [topo], epochs=3)
    model, data = Classifier(digits_cnn()), DigitsDataModule()
    trainer.fit(model, datamodule=data)
    assert topo.wait_for_charts(timeout=120)
    folder = Path(trainer.logger.log_dir) / "topology"
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.glob("*.png")}
    assert sorted(before) == ["betti_vs_depth.png", "decay.png", "omega_history.png"]
    trainer.validate(model, datamodule=data)
    assert topo.wait_for_charts(timeout=120)
    after = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.glob("*.png")}
    assert after == before
    assert sorted(p.name for p in (folder / "validate").glob("*.png")) == sorted(before)
    assert len(topo.history) == 3 and len(topo.validate_history) == 1


def test_validate_charts_go_to_their_own_wandb_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import wandb
    import wandb_records

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    seed_everything(0)
    topo = TopologyCallback(samples_per_class=5)
    trainer = _trainer(tmp_path, [topo], epochs=2, logger=WandbLogger(save_dir=str(tmp_path), offline=True))
    model, data = Classifier(digits_cnn()), DigitsDataModule()
    trainer.fit(model, datamodule=data)
    trainer.validate(model, datamodule=data)
    wandb.finish()
    (run_dir,) = wandb_records.run_dirs(str(tmp_path))
    rows = wandb_records.history(run_dir)
    fit_rows = [r for r in rows if "topology/omega_vs_depth_table/path" in r]
    validate_rows = [r for r in rows if "topology/validate/omega_vs_depth_table/path" in r]
    assert len(fit_rows) == 2 and len(validate_rows) == 1
    lines = wandb_records.table(run_dir, fit_rows[-1], "topology/omega_vs_depth_table")
    assert sorted({r[1] for r in lines["data"]}) == ["epoch 0", "epoch 1"]


def test_a_column_of_integer_labels_is_one_class_per_input() -> None:
    """Labels shaped (N, 1), as tabular data keeps them, were refused as 'not one-hot rows'."""
    labels, note = class_labels(torch.tensor([[2], [0], [1]]), batched=True)
    assert labels.tolist() == [2, 0, 1] and note is None
    torch.manual_seed(0)
    x, y = torch.rand(60, 1, 8, 8), torch.arange(60) % 3
    model = digits_cnn((4, 8), num_classes=3)
    column = analyse(model, DataLoader(TensorDataset(x, y.view(-1, 1)), batch_size=20), progress=False)
    flat = analyse(model, DataLoader(TensorDataset(x, y), batch_size=20), progress=False)
    assert column.classes == flat.classes == [0, 1, 2]
    assert torch.equal(column.labels, flat.labels) and torch.equal(column.betti, flat.betti)


def test_resuming_early_stopping_with_other_settings_says_so(tmp_path: Path) -> None:
    seed_everything(0)
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    model, data = Classifier(digits_cnn()), DigitsDataModule()
    first = _trainer(
        tmp_path,
        [TopologyCallback(samples_per_class=5), TopologyEarlyStopping(patience=4), ckpt],
        enable_checkpointing=True,
    )
    first.fit(model, datamodule=data)
    second = _trainer(
        tmp_path,
        [TopologyCallback(samples_per_class=5), TopologyEarlyStopping(patience=4, ema_alpha=0.5)],
        epochs=3,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        second.fit(model, datamodule=data, ckpt_path=str(tmp_path / "ckpt" / "last.ckpt"))
    messages = [str(w.message) for w in caught if "TopologyEarlyStopping" in str(w.message)]
    assert any("not restored" in m and "ema_alpha=0.3" in m and "ema_alpha=0.5" in m for m in messages), messages


def test_chart_kinds_without_their_logger_say_so(tmp_path: Path) -> None:
    seed_everything(0)
    trainer = _trainer(tmp_path, [TopologyCallback(samples_per_class=5, charts=["wandb"])], epochs=1)
    with pytest.warns(UserWarning, match=r"charts=\['wandb'\] and the trainer's loggers are \['CSVLogger'\]"):
        trainer.fit(Classifier(digits_cnn()), datamodule=DigitsDataModule())


def test_a_flat_curve_decays_by_zero_not_minus_zero() -> None:
    flat = torch.tensor([3.0, 3.0, 3.0, 3.0])
    for value in (normalised_decay(flat).item(), theta(flat).item()):
        assert value == 0.0 and math.copysign(1.0, value) == 1.0


def test_several_validations_per_epoch_are_drawn_against_the_global_step(tmp_path: Path) -> None:
    """`val_check_interval=0.5` evaluates twice per epoch: drawn against the epoch, the decay and Omega lines went
    back and forth at each epoch (two points at one x)."""
    pytest.importorskip("matplotlib")
    from lightning_topo.loggers.figures import decay_figure, omega_history_figure

    seed_everything(0)
    cb = TopologyCallback(samples_per_class=5, charts=False)
    trainer = _trainer(tmp_path, [cb], epochs=2, limit_train_batches=4, val_check_interval=0.5)
    trainer.fit(Classifier(digits_cnn()), datamodule=DigitsDataModule())
    epochs = [r["epoch"] for r in cb.history]
    steps = [r["global_step"] for r in cb.history]
    assert epochs == [0, 0, 1, 1] and steps == sorted(set(steps))
    fig = decay_figure(cb.history)
    top, bottom = fig.axes
    assert list(top.lines[0].get_xdata()) == steps and bottom.get_xlabel() == "global step"
    assert "per evaluation" in top.get_title()
    omega = omega_history_figure(cb.history)
    assert omega.axes[-1].get_ylabel() == "global step"  # the colour bar
    assert f"steps {steps[0]}-{steps[-1]}" in omega.axes[0].get_title()
    # One evaluation per epoch: still the epoch.
    seed_everything(0)
    cb = TopologyCallback(samples_per_class=5, charts=False)
    _trainer(tmp_path / "once", [cb], epochs=2).fit(Classifier(digits_cnn()), datamodule=DigitsDataModule())
    fig = decay_figure(cb.history)
    assert fig.axes[1].get_xlabel() == "epoch" and list(fig.axes[0].lines[0].get_xdata()) == [0, 1]


FIRST_PERSISTENCE_FIT = """
import lightning.pytorch as pl, sys
from lightning_topo import TopologyCallback
from lightning_topo.datasets import DigitsDataModule
from lightning_topo.models import Classifier, digits_cnn
for run in range(2):
    print(f"run {run}", flush=True)
    pl.seed_everything(0)
    cb = TopologyCallback(samples_per_class=3, charts=False, persistence=["entropy"], persistence_dims=(0, 2))
    trainer = pl.Trainer(max_epochs=1, limit_train_batches=2, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                         accelerator="cpu", callbacks=[cb], default_root_dir=sys.argv[1])
    trainer.fit(Classifier(digits_cnn()), datamodule=DigitsDataModule())
    assert "persistence_entropy_0" in str(list(trainer.callback_metrics))
"""


def test_the_first_persistence_evaluation_of_a_process_says_it_may_compile(tmp_path: Path) -> None:
    """A cold numba cache makes the first evaluation with persistence 20-30 s longer than the next: said once per
    process, before it happens (a fresh process: this one may have loaded the kernels already)."""
    import os
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-c", FIRST_PERSISTENCE_FIT, str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # in the order written
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONWARNINGS": "ignore", "PYTHONUNBUFFERED": "1"},
    )
    out = proc.stdout
    assert proc.returncode == 0, out[-3000:]
    first, second = out.split("run 1")
    assert first.count("compiled kernels are not loaded in this process") == 1, out[-3000:]
    assert "numba's disk cache" in first and "compiled kernels" not in second
