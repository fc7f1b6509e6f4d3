"""TopologyEarlyStopping: plateau and Betti-floor rules, smoothing and relative min_delta, reasons, state, resume;
scripted and real values; the online callback stops where the offline simulation of examples/stopping_rules.py
says, on the series that study recorded."""

from __future__ import annotations

import inspect
import json
import logging
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.callbacks.early_stopping import EarlyStoppingReason
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from torch.utils.data import DataLoader, TensorDataset

from lightning_topo import TopologyCallback, TopologyEarlyStopping
from lightning_topo.datasets import DigitsDataModule
from lightning_topo.models import Classifier, digits_cnn

NAN = float("nan")
ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "docs" / "findings" / "stopping_rules" / "results.json"
RAW = {"min_delta": 0.0, "min_delta_mode": "abs", "ema_alpha": None}
"""The plateau rule without smoothing or a relative min_delta (``EarlyStopping``'s; the defaults before 0.x)."""


def _study() -> Any:
    """``examples/stopping_rules.py`` as a module (its offline rules are plain functions of the series)."""
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import stopping_rules
    finally:
        sys.path.remove(str(ROOT / "examples"))
    return stopping_rules


class Scripted(LightningModule):
    """Logs a scripted decay rate and deepest-layer Omega at the end of each validation epoch."""

    def __init__(
        self, decay: list[float], omega_last: list[float] | None = None, extra: dict[str, list[float]] | None = None
    ) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)
        self.decay = decay
        self.omega_last = omega_last if omega_last is not None else [5.0] * len(decay)
        self.extra = extra or {}

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self.layer(batch[0]).pow(2).mean()

    def validation_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        pass

    def on_validation_epoch_end(self) -> None:
        e = self.current_epoch
        self.log("topology/decay_rate", self.decay[e], on_epoch=True)
        self.log("topology/omega_last", self.omega_last[e], on_epoch=True)
        for key, values in self.extra.items():
            self.log(key, values[e], on_epoch=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)


class Probe(Callback):
    """Records the stopper's counters when training (re)starts, i.e. right after a checkpoint is restored."""

    def __init__(self, stopper: TopologyEarlyStopping) -> None:
        self.stopper = stopper
        self.at_start: dict[str, Any] = {}

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        s = self.stopper
        self.at_start = {"wait_count": s.wait_count, "floor_count": s.floor_count, "best": float(s.best_score)}
        if s.ema_alpha is not None:
            self.at_start["ema_value"] = s.ema_value


def _loader() -> DataLoader:
    return DataLoader(TensorDataset(torch.randn(8, 2)), batch_size=4)


def _fit(model: LightningModule, callbacks: list[Callback], root: Path, epochs: int = 10, **kw: Any) -> Trainer:
    trainer = Trainer(
        max_epochs=epochs,
        callbacks=callbacks,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=any(isinstance(c, ModelCheckpoint) for c in callbacks),
        default_root_dir=root,
        num_sanity_val_steps=0,
        accelerator="cpu",
    )
    trainer.fit(model, _loader(), _loader(), **kw)
    return trainer


def _digits_trainer(root: Path, callbacks: list[Callback], max_epochs: int, **kw: Any) -> Trainer:
    """A quiet CPU trainer for the digits-CNN fits: 2 training batches and 1 validation batch per epoch, no
    sanity check, no checkpoints unless ``kw`` asks for them."""
    defaults: dict[str, Any] = dict(
        logger=False,
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_train_batches=2,
        limit_val_batches=1,
        accelerator="cpu",
        default_root_dir=root,
    )
    return Trainer(max_epochs=max_epochs, callbacks=callbacks, **{**defaults, **kw})


def _fit_digits(trainer: Trainer, **kw: Any) -> None:
    trainer.fit(Classifier(digits_cnn((4, 8))), datamodule=DigitsDataModule(classes=[0, 1, 2]), **kw)


