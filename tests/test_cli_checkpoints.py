"""`lightning-topo analyse / rank` on a checkpoint torch's safe loader refuses: the file is fine but its
hyperparameters hold objects ``weights_only=True`` will not unpickle (a numpy float here). The one-line error says
that, not "truncated", and how to load a trusted file (``--weights_only false``), which then works; truly
unreadable files keep their message."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from lightning.pytorch import Trainer

from lightning_topo import cli
from lightning_topo.cli.analysis import load_model
from lightning_topo.datasets import DigitsDataModule
from lightning_topo.models import CNNClassifier

DATA = ["--data", "lightning_topo.datasets.DigitsDataModule"]
MODEL = ["--model", "lightning_topo.models.CNNClassifier"]


@pytest.fixture(scope="module")
def unsafe_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real Lightning checkpoint whose saved hyperparameters hold a numpy float (not weights_only-safe)."""
    root = tmp_path_factory.mktemp("unsafe")
    model = CNNClassifier(channels=[4, 8], lr=np.float64(0.01))
    trainer = Trainer(
        max_steps=1,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        default_root_dir=root,
    )
    trainer.fit(model, datamodule=DigitsDataModule())
    path = root / "numpy_hparams.ckpt"
    trainer.save_checkpoint(path)
    return path


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    (line,) = capsys.readouterr().err.strip().splitlines()
    return line


def test_unsafe_checkpoint_says_what_is_wrong_and_how_to_trust_it(
    unsafe_ckpt: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["analyse", *MODEL, "--ckpt", str(unsafe_ckpt), *DATA]) == 2
    line = _error_line(capsys)
    assert line.startswith("lightning-topo analyse: error: ") and str(unsafe_ckpt) in line
    assert "numpy" in line and "--weights_only false" in line
    assert "truncated" not in line and "not a readable checkpoint" not in line


def test_rank_gives_the_same_message(unsafe_ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    models = json.dumps([{"name": "a", "model": "lightning_topo.models.CNNClassifier", "ckpt": str(unsafe_ckpt)}])
    assert cli.main(["rank", "--models", models, *DATA, "--output_dir", str(tmp_path)]) == 2
    line = _error_line(capsys)
    assert line.startswith("lightning-topo rank: error: ") and str(unsafe_ckpt) in line
    assert "--weights_only false" in line


def test_weights_only_false_loads_it(unsafe_ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["analyse", *MODEL, "--ckpt", str(unsafe_ckpt), *DATA, "--weights_only", "false"]
    small = ["--analysis.samples_per_class", "3", "--progress", "false", "--output_dir", str(tmp_path)]
    assert cli.main([*args, *small]) == 0, capsys.readouterr().err
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["layers"]
    # The API the flag maps to: the hyperparameters come back as saved.
    model = load_model(CNNClassifier, str(unsafe_ckpt), weights_only=False)
    assert model.hparams.lr == 0.01 and list(model.hparams.channels) == [4, 8]


@pytest.mark.parametrize("kind", ["truncated", "random_bytes"])
def test_unreadable_files_keep_their_message(
    unsafe_ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    bad = tmp_path / f"{kind}.ckpt"
    if kind == "truncated":
        data = unsafe_ckpt.read_bytes()
        bad.write_bytes(data[: len(data) // 2])
    else:
        bad.write_bytes(random.Random(1).randbytes(4096))  # torch reports an UnpicklingError for these
    assert cli.main(["analyse", *MODEL, "--ckpt", str(bad), *DATA]) == 2
    line = _error_line(capsys)
    assert str(bad) in line and "is not a readable checkpoint" in line and "weights_only" not in line
