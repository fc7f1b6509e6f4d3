"""NaitzatDataModule: building, splitting, loaders, and the documented k-NN hop settings (docs/naitzat.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from lightning.pytorch import Callback, LightningDataModule, LightningModule, Trainer
from lightning.pytorch.cli import LightningCLI

from lightning_topo.datasets import NAITZAT_DATASETS, NaitzatDataModule
from lightning_topo.datasets.shapes import KNOWN_BETTI, naitzat_d1, naitzat_d2, naitzat_d3
from lightning_topo.functional import rips_betti
from lightning_topo.models import CNNClassifier, MLPClassifier

GENERATORS = {"d1": naitzat_d1, "d2": naitzat_d2, "d3": naitzat_d3}
DIMS = {"d1": (2, 1), "d2": (3, 2), "d3": (3, 2)}  # (in_features, maxdim)


def _rows(x: torch.Tensor) -> set[tuple[float, ...]]:
    return {tuple(r) for r in x.tolist()}


@pytest.mark.parametrize("name", NAITZAT_DATASETS)
def test_builds_and_splits_stratified(name: str) -> None:
    n = 150
    dm = NaitzatDataModule(name, n_per_class=n, val_fraction=0.2, seed=3, standardize=False)  # the raw points
    assert dm.known_betti == KNOWN_BETTI[name]
    assert (dm.in_features, dm.maxdim) == DIMS[name]
    assert dm.num_classes == 2
    assert dm.hparams["dataset"] == name and dm.hparams["n_per_class"] == n
    dm.setup("fit")
    assert dm.train_set is not None and dm.val_set is not None
    x_tr, y_tr = dm.train_set.tensors
    x_va, y_va = dm.val_set.tensors
    assert x_tr.dtype == x_va.dtype == torch.float32 and y_tr.dtype == y_va.dtype == torch.int64
    assert torch.bincount(y_va, minlength=2).tolist() == [30, 30]  # 20 % of each class
    assert torch.bincount(y_tr, minlength=2).tolist() == [120, 120]
    # Train and val are disjoint and together are exactly the generated data (as float32).
    points, labels = GENERATORS[name](n, seed=3)
    assert not _rows(x_tr) & _rows(x_va)
    assert _rows(torch.cat([x_tr, x_va])) == _rows(points.float())
    for c in (0, 1):
        assert _rows(torch.cat([x_tr[y_tr == c], x_va[y_va == c]])) == _rows(points[labels == c].float())


def test_split_is_seeded() -> None:
    a, b, c = (NaitzatDataModule("d2", n_per_class=90, seed=s) for s in (0, 0, 1))
    for dm in (a, b, c):
        dm.setup()
    assert torch.equal(a.val_set.tensors[0], b.val_set.tensors[0])
    assert torch.equal(a.train_set.tensors[1], b.train_set.tensors[1])
    assert not torch.equal(a.full_data()[0], c.full_data()[0])  # the seed also draws the points


@pytest.mark.parametrize("name", NAITZAT_DATASETS)
def test_loaders_yield_float32_points_and_int64_labels(name: str) -> None:
    dm = NaitzatDataModule(name, n_per_class=100, batch_size=32)
    dm.setup("fit")
    d = DIMS[name][0]
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (32, d) and x.dtype == torch.float32
    assert y.shape == (32,) and y.dtype == torch.int64
    seen = [(xb, yb) for xb, yb in dm.val_dataloader()]
    assert all(xb.shape[1] == d and xb.dtype == torch.float32 and yb.dtype == torch.int64 for xb, yb in seen)
    assert sum(len(yb) for _, yb in seen) == 40
    assert {int(v) for _, yb in seen for v in yb} == {0, 1}


def test_full_data_and_points_of_class() -> None:
    dm = NaitzatDataModule("d3", n_per_class=90, seed=5)
    points, labels = dm.full_data()
    expected_points, expected_labels = naitzat_d3(90, seed=5)
    assert points.dtype == torch.float64 and torch.equal(points, expected_points)
    assert torch.equal(labels, expected_labels)
    for c in (0, 1):
        assert torch.equal(dm.points_of_class(c), expected_points[expected_labels == c])
    with pytest.raises(ValueError, match=r"`c` must be a class of d3: one of \[0, 1\], got 2"):
        dm.points_of_class(2)


def test_defaults() -> None:
    assert NaitzatDataModule().dataset == "d1"
    assert NaitzatDataModule("d1").n_per_class == 2500
    assert NaitzatDataModule("d2").n_per_class == 900
    assert NaitzatDataModule("d3").n_per_class == 3600
    assert NaitzatDataModule("d3").recovers_known_betti
    dm = NaitzatDataModule("d2")
    assert (dm.val_fraction, dm.batch_size, dm.seed, dm.num_workers) == (0.2, 128, 0, 0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"dataset": "d4"}, r"`dataset` must be one of \('d1', 'd2', 'd3'\), got 'd4'"),
        ({"dataset": "D-I"}, r"one of \('d1', 'd2', 'd3'\), got 'D-I'"),
        ({"dataset": 1}, r"one of \('d1', 'd2', 'd3'\), got 1"),
        ({"n_per_class": 1}, "`n_per_class` must be an integer >= 2"),
        ({"n_per_class": 10.0}, "`n_per_class`"),
        ({"val_fraction": 1.0}, r"`val_fraction` must be in \(0, 1\)"),
        # D-II / D-III need a point in each of their 9 units (8 raised torch.cat's "expected a non-empty list")
        ({"dataset": "d2", "n_per_class": 8}, r"`n_per_class` must be an integer >= 9 for 'd2'"),
        ({"dataset": "d3", "n_per_class": 2}, r"`n_per_class` must be an integer >= 9 for 'd3'"),
    ],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        NaitzatDataModule(**kwargs)


CONFIG = """
model:
  class_path: lightning_topo.models.MLPClassifier
  init_args: {in_features: 3, hidden: 8, depth: 2, num_classes: 2}