@pytest.mark.parametrize(
    "make",
    [
        lambda: EarlyStopping(monitor="topology/decay_rate", mode="max", patience=2),
        lambda: TopologyEarlyStopping(patience=2, **RAW),
    ],
    ids=["EarlyStopping", "Topology"],
)
def test_plateau_stops_with_patience_reason(tmp_path: Path, make: Any) -> None:
    decay = [0.1, 0.3, 0.5, 0.5, 0.49, 0.5, 0.6, 0.7, 0.8, 0.9]
    stopper = make()
    trainer = _fit(Scripted(decay), [stopper], tmp_path)
    assert stopper.stopped_epoch == 4  # best 0.5 at epoch 2; no improvement at epochs 3 and 4
    assert stopper.stopping_reason == EarlyStoppingReason.PATIENCE_EXHAUSTED
    assert "did not improve in the last 2 records" in stopper.stopping_reason_message
    assert trainer.current_epoch == 5 and float(stopper.best_score) == pytest.approx(0.5)


def test_theta_in_min_mode(tmp_path: Path) -> None:
    class Theta(Scripted):
        def on_validation_epoch_end(self) -> None:
            self.log("topology/theta", self.decay[self.current_epoch], on_epoch=True)

    stopper = TopologyEarlyStopping(
        monitor="topology/theta", mode="min", patience=1, min_delta=0.05, min_delta_mode="abs", ema_alpha=None
    )
    _fit(Theta([-0.1, -0.3, -0.32, -0.5, -0.6]), [stopper], tmp_path)
    assert stopper.stopped_epoch == 2  # -0.32 is not 0.05 below -0.3
    assert stopper.stopping_reason == EarlyStoppingReason.PATIENCE_EXHAUSTED


def test_betti_floor_stops_with_its_reason(tmp_path: Path) -> None:
    decay = [0.1 * i for i in range(10)]  # always improving: the plateau rule never fires
    omega_last = [4.0, 3.0, 1.02, 2.0, 1.04, 1.0, 1.01, 0.99, 1.0, 1.0]
    stopper = TopologyEarlyStopping(patience=5, floor_patience=3, **RAW)
    trainer = _fit(Scripted(decay, omega_last), [stopper], tmp_path)
    assert stopper.stopped_epoch == 6  # epochs 4, 5, 6 at the floor (epoch 3 broke the first run)
    assert trainer.current_epoch == 7
    assert stopper.floor_reached and stopper.floor_count == 3
    assert stopper.stopping_reason == EarlyStoppingReason.STOPPING_THRESHOLD
    assert stopper.stopping_reason_message.startswith("Betti floor reached: topology/omega_last = 1.010")
    assert stopper.wait_count == 0


def test_floor_tolerance_and_plain_early_stopping_ignores_floor(tmp_path: Path) -> None:
    decay = [0.1 * i for i in range(6)]
    omega_last = [1.2] * 6  # above 1 + 0.05, within 1 + 0.25
    strict = TopologyEarlyStopping(floor_patience=2)
    _fit(Scripted(decay, omega_last), [strict], tmp_path, epochs=6)
    assert strict.stopping_reason == EarlyStoppingReason.NOT_STOPPED and strict.floor_count == 0
    loose = TopologyEarlyStopping(floor_patience=2, floor_tol=0.25)
    _fit(Scripted(decay, omega_last), [loose], tmp_path, epochs=6)
    assert loose.stopped_epoch == 1 and loose.floor_reached


def test_nan_evaluations_are_skipped_unless_check_finite(tmp_path: Path) -> None:
    decay = [0.1, NAN, NAN, 0.2, 0.3, 0.4]
    stopper = TopologyEarlyStopping(patience=2, **RAW)
    with pytest.warns(UserWarning, match="skipped"):
        _fit(Scripted(decay), [stopper], tmp_path, epochs=6)
    assert stopper.stopping_reason == EarlyStoppingReason.NOT_STOPPED and stopper.wait_count == 0
    strict = TopologyEarlyStopping(patience=2, check_finite=True, **RAW)
    _fit(Scripted(decay), [strict], tmp_path, epochs=6)
    assert strict.stopped_epoch == 1 and strict.stopping_reason == EarlyStoppingReason.NON_FINITE_METRIC