data:
  class_path: lightning_topo.datasets.NaitzatDataModule
  init_args: {dataset: d3, n_per_class: 45, batch_size: 16}
trainer: {logger: false, enable_progress_bar: false, enable_checkpointing: false}
"""


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore:LightningCLI's args parameter")
def test_builds_from_yaml_with_lightning_cli(tmp_path: Path) -> None:
    config = tmp_path / "naitzat.yaml"
    config.write_text(CONFIG)
    cli = LightningCLI(
        LightningModule,
        LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        run=False,
        args=["--config", str(config)],
        save_config_callback=None,
        seed_everything_default=False,
    )
    dm = cli.datamodule
    assert isinstance(dm, NaitzatDataModule)
    assert (dm.dataset, dm.n_per_class, dm.batch_size, dm.in_features, dm.k, dm.scale) == ("d3", 45, 16, 3, 14, 3.5)
    assert dm.hparams["dataset"] == "d3" and dm.hparams["n_per_class"] == 45


def test_trains_with_a_trainer() -> None:
    dm = NaitzatDataModule("d1", n_per_class=200, batch_size=64)
    model = MLPClassifier(in_features=dm.in_features, hidden=8, depth=2, num_classes=dm.num_classes)
    trainer = Trainer(fast_dev_run=2, logger=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, datamodule=dm)
    assert trainer.state.finished


# The documented settings (docs/naitzat.md): k grows with the points per class.
@pytest.mark.parametrize(
    ("name", "n", "k", "scale", "recovers"),
    [
        ("d1", 600, 14, 2.5, True),
        ("d1", 1200, 14, 2.5, True),
        ("d1", 2500, 20, 2.5, True),
        ("d1", 5000, 20, 2.5, True),
        ("d1", 300, 14, 2.5, False),
        ("d1", 6000, 20, 2.5, False),
        ("d2", 600, 14, 2.5, True),
        ("d2", 900, 20, 2.5, True),
        ("d2", 9000, 20, 2.5, True),
        ("d2", 450, 14, 2.5, False),
        ("d3", 900, 14, 3.5, False),
        ("d3", 3600, 14, 3.5, True),
        ("d3", 5400, 14, 3.5, True),
        ("d3", 6300, 18, 3.5, True),
        ("d3", 9000, 18, 3.5, True),
        ("d3", 12000, 18, 3.5, False),
    ],
)
def test_documented_settings(name: str, n: int, k: int, scale: float, recovers: bool) -> None:
    dm = NaitzatDataModule(name, n_per_class=n)
    assert (dm.k, dm.scale, dm.recovers_known_betti) == (k, scale, recovers)


def _betti(dm: NaitzatDataModule, c: int) -> tuple[int, ...]:
    got = rips_betti(dm.points_of_class(c), dm.scale, dm.maxdim, metric="knn_hops", k=dm.k)
    return tuple(got.tolist())


# rips_betti at the module's own k / scale / maxdim recovers every known Betti number, b2 included.
# Runtimes per class on 2 idle CPU cores: D-I 600 ~0.8 s, 2500 ~2 s; D-II 900 ~0.5 s; D-III 3600 ~6 s.
@pytest.mark.parametrize(("name", "n"), [("d1", 600), ("d1", 2500), ("d2", 900), ("d3", 3600)])
def test_rips_betti_recovers_known_betti_at_documented_settings(name: str, n: int) -> None:
    dm = NaitzatDataModule(name, n_per_class=n, seed=0)
    assert dm.recovers_known_betti
    for c in (0, 1):
        assert _betti(dm, c) == dm.known_betti[c], f"{name}, {n} per class, class {c}, k={dm.k}, scale={dm.scale}"


def test_standardised_inputs_use_the_training_split_statistics() -> None:
    dm = NaitzatDataModule("d1", n_per_class=300, seed=4)
    dm.setup("fit")
    assert dm.train_set is not None and dm.val_set is not None and dm.mean is not None and dm.std is not None
    x_train, x_val = dm.train_set.tensors[0], dm.val_set.tensors[0]
    assert torch.allclose(x_train.mean(dim=0), torch.zeros(2), atol=1e-5)
    assert torch.allclose(x_train.std(dim=0), torch.ones(2), atol=1e-5)
    raw = NaitzatDataModule("d1", n_per_class=300, seed=4, standardize=False)
    raw.setup("fit")
    assert raw.train_set is not None and raw.val_set is not None and raw.mean is None
    # The same points and split; the validation split goes through the training split's map.
    assert torch.allclose(x_val, (raw.val_set.tensors[0] - dm.mean) / dm.std, atol=1e-6)
    assert torch.equal(dm.val_set.tensors[1], raw.val_set.tensors[1])
    assert raw.train_set.tensors[0].abs().max() > 5  # D-I's raw coordinates reach +-10


def test_cosine_schedule_with_warm_up() -> None:
    from lightning_topo.models import cosine_with_warmup

    lrs: list[float] = []

    class Record(Callback):
        def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, idx: int) -> None:
            lrs.append(trainer.optimizers[0].param_groups[0]["lr"])

    dm = NaitzatDataModule("d1", n_per_class=100, batch_size=40, val_fraction=0.2)
    model = MLPClassifier(
        in_features=2, hidden=4, depth=1, num_classes=2, lr=0.01, schedule="cosine", warmup_fraction=0.1
    )
    trainer = Trainer(
        max_epochs=5, logger=False, enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
        callbacks=[Record()], num_sanity_val_steps=0, limit_val_batches=0,
    )  # fmt: skip
    trainer.fit(model, datamodule=dm)
    total = 5 * 4  # 160 training points in batches of 40, 5 epochs
    assert len(lrs) == total
    expected = [0.01 * cosine_with_warmup(step, 2, total) for step in range(total)]
    assert lrs == pytest.approx(expected, rel=1e-9)
    assert lrs[0] < lrs[1] and max(lrs) == pytest.approx(0.01 * cosine_with_warmup(1, 2, total))
    assert lrs[-1] < 0.01 * 0.01
    with pytest.raises(ValueError, match="`schedule` must be one of"):
        MLPClassifier(schedule="linear")


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: MLPClassifier(lr=-0.1), "`lr` must be a finite number >= 0, got -0.1."),
        (lambda: MLPClassifier(lr=float("nan")), "`lr` must be a finite number >= 0, got nan."),
        (lambda: MLPClassifier(lr=True), "`lr` must be a finite number >= 0, got True."),
        (lambda: MLPClassifier(hidden=0), "`hidden` must be an integer >= 1, got 0."),
        (lambda: MLPClassifier(depth=-1), "`depth` must be an integer >= 0, got -1."),
        (lambda: MLPClassifier(in_features=2.5), "`in_features` must be an integer >= 1, got 2.5."),
        (lambda: CNNClassifier(channels=[16, 0]), "`channels[1]` must be an integer >= 1, got 0."),
        (lambda: CNNClassifier(num_classes=0), "`num_classes` must be an integer >= 1, got 0."),
    ],
)
def test_bundled_models_refuse_bad_sizes_and_learning_rates(build: Any, message: str) -> None:
    """A conv layer of 0 channels built and failed in the first forward pass (in TopologyCallback's, whose message
    then blamed the input); a negative learning rate failed in `configure_optimizers`, after the data was loaded;
    NaN trained silently to NaN. Each is a ValueError naming the argument when the model is built."""
    with pytest.raises(ValueError) as caught:
        build()
    assert str(caught.value) == message
    assert MLPClassifier(lr=0, depth=0).lr == 0  # a frozen model and a linear one are valid


@pytest.mark.parametrize("module", ["digits", "naitzat"])
def test_loaders_before_setup_say_so(module: str) -> None:
    """A loader asked for before `setup()` raised a bare AssertionError (gone under `python -O`, which then failed
    inside DataLoader); it is a RuntimeError naming the call and the fix. After setup the held-out split serves
    validation, test and predict alike."""
    from lightning_topo.datasets import DigitsDataModule, NaitzatDataModule

    dm = DigitsDataModule(batch_size=16) if module == "digits" else NaitzatDataModule(batch_size=16)
    with pytest.raises(RuntimeError, match=r"\.val_dataloader\(\) was called before setup\(\): call `\.setup\(\)`"):
        dm.val_dataloader()
    dm.setup()
    held_out = [
        next(iter(loader()))[1].tolist() for loader in (dm.val_dataloader, dm.test_dataloader, dm.predict_dataloader)
    ]
    assert held_out[0] == held_out[1] == held_out[2]
    assert len(dm.train_set) + len(dm.val_set) > len(dm.val_set) > 0


def test_generators_refuse_sizes_they_cannot_draw() -> None:
    """Sizes of 0 or below (and D-II / D-III below 9) raised from inside torch ('expected a non-empty list of
    Tensors', 'negative dimension', an empty amax); a torus with major <= minor intersects itself."""
    from lightning_topo.datasets.shapes import circle, sphere, torus, two_circles

    for make, n, least in (
        (naitzat_d1, 0, 1), (naitzat_d2, 8, 9), (naitzat_d3, 0, 9), (circle, -1, 1), (sphere, 0, 1),
        (torus, 0, 1), (two_circles, 1, 2),
    ):  # fmt: skip
        with pytest.raises(ValueError, match=rf"`n` must be an integer >= {least}, got {n}"):
            make(n)
    with pytest.raises(ValueError, match=r"`major` must be larger than `minor`"):
        torus(10, major=1.0, minor=2.0)
    points, labels = naitzat_d2(9)
    assert points.shape == (18, 3) and labels.tolist() == [0] * 9 + [1] * 9
    import numpy as np

    assert circle(np.int64(5)).shape == (5, 2)  # sizes from NumPy (np.arange, linspace().astype(int)) as before


def test_digits_classes_are_checked_when_the_module_is_built() -> None:
    """A repeated class was split twice (72 images in both the training and the validation set); an empty list or a
    non-digit raised from inside torch at setup; val_fraction=0.999 left the training set empty."""
    import numpy as np

    from lightning_topo.datasets import DigitsDataModule

    for classes, match in (
        ([1, 1], r"`classes` \[1, 1\] repeats \[1\]"),
        ([], r"`classes` must be None or a non-empty list"),
        (["a"], r"digit class 'a' in `classes` does not exist"),
        ([10], r"digit class 10 in `classes` does not exist"),
    ):
        with pytest.raises(ValueError, match=match):
            DigitsDataModule(classes=classes)
    for given in (range(3), np.arange(3), torch.tensor([0, 1, 2]), (0, np.int64(1), 2)):  # sequences of ints
        assert DigitsDataModule(classes=given).hparams.classes == [0, 1, 2]
    dm = DigitsDataModule(val_fraction=0.999)
    dm.setup()
    assert dm.train_set is not None and dm.val_set is not None
    assert sorted(set(dm.train_set.tensors[1].tolist())) == list(range(10))  # one image of each class at least
    train, val = dm.train_set.tensors[0], dm.val_set.tensors[0]
    assert not (train.reshape(len(train), 1, -1) == val.reshape(1, len(val), -1)).all(-1).any()