def test_missing_floor_key(tmp_path: Path) -> None:
    class NoFloor(Scripted):
        def on_validation_epoch_end(self) -> None:
            self.log("topology/decay_rate", self.decay[self.current_epoch], on_epoch=True)

    with pytest.raises(RuntimeError, match=r"topology/omega_last.*not logged"):
        _fit(NoFloor([0.1, 0.2]), [TopologyEarlyStopping(floor_patience=2)], tmp_path, epochs=2)
    lenient = TopologyEarlyStopping(floor_patience=2, strict=False)
    with pytest.warns(RuntimeWarning, match="not logged"):
        _fit(NoFloor([0.1, 0.2]), [lenient], tmp_path, epochs=2)
    assert lenient.stopping_reason == EarlyStoppingReason.NOT_STOPPED


def test_state_dict_round_trip() -> None:
    first = TopologyEarlyStopping(patience=5, floor_patience=4)
    first.wait_count, first.floor_count, first.best_score = 2, 3, torch.tensor(0.7)
    first.ema_value = 0.65
    state = first.state_dict()
    assert state["floor_count"] == 3 and state["wait_count"] == 2 and state["floor_reached"] is False
    assert state["ema_value"] == 0.65
    other = TopologyEarlyStopping(patience=5, floor_patience=4)
    other.load_state_dict(state)
    assert (other.wait_count, other.floor_count, float(other.best_score)) == (2, 3, pytest.approx(0.7))
    assert other.ema_value == 0.65
    # A plain EarlyStopping state (no floor or moving-average entries) loads with a zero floor count, no average.
    plain = EarlyStopping(monitor="topology/decay_rate", mode="max").state_dict()
    other.load_state_dict(plain)
    assert other.floor_count == 0 and not other.floor_reached and other.ema_value is None


def test_resume_restores_wait_and_floor_counters(tmp_path: Path) -> None:
    decay = [0.5, 0.4, 0.45, 0.3, 0.2, 0.1, 0.1, 0.1]  # best at epoch 0, then no improvement
    omega_last = [1.0] * 8
    ckpt_dir = tmp_path / "ckpt"

    def stopper() -> TopologyEarlyStopping:
        return TopologyEarlyStopping(patience=4, floor_patience=5, **RAW)

    first = stopper()
    _fit(Scripted(decay, omega_last), [first, ModelCheckpoint(dirpath=ckpt_dir, save_last=True)], tmp_path, epochs=2)
    assert (first.wait_count, first.floor_count) == (1, 2)

    resumed = stopper()
    probe = Probe(resumed)
    callbacks = [resumed, probe, ModelCheckpoint(dirpath=tmp_path / "ckpt2", save_last=True)]
    _fit(Scripted(decay, omega_last), callbacks, tmp_path, epochs=8, ckpt_path=str(ckpt_dir / "last.ckpt"))
    assert probe.at_start == {"wait_count": 1, "floor_count": 2, "best": pytest.approx(0.5)}
    # Restored wait 1 + epochs 2, 3, 4 without improvement: patience 4 exhausted at epoch 4 (fresh: epoch 6),
    # the same evaluation at which the restored floor count reaches 5; the plateau reason is reported.
    assert resumed.stopped_epoch == 4
    assert resumed.stopping_reason == EarlyStoppingReason.PATIENCE_EXHAUSTED
    assert resumed.floor_count == 5 and not resumed.floor_reached


def test_moving_average_delays_the_stop(tmp_path: Path) -> None:
    decay = [0.5, 1.0, 0.5, 1.0, 1.0, 1.0]
    raw = TopologyEarlyStopping(patience=2, **RAW)
    _fit(Scripted(decay), [raw], tmp_path, epochs=6)
    assert raw.stopped_epoch == 3  # best 1.0 at epoch 1; 0.5 and 1.0 do not beat it
    smooth = TopologyEarlyStopping(patience=2, min_delta=0.0, min_delta_mode="abs", ema_alpha=0.5)
    _fit(Scripted(decay), [smooth], tmp_path, epochs=6)
    # Averages 0.5, 0.75, 0.625, 0.8125, 0.90625, 0.953125: one evaluation without improvement, never two.
    assert smooth.stopping_reason == EarlyStoppingReason.NOT_STOPPED and smooth.wait_count == 0
    assert smooth.ema_value == pytest.approx(0.953125) and float(smooth.best_score) == pytest.approx(0.953125)


def test_relative_min_delta_is_a_fraction_of_the_best(tmp_path: Path) -> None:
    decay = [0.5, 0.75, 0.775, 0.8, 0.825, 0.85]  # steps of 0.025 after 0.75
    absolute = TopologyEarlyStopping(patience=2, min_delta=0.01, min_delta_mode="abs", ema_alpha=None)
    _fit(Scripted(decay), [absolute], tmp_path, epochs=6)
    assert absolute.stopping_reason == EarlyStoppingReason.NOT_STOPPED  # 0.025 > 0.01 every time
    relative = TopologyEarlyStopping(patience=2, min_delta=0.1, min_delta_mode="rel", ema_alpha=None)
    _fit(Scripted(decay), [relative], tmp_path, epochs=6)
    # Best 0.75 after epoch 1: 0.775 and 0.8 do not beat it by 10 % of 0.75 (0.075).
    assert relative.stopped_epoch == 3 and relative.stopping_reason == EarlyStoppingReason.PATIENCE_EXHAUSTED
    assert abs(relative.min_delta) == pytest.approx(0.075)  # the threshold of the last evaluation


def test_min_mode_relative_and_smoothed(tmp_path: Path) -> None:
    class Theta(Scripted):
        def on_validation_epoch_end(self) -> None:
            self.log("topology/theta", self.decay[self.current_epoch], on_epoch=True)

    theta = [-0.2, -0.4, -0.4, -0.4, -0.4, -0.4]
    stopper = TopologyEarlyStopping(monitor="topology/theta", mode="min", patience=1, min_delta=0.1, ema_alpha=0.5)
    _fit(Theta(theta), [stopper], tmp_path, epochs=6)
    # Averages -0.2, -0.3, -0.35, -0.375: -0.375 is not 10 % below the best -0.35 (-0.385).
    assert stopper.stopped_epoch == 3 == _study().plateau_stop(theta, "min", 1, 0.1, relative=True, smoothing=0.5)


@pytest.mark.parametrize("seed", range(4))
def test_online_equals_offline_on_random_series(tmp_path: Path, seed: int) -> None:
    """Random walks with NaN gaps, four settings each: the callback and ``plateau_stop`` agree on every one."""
    gen = torch.Generator().manual_seed(seed)
    n = 25
    walk = (torch.randn(n, generator=gen, dtype=torch.float64) * 0.05).cumsum(0) + 0.5
    walk[torch.rand(n, generator=gen) < 0.1] = NAN
    decay = walk.to(torch.float32).tolist()  # what a float32 log holds
    for kwargs in (
        {},  # the defaults
        RAW,
        {"patience": 3, "min_delta": 0.02, "min_delta_mode": "abs", "ema_alpha": 0.5},
        {"patience": 4, "min_delta": 0.01, "min_delta_mode": "rel", "ema_alpha": 1.0},
    ):
        stopper = TopologyEarlyStopping(**kwargs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the NaN evaluations are skipped with a warning (tested above)
            _fit(Scripted(decay), [stopper], tmp_path, epochs=n)
        offline = _study().plateau_stop(
            decay,
            "max",
            stopper.patience,
            stopper.relative_min_delta if stopper.min_delta_mode == "rel" else abs(stopper.min_delta),
            relative=stopper.min_delta_mode == "rel",
            smoothing=stopper.ema_alpha,
        )
        online = None if stopper.stopping_reason == EarlyStoppingReason.NOT_STOPPED else stopper.stopped_epoch
        assert online == offline, (kwargs, decay)


def test_resume_with_smoothing_stops_where_an_uninterrupted_run_does(tmp_path: Path) -> None:
    decay = [0.2, 0.5, 0.45, 0.6, 0.55, 0.5, 0.52, 0.5, 0.48, 0.5]

    def stopper() -> TopologyEarlyStopping:
        return TopologyEarlyStopping(patience=3, min_delta=0.05, ema_alpha=0.4)

    whole = stopper()
    _fit(Scripted(decay), [whole], tmp_path / "whole", epochs=10)
    assert whole.stopping_reason == EarlyStoppingReason.PATIENCE_EXHAUSTED

    first = stopper()
    ckpt_dir = tmp_path / "ckpt"
    _fit(Scripted(decay), [first, ModelCheckpoint(dirpath=ckpt_dir, save_last=True)], tmp_path, epochs=4)
    resumed = stopper()
    probe = Probe(resumed)
    callbacks = [resumed, probe, ModelCheckpoint(dirpath=tmp_path / "ckpt2", save_last=True)]
    _fit(Scripted(decay), callbacks, tmp_path, epochs=10, ckpt_path=str(ckpt_dir / "last.ckpt"))
    assert probe.at_start["ema_value"] == first.ema_value is not None
    assert resumed.stopped_epoch == whole.stopped_epoch and resumed.ema_value == whole.ema_value


def test_the_defaults_are_the_studys_choice() -> None:
    """``TopologyEarlyStopping()`` runs the rule that examples/stopping_rules.py chose (docs/findings)."""
    chosen = json.loads(STUDY.read_text())["default"]
    assert chosen["needs_new_features"] == []
    defaults = {k: p.default for k, p in inspect.signature(TopologyEarlyStopping.__init__).parameters.items()}
    for key, value in chosen["callback_arguments"].items():
        assert defaults[key] == value, key
    assert defaults["floor_patience"] is None  # the Betti floor stays off: on D-I the last layer sits at 1 from init


def test_online_defaults_stop_where_the_study_says_on_its_recorded_series(tmp_path: Path) -> None:
    """Replay the series the study recorded through ``TopologyEarlyStopping()``: it stops at the epoch the study's
    offline rule says (and reports in its per-seed summary), so the study's numbers are the callback's."""
    results = json.loads(STUDY.read_text())
    rule = _study().RULES[results["default"]["rule"]]
    per_seed = {
        (task, seed): epochs
        for task, t in results["summary"][rule.name].items()
        for seed, epochs in zip(t["per_seed"]["seed"], t["per_seed"]["epochs"], strict=True)
    }
    keys = {"decay_rate": "topology/decay_rate", "theta": "topology/theta", "omega_last": "topology/omega_last"}
    stopped_early = 0
    for run in results["runs"]:
        n = len(run["val_acc"])
        extra = {keys[k]: run[k] for k in ("theta",)}
        stopper = TopologyEarlyStopping()
        model = Scripted(run["decay_rate"], run["omega_last"], extra)
        trainer = _fit(model, [stopper], tmp_path, epochs=n)
        offline = rule.stop(run)
        online = None if stopper.stopping_reason == EarlyStoppingReason.NOT_STOPPED else stopper.stopped_epoch
        assert online == offline, (run["task"], run["seed"])
        epochs = trainer.current_epoch if online is None else online + 1
        assert epochs == per_seed[(run["task"], run["seed"])] == _study().stop_epochs(rule, run)
        stopped_early += epochs < n
    assert stopped_early >= len(results["runs"]) // 2  # the replay exercises real stops, not just "never"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mode": "up"}, "`mode` must be one of 'min', 'max', got 'up'"),
        ({"patience": 0}, "`patience` must be an integer >= 1"),
        ({"min_delta": -0.1}, "`min_delta` must be a finite number >= 0"),
        ({"floor_patience": 0}, "`floor_patience` must be None .* or an integer >= 1"),
        ({"floor": float("inf")}, "`floor` must be a finite number"),
        ({"floor_tol": -1.0}, "`floor_tol` must be a finite number >= 0"),
        ({"floor_key": ""}, "`floor_key` must be a non-empty"),
        ({"min_delta_mode": "relative"}, "`min_delta_mode` must be one of 'abs', 'rel' .*got 'relative'"),
        ({"ema_alpha": 0.0}, r"`ema_alpha` must be None \(no smoothing\) or a number in \(0, 1\], got 0.0"),
        ({"ema_alpha": 1.5}, r"`ema_alpha` must be .* got 1.5"),
        ({"ema_alpha": True}, r"`ema_alpha` must be .* got True"),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(MisconfigurationException, match=match):
        TopologyEarlyStopping(**kwargs)


def test_state_key_is_deterministic_and_includes_floor_settings() -> None:
    key = TopologyEarlyStopping(floor_patience=2).state_key
    assert key == TopologyEarlyStopping(floor_patience=2).state_key
    assert "floor_tol" in key and "'floor_patience': 2" in key
    assert "'ema_alpha': 0.3" in key and "'min_delta_mode': 'rel'" in key
    others = [
        TopologyEarlyStopping(),
        TopologyEarlyStopping(floor_patience=2, floor_tol=0.1),
        TopologyEarlyStopping(floor_patience=2, ema_alpha=None),
        TopologyEarlyStopping(floor_patience=2, min_delta_mode="abs"),
    ]
    assert len({o.state_key for o in others} | {key}) == 5


def test_real_run_stops_on_the_callbacks_decay_rate(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    topo = TopologyCallback(samples_per_class=3)
    stopper = TopologyEarlyStopping(patience=2, **{**RAW, "min_delta": 5.0})  # unbeatable: stops after patience
    trainer = _digits_trainer(tmp_path, [topo, stopper], 20)
    with caplog.at_level(logging.INFO):
        _fit_digits(trainer)
    assert stopper.stopped_epoch == 2 and stopper.stopping_reason == EarlyStoppingReason.PATIENCE_EXHAUSTED
    # Not verbose, and still the run says why it ended.
    assert f"TopologyEarlyStopping stopped the run at epoch 2: {stopper.stopping_reason_message}" in caplog.text
    assert len(topo.history) == 3
    assert "topology/omega_last" in trainer.callback_metrics


def _sparse_fit(
    stopper: TopologyEarlyStopping, root: Path, every: int = 2, others: tuple = ()
) -> tuple[Trainer, TopologyCallback]:
    """A real fit where the TopologyCallback evaluates every ``every``-th epoch only (stale metrics in between);
    ``others``: more callbacks."""
    topo = TopologyCallback(samples_per_class=3, every_n_epochs=every)
    trainer = _digits_trainer(root, [topo, *others, stopper], 12)
    _fit_digits(trainer)
    return trainer, topo


@pytest.mark.parametrize("strict", [True, False])
def test_every_n_epochs_counts_fresh_evaluations_only(tmp_path: Path, strict: bool) -> None:
    """every_n_epochs=2: epoch 0 has no evaluation yet (not an error under strict=True), and the stale values of
    the epochs between evaluations are not counted again: patience 2 = 2 evaluations without improvement."""
    stopper = TopologyEarlyStopping(patience=2, strict=strict, **{**RAW, "min_delta": 5.0})
    _, topo = _sparse_fit(stopper, tmp_path)
    assert [r["epoch"] for r in topo.history] == [1, 3, 5]  # improvement, then 2 without
    assert stopper.evaluations == len(topo.history) == 3
    assert stopper.stopped_epoch == 5 and stopper.stopping_reason == EarlyStoppingReason.PATIENCE_EXHAUSTED
    assert "did not improve in the last 2 records" in stopper.stopping_reason_message


@pytest.mark.parametrize("strict", [True, False])
def test_another_topology_callbacks_evaluations_are_not_the_monitors(tmp_path: Path, strict: bool) -> None:
    """A second TopologyCallback (another prefix) evaluating every epoch: its evaluations counted the monitored
    callback's stale value again (patience ran twice as fast), and with strict=True the run stopped at epoch 0 for
    a metric not logged yet."""
    other = TopologyCallback(samples_per_class=3, layers=["net.0", "net.3"], prefix="topo_b")
    stopper = TopologyEarlyStopping(patience=2, strict=strict, **{**RAW, "min_delta": 5.0})
    _, topo = _sparse_fit(stopper, tmp_path, others=(other,))
    assert len(other.history) > len(topo.history)
    assert [r["epoch"] for r in topo.history] == [1, 3, 5]
    assert stopper.evaluations == len(topo.history) == 3 and stopper.stopped_epoch == 5


def test_every_n_epochs_floor_rule_counts_fresh_evaluations_only(tmp_path: Path) -> None:
    stopper = TopologyEarlyStopping(patience=50, floor_patience=2, floor=1e9)  # always at the "floor"
    _, topo = _sparse_fit(stopper, tmp_path)
    assert [r["epoch"] for r in topo.history] == [1, 3]
    assert stopper.floor_reached and stopper.floor_count == 2 and stopper.stopped_epoch == 3
    assert stopper.evaluations == 2


def test_a_misspelt_run_level_key_fails_at_setup(tmp_path: Path) -> None:
    """monitor='topology/decay_rat' failed with Lightning's "not available" after the first epoch."""
    from lightning_topo.callbacks import TopologyMisconfiguration

    for kwargs, match in (
        ({"monitor": "topology/decay_rat"}, r"`topology/decay_rat`.*did you mean 'topology/decay_rate'"),
        ({"floor_patience": 2, "floor_key": "topology/omega"}, r"`topology/omega`.*did you mean 'topology/omega_last'"),
    ):
        stopper = TopologyEarlyStopping(**kwargs)
        trainer = _digits_trainer(
            tmp_path, [TopologyCallback(samples_per_class=2), stopper], 1, limit_train_batches=1, limit_val_batches=1.0
        )
        with pytest.raises(TopologyMisconfiguration, match=match):
            trainer.fit(Classifier(digits_cnn((4, 8))), datamodule=DigitsDataModule(classes=[0, 1]))
        assert trainer.global_step == 0


def test_a_decay_rate_monitored_with_mode_min_is_said(tmp_path: Path) -> None:
    """``EarlyStopping(monitor="topology/decay_rate")`` takes Lightning's default ``mode="min"``: it stops when the
    decay rate stops falling, the opposite of what it measures (higher = more simplification). Said at setup."""
    from models import quiet_trainer

    torch.manual_seed(0)
    x, y = torch.randn(64, 1, 8, 8), torch.arange(64) % 4
    loader = DataLoader(TensorDataset(x, y), batch_size=32)

    def said(*others: Callback) -> list[str]:
        """The mode warnings of a one-epoch fit with the callback and ``others``."""
        topology = TopologyCallback(charts=False, layers=["net.0", "net.3", "net.6"])
        checkpoints = any(isinstance(cb, ModelCheckpoint) for cb in others)
        trainer = quiet_trainer(tmp_path, [topology, *others], enable_checkpointing=checkpoints)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            trainer.fit(Classifier(digits_cnn(channels=(4, 8))), loader, loader)
        return [str(w.message) for w in caught if "mode='min'): the decay rate rises" in str(w.message)]

    both = said(
        EarlyStopping(monitor="topology/decay_rate", patience=5),
        ModelCheckpoint(dirpath=tmp_path, monitor="topology/decay_rate", mode="min"),
    )
    assert len(both) == 2 and "EarlyStopping(" in both[0] and "ModelCheckpoint(" in both[1], both
    assert "pass mode='max'" in both[0]
    assert said(EarlyStopping(monitor="topology/decay_rate", mode="max", patience=5), TopologyEarlyStopping()) == []


def test_validations_at_one_global_step_count_each_evaluation_once(tmp_path: Path) -> None:
    """Gradient accumulation holds the global step through several validations of an epoch: with every_n_epochs=2
    a check after a validation the callback skipped matched the last record's (epoch, global step) and counted
    its value again (patience ran out early)."""
    topo = TopologyCallback(samples_per_class=3, every_n_epochs=2)
    stopper = TopologyEarlyStopping(patience=10, **{**RAW, "min_delta": 5.0})
    trainer = _digits_trainer(
        tmp_path, [topo, stopper], 2, limit_train_batches=8, val_check_interval=0.25, accumulate_grad_batches=16
    )
    _fit_digits(trainer)
    steps = [(r["epoch"], r["global_step"]) for r in topo.history]
    assert len(steps) >= 2 and steps[0] == steps[1]  # two evaluations at one (epoch, global step)
    assert stopper.evaluations == len(topo.history)
    assert stopper.wait_count == len(topo.history) - 1  # the first sets the best; each later one fails min_delta


def test_resume_keeps_this_runs_patience(caplog: pytest.LogCaptureFixture) -> None:
    """Lightning's EarlyStopping restores `patience` from the checkpoint: loosening it on resume (as the README's
    advice to train on says) did nothing, and the run stopped at its next check."""
    first = TopologyEarlyStopping(patience=1)
    first.wait_count, first.best_score = 1, torch.tensor(0.7)
    resumed = TopologyEarlyStopping(patience=5)
    with caplog.at_level(logging.INFO):
        resumed.load_state_dict(first.state_dict())
    assert resumed.patience == 5 and resumed.wait_count == 1
    assert "resumed with patience=5 (the checkpoint's run had 1)" in caplog.text


def test_a_floor_key_under_another_prefix_fails_at_setup(tmp_path: Path) -> None:
    """TopologyCallback(prefix='topo2') logs 'topo2/omega_last'; the default floor_key failed after an epoch."""
    from lightning_topo.callbacks import TopologyMisconfiguration

    topo = TopologyCallback(samples_per_class=3, prefix="topo2")
    stopper = TopologyEarlyStopping(monitor="topo2/decay_rate", floor_patience=2)
    trainer = _digits_trainer(tmp_path, [topo, stopper], 2)
    with pytest.raises(TopologyMisconfiguration, match=r"pass floor_key='topo2/omega_last'"):
        _fit_digits(trainer)
    assert trainer.global_step == 0


def test_a_stop_before_min_epochs_says_the_run_trains_on(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Under `min_epochs` Lightning trains on after the stop signal; the line said the run had stopped."""
    stopper = TopologyEarlyStopping(patience=2, **{**RAW, "min_delta": 5.0})
    trainer = _digits_trainer(tmp_path, [TopologyCallback(samples_per_class=3), stopper], 4, min_epochs=4)
    with caplog.at_level(logging.INFO):
        _fit_digits(trainer)
    assert "TopologyEarlyStopping asks the run to stop at epoch 2 (Lightning trains on to min_epochs=4)" in caplog.text
    assert trainer.current_epoch == 4


def test_a_resume_in_the_same_process_counts_the_evaluations_after_it(tmp_path: Path) -> None:
    """The same callback objects resumed from an earlier checkpoint: the restored history is shorter than the one
    the stopper last saw, and its new evaluations are still fresh."""
    topo = TopologyCallback(samples_per_class=3)
    stopper = TopologyEarlyStopping(patience=50)
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_top_k=-1, every_n_epochs=1, filename="{epoch}")
    _fit_digits(_digits_trainer(tmp_path, [topo, stopper, ckpt], 4, enable_checkpointing=True))
    assert stopper.evaluations == len(topo.history) == 4
    _fit_digits(_digits_trainer(tmp_path, [topo, stopper], 4), ckpt_path=str(tmp_path / "ckpt" / "epoch=1.ckpt"))
    assert [r["epoch"] for r in topo.history] == [0, 1, 2, 3]
    assert stopper.evaluations == 4  # 2 restored + epochs 2 and 3


def test_two_stoppers_deciding_at_one_check_each_say_why(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The second stopper to decide at a check saw `should_stop` already set, took the decision for the first's and
    said nothing of its own reason (nor recorded its stopped epoch)."""
    decay = [0.5] * 10  # no improvement after the first evaluation: both plateau rules run out together
    first = TopologyEarlyStopping(patience=2, **RAW)
    second = TopologyEarlyStopping(monitor="topology/omega_last", mode="min", patience=2, **RAW)
    with caplog.at_level(logging.INFO):
        _fit(Scripted(decay), [first, second], tmp_path)
    assert first.stopped_epoch == second.stopped_epoch == 2
    for stopper in (first, second):
        assert stopper.stopping_reason == EarlyStoppingReason.PATIENCE_EXHAUSTED
        assert f"TopologyEarlyStopping stopped the run at epoch 2: {stopper.stopping_reason_message}" in caplog.text
    assert "topology/omega_last" in second.stopping_reason_message
