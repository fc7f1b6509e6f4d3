"""What a new user trying the callback met (a trial run as a user would): each test fails without its fix."""

from __future__ import annotations

import math
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from models import quiet_trainer
from test_cli import run_cli_here
from torch.utils.data import DataLoader, TensorDataset

from lightning_topo import TopologyCallback, TopologyConfig, TopologyEarlyStopping
from lightning_topo.callbacks import TopologyMisconfiguration
from lightning_topo.capture import SampleError, build_sample
from lightning_topo.capture.hooks import ActivationCapture
from lightning_topo.datasets import DigitsDataModule
from lightning_topo.functional import sublevel_thresholds
from lightning_topo.models import Classifier, digits_cnn

ROOT = Path(__file__).resolve().parents[1]


def _fit(tmp_path: Path, callbacks: list, max_epochs: int, **kwargs) -> None:
    trainer = quiet_trainer(tmp_path, callbacks, max_epochs=max_epochs, limit_train_batches=2, **kwargs)
    trainer.fit(Classifier(digits_cnn((4, 8))), datamodule=DigitsDataModule(classes=[0, 1, 2]))


# ------------------------------------------------------------------ every_n_epochs counts validation runs
@pytest.mark.parametrize(
    ("trainer_kwargs", "epochs"),
    [
        ({"check_val_every_n_epoch": 2}, [3, 7]),  # validations at epochs 1, 3, 5, 7: every 2nd of them
        ({"val_check_interval": 0.5}, [0, 1, 2, 3, 4, 5, 6, 7]),  # two validations per epoch: one evaluates
    ],
)
def test_every_n_epochs_counts_validation_runs(tmp_path: Path, trainer_kwargs: dict, epochs: list[int]) -> None:
    callback = TopologyCallback(every_n_epochs=2, samples_per_class=2)
    _fit(tmp_path, [callback], max_epochs=8, **trainer_kwargs)
    assert [record["epoch"] for record in callback.history] == epochs
    assert callback.validation_runs == 2 * len(epochs)
    assert callback.state_dict()["validation_runs"] == callback.validation_runs


def test_validation_runs_restored_from_a_checkpoint_and_derived_for_old_ones() -> None:
    callback = TopologyCallback(every_n_epochs=3)
    callback.load_state_dict({"history": [{"epoch": 2}], "validation_runs": 4})
    assert callback.validation_runs == 4
    callback.load_state_dict({"history": [{"epoch": 2}, {"epoch": 5}]})  # saved before the count existed
    assert callback.validation_runs == 6


# ------------------------------------------------------------------ monitors that cannot work with every_n_epochs
def test_strict_early_stopping_on_a_sparse_topology_value_fails_at_setup(tmp_path: Path) -> None:
    stopper = EarlyStopping(monitor="topology/decay_rate", mode="max")
    with pytest.raises(TopologyMisconfiguration, match=r"every_n_epochs=2.*TopologyEarlyStopping"):
        _fit(tmp_path, [TopologyCallback(every_n_epochs=2, samples_per_class=2), stopper], max_epochs=2)


def test_lenient_monitors_on_a_sparse_topology_value_warn(tmp_path: Path) -> None:
    stopper = EarlyStopping(monitor="topology/decay_rate", mode="max", strict=False)
    aligned = ModelCheckpoint(dirpath=tmp_path / "a", monitor="topology/omega_last", every_n_epochs=2)
    with pytest.warns(UserWarning) as record:
        _fit(
            tmp_path,
            [TopologyCallback(every_n_epochs=2, samples_per_class=2), stopper, aligned],
            max_epochs=2,
            enable_checkpointing=True,
        )
    texts = [str(w.message) for w in record]
    assert any("EarlyStopping(monitor='topology/decay_rate')" in t and "count the last" in t for t in texts)
    assert not any("ModelCheckpoint(" in t for t in texts)  # it saves at the evaluated epochs only: nothing to say
    assert len(list((tmp_path / "a").glob("*.ckpt"))) == 1  # saved at epoch 1, with the value

    every_epoch = ModelCheckpoint(dirpath=tmp_path / "b", monitor="topology/omega_last")
    with (
        pytest.warns(UserWarning, match=r"ModelCheckpoint\(monitor='topology/omega_last'\).*every_n_epochs=2 too"),
        pytest.raises(MisconfigurationException, match="could not find the monitored key"),  # as the warning said
    ):
        _fit(
            tmp_path,
            [TopologyCallback(every_n_epochs=2, samples_per_class=2), every_epoch],
            max_epochs=2,
            enable_checkpointing=True,
        )


def test_topology_early_stopping_is_not_refused(tmp_path: Path) -> None:
    stopper = TopologyEarlyStopping(patience=5)
    callback = TopologyCallback(every_n_epochs=2, samples_per_class=2)
    _fit(tmp_path, [callback, stopper], max_epochs=2)
    assert stopper.evaluations == len(callback.history) == 1


def test_topology_early_stopping_without_the_callback_says_what_to_add(tmp_path: Path) -> None:
    with (
        pytest.warns(UserWarning, match=r"no TopologyCallback to log it: add lightning_topo.TopologyCallback"),
        pytest.raises(RuntimeError, match="topology/decay_rate"),  # Lightning's own check, after the warning
    ):
        _fit(tmp_path, [TopologyEarlyStopping()], max_epochs=1)


def test_topology_early_stopping_names_a_misspelt_argument() -> None:
    with pytest.raises(MisconfigurationException, match=r"\['patiance'\].*did you mean `patience`"):
        TopologyEarlyStopping(patiance=3)
    with pytest.raises(MisconfigurationException, match=r"did you mean `stopping_threshold`"):
        TopologyEarlyStopping(stoping_threshold=0.5)


# ------------------------------------------------------------------ the sanity check is not an evaluation of the fit
def test_sanity_check_evaluation_is_not_in_the_history(tmp_path: Path) -> None:
    callback = TopologyCallback(run_on_sanity_check=True, samples_per_class=2)
    _fit(tmp_path, [callback], max_epochs=1, num_sanity_val_steps=1)
    assert [record["epoch"] for record in callback.history] == [0]  # the sanity check evaluated, not recorded
    assert callback.validation_runs == 1


def test_a_fit_that_evaluates_nothing_says_why(tmp_path: Path) -> None:
    callback = TopologyCallback(every_n_epochs=3, samples_per_class=2)
    with pytest.warns(UserWarning, match=r"evaluated nothing: the fit ran 2 validation run\(s\) and every_n_epochs=3"):
        _fit(tmp_path, [callback], max_epochs=2)
    callback = TopologyCallback(samples_per_class=2)
    with pytest.warns(UserWarning, match=r"evaluated nothing: the fit ran no validation"):
        _fit(tmp_path, [callback], max_epochs=1, limit_val_batches=0)


# ------------------------------------------------------------------ argument checks
@pytest.mark.parametrize("name", ["log_per_class", "run_on_sanity_check", "run_on_fast_dev_run"])
def test_flags_must_be_booleans(name: str) -> None:
    with pytest.raises(TopologyMisconfiguration, match=rf"`{name}` must be True or False, got 'no'"):
        TopologyCallback(**{name: "no"})


def test_persistence_settings_without_persistence_warn() -> None:
    with pytest.warns(UserWarning, match=r"`min_persistence=0.3` has no effect"):
        TopologyConfig(min_persistence=0.3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        TopologyConfig(persistence=["persistent_betti"], min_persistence=0.3)
        TopologyConfig(persistence=["entropy"], persistence_dims=[1])
    with pytest.warns(UserWarning, match=r"`persistence_dims=\[0, 2\]` has no effect"):
        TopologyConfig(persistence_dims=[0, 2])


def test_threshold_callable_must_give_one_value_per_volume() -> None:
    volumes = torch.rand(4, 2, 5, 5)
    with pytest.raises(ValueError, match=r"returned a tensor of shape \(\) for 4 volumes.*shape \(4,\)"):
        sublevel_thresholds(volumes, lambda v: v.mean())
    with pytest.raises(ValueError, match=r"returned str"):
        sublevel_thresholds(volumes, lambda v: "mean")
    per_volume = sublevel_thresholds(volumes, lambda v: v.flatten(1).mean(1))
    assert torch.equal(per_volume, volumes.flatten(1).mean(1))
    assert sublevel_thresholds(volumes, lambda v: 0.5) == 0.5


# ------------------------------------------------------------------ messages that name the user's function
def test_input_fn_failure_names_it() -> None:
    data = TensorDataset(torch.rand(12, 4), torch.arange(12) % 3)

    def pick_image(item):
        return item["image"]

    with pytest.raises(SampleError, match=r"`input_fn` \(.*pick_image\) raised TypeError") as err:
        build_sample(DataLoader(data, batch_size=4), samples_per_class=2, max_samples=6, seed=0, input_fn=pick_image)
    assert isinstance(err.value.__cause__, TypeError)


def test_output_fn_returning_none_is_named() -> None:
    net = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU())
    capture = ActivationCapture(net, ["0"], lambda name, t: t, output_fn=lambda out: None)
    with capture, pytest.warns(UserWarning, match=r"`output_fn` returned NoneType for its Tensor output"):
        net(torch.rand(2, 4))
    assert "0" in capture.skipped
    # Every watched layer so: the error names output_fn, not the layers (which do run).
    from lightning_topo import analyse
    from lightning_topo.capture.errors import UnknownLayerError

    data = TensorDataset(torch.rand(6, 4), torch.arange(6) % 2)
    with pytest.warns(UserWarning), pytest.raises(UnknownLayerError, match=r"run, but no output .* fix `output_fn`"):
        analyse(net, data, layers=["0", "1"], output_fn=lambda out: None, progress=False)


def test_two_validation_dataloaders_warn(tmp_path: Path) -> None:
    class TwoLoaders(DigitsDataModule):
        def val_dataloader(self):
            return [super().val_dataloader(), super().val_dataloader()]

    callback = TopologyCallback(samples_per_class=2)
    trainer = quiet_trainer(tmp_path, [callback], max_epochs=1, limit_train_batches=1)
    model = Classifier(digits_cnn((4, 8)))
    model.validation_step = lambda batch, batch_idx, dataloader_idx=0: None
    with pytest.warns(UserWarning, match=r"2 validation dataloaders; the topology sample is drawn from the first"):
        trainer.fit(model, datamodule=TwoLoaders(classes=[0, 1]))
    assert len(callback.history) == 1

    # A dict of loaders (Lightning's CombinedLoader of named iterables): the first one, named (it was a KeyError).
    class NamedLoaders(DigitsDataModule):
        def val_dataloader(self):
            return {"clean": super().val_dataloader(), "other": super().val_dataloader()}

    named = TopologyCallback(samples_per_class=2)
    trainer = quiet_trainer(tmp_path, [named], max_epochs=1, limit_train_batches=1)
    with pytest.warns(UserWarning, match=r"2 validation dataloaders \['clean', 'other'\].*first one only \('clean'"):
        trainer.fit(model, datamodule=NamedLoaders(classes=[0, 1]))
    assert len(named.history) == 1 and named.history[0]["classes"] == [0, 1]


def test_validate_with_an_empty_first_loader_samples_the_next(tmp_path: Path) -> None:
    """``trainer.validate(model, [empty, loader])``: Lightning skips the empty loader; the sample is the next one's
    (it was "the validation dataset is empty"), and its values equal ``analyse`` on that loader."""
    from lightning_topo import analyse

    torch.manual_seed(0)
    model = Classifier(digits_cnn((4, 8)))
    model.validation_step = lambda batch, batch_idx, dataloader_idx=0: None
    data = TensorDataset(torch.rand(12, 1, 8, 8), torch.arange(12) % 3)
    empty = DataLoader(TensorDataset(torch.rand(0, 1, 8, 8), torch.zeros(0, dtype=torch.long)), batch_size=4)
    loader = DataLoader(data, batch_size=4)
    callback = TopologyCallback(samples_per_class=4)
    trainer = quiet_trainer(tmp_path, [callback])
    with pytest.warns(UserWarning, match=r"2 validation dataloaders; .* first non-empty one only \(dataloader_idx 1\)"):
        trainer.validate(model, [empty, loader])
    (record,) = callback.validate_history
    assert record["classes"] == [0, 1, 2]
    report = analyse(model, loader, samples_per_class=4, progress=False)
    omegas = [layer["omega"] for layer in record["layers"].values()]
    assert len(omegas) == len(report.layers) >= 2
    assert omegas == pytest.approx(report.omega.tolist(), rel=1e-6)
    assert record["decay_rate"] == pytest.approx(float(report.decay_rate), rel=1e-6)


# ------------------------------------------------------------------ the command line
def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {"MPLBACKEND": "Agg", "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-m", "lightning_topo", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def test_cli_epoch_lines_fresh_topology_warnings_plain_and_validate_prints_it(tmp_path: Path) -> None:
    text = (ROOT / "configs" / "digits_mlp.yaml").read_text()
    assert "        samples_per_class: 20\n" in text
    config = str(tmp_path / "every2.yaml")
    Path(config).write_text(
        text.replace("        samples_per_class: 20\n", "        samples_per_class: 5\n        every_n_epochs: 2\n")
    )
    short = ["--trainer.limit_train_batches", "2", "--trainer.max_epochs", "3", "--trainer.limit_val_batches", "2"]
    fit = _cli("fit", "--config", config, *short, cwd=tmp_path)
    assert fit.returncode == 0, fit.stderr[-3000:]
    # The package's warnings read as messages, without the package's source path and line.
    warned = "UserWarning: TopologyCallback: `limit_val_batches=2` limits"
    assert any(line.startswith(warned) for line in fit.stderr.splitlines()), fit.stderr[-3000:]
    assert "callbacks/topology.py:" not in fit.stderr
    epochs = {line.split(":")[0]: line for line in fit.stdout.splitlines() if line.startswith("[")}
    assert list(epochs) == ["[1/3] epoch 0", "[2/3] epoch 1", "[3/3] epoch 2"], fit.stdout[-2000:]
    assert "topology/decay_rate" in epochs["[2/3] epoch 1"]
    assert "topology/decay_rate" not in epochs["[1/3] epoch 0"] + epochs["[3/3] epoch 2"]
    assert "1 evaluation; epoch 1:" in fit.stdout

    # Validation every 2nd epoch: the epoch without one shows its training metrics only, not the last val_acc.
    (tmp_path / "sparse").mkdir()
    sparse = _cli(
        "fit", "--config", config, *short[:4], "--trainer.check_val_every_n_epoch", "2", cwd=tmp_path / "sparse"
    )
    assert sparse.returncode == 0, sparse.stderr[-3000:]
    lines = [line for line in sparse.stdout.splitlines() if line.startswith("[")]
    assert "(no validation)" in lines[2] and "val_acc" not in lines[2] and "train_loss" in lines[2], lines
    assert "(no validation)" not in lines[1] and "val_acc" in lines[1], lines

    ckpt = "outputs/digits_mlp/checkpoints/last.ckpt"
    validate = _cli("validate", "--config", config, "--ckpt_path", ckpt, cwd=tmp_path)
    assert validate.returncode == 0, validate.stderr[-3000:]
    head = [line for line in validate.stdout.splitlines() if line.startswith("lightning-topo validate: topology")]
    assert len(head) == 1 and "decay_rate" in head[0] and "theta" in head[0], validate.stdout[-2000:]
    assert "omega per layer:" in validate.stdout


def test_progress_bar_in_a_log_ends_at_100_percent() -> None:
    """In a piped log the bar's last line is the finished one (it was cleared, leaving the 0 % line)."""
    code = (
        "import torch; from torch.utils.data import TensorDataset; from lightning_topo import analyse; "
        "net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU(), torch.nn.Conv2d(2, 2, 3)); "
        "analyse(net, TensorDataset(torch.rand(12, 1, 9, 9), torch.arange(12) % 2), progress=True)"
    )
    proc = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    updates = [part for part in proc.stderr.replace("\r", "\n").splitlines() if "analyse (cubical)" in part]
    assert updates and "100%" in updates[-1] and "12/12" in updates[-1], proc.stderr[-2000:]


# ------------------------------------------------------------------ a second trial: analyse, data, outputs
def test_input_fn_gets_a_batch_and_a_wrong_first_axis_is_named() -> None:
    class Pairs(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return 12

        def __getitem__(self, i: int) -> dict:
            return {"a": torch.full((4,), float(i)), "b": torch.zeros(4), "label": i % 3}

    stacked = build_sample(
        Pairs(), samples_per_class=2, max_samples=6, seed=0, input_fn=lambda b: torch.stack([b["a"], b["b"]], 1)
    )
    assert stacked.inputs.shape == (6, 2, 4)
    assert torch.equal(stacked.inputs[:, 0, 0], stacked.indices.float())  # row i is dataset item indices[i]
    with pytest.raises(SampleError, match=r"shape \(2, 6, 4\) for a batch of 6 sampled inputs.*receives a batch"):
        build_sample(
            Pairs(), samples_per_class=2, max_samples=6, seed=0, input_fn=lambda b: torch.stack([b["a"], b["b"]])
        )


def test_padding_mask_left_behind_is_pointed_out() -> None:
    class Tokens(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return 8

        def __getitem__(self, i: int) -> dict:
            mask = torch.tensor([1, 1, 1, int(i % 2 == 0)])
            return {"input_ids": torch.arange(4) * mask, "attention_mask": mask, "labels": i % 2}

    sample = build_sample(Tokens(), samples_per_class=4, max_samples=8, seed=0)
    assert sample.inputs.shape == (8, 4)
    assert any("`attention_mask` with padding" in note and "forward_fn" in note for note in sample.notes)


def test_inputs_with_nan_are_left_out_and_named() -> None:
    x = torch.rand(12, 1, 6, 6)
    x[5, 0, 2, 2] = float("nan")
    x[7, 0, 0, 0] = float("inf")
    sample = build_sample(TensorDataset(x, torch.arange(12) % 2), samples_per_class=6, max_samples=12, seed=0)
    assert sorted(sample.indices.tolist()) == [i for i in range(12) if i not in (5, 7)]
    assert bool(torch.isfinite(sample.inputs).all())
    (note,) = [n for n in sample.notes if "NaN or Inf" in n]
    assert "2 validation input(s) at dataset indices [5, 7]" in note and "10 inputs remain" in note
    with pytest.raises(SampleError, match="every sampled validation input holds NaN or Inf"):
        build_sample(TensorDataset(x[[5, 7]], torch.tensor([0, 1])), samples_per_class=6, max_samples=12, seed=0)


def test_a_layer_without_tensor_output_ran_and_is_skipped_not_never_run() -> None:
    from lightning_topo import analyse

    class Note(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> None:
            return None

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.note, self.act = torch.nn.Conv2d(1, 2, 3), Note(), torch.nn.ReLU()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.note(x)
            return self.act(self.conv(x))

    data = TensorDataset(torch.rand(8, 1, 7, 7), torch.arange(8) % 2)
    with pytest.warns(UserWarning) as record:
        report = analyse(Net(), data, layers=["conv", "note", "act"], progress=False)
    texts = [str(w.message) for w in record]
    assert any("layer 'note' skipped" in t for t in texts)
    assert not any("never run" in t for t in texts), texts
    assert report.layers == ["conv", "act"] and math.isfinite(report.theta)


def test_cli_model_without_checkpoint_is_seeded_and_leaves_the_random_state() -> None:
    from lightning_topo.cli.analysis import load_model
    from lightning_topo.models import CNNClassifier

    before = torch.random.get_rng_state()
    with pytest.warns(UserWarning, match=r"freshly initialised CNNClassifier \(weights seeded with 3\)"):
        a = load_model(CNNClassifier, seed=3)
    assert torch.equal(torch.random.get_rng_state(), before)
    with pytest.warns(UserWarning):
        b, c = load_model(CNNClassifier, seed=3), load_model(CNNClassifier, seed=4)
    same = [torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)]
    other = [torch.equal(x, y) for x, y in zip(a.state_dict().values(), c.state_dict().values(), strict=True)]
    assert all(same) and not all(other)


def test_cli_lightning_module_from_a_plain_state_dict(tmp_path: Path) -> None:
    from lightning_topo.cli.analysis import load_model
    from lightning_topo.models import CNNClassifier

    trained = CNNClassifier()
    torch.save(trained.state_dict(), tmp_path / "sd.pt")
    loaded = load_model(CNNClassifier, str(tmp_path / "sd.pt"))
    assert all(
        torch.equal(x, y) for x, y in zip(trained.state_dict().values(), loaded.state_dict().values(), strict=True)
    )


def test_rank_help_is_a_whole_sentence(tmp_path: Path) -> None:
    proc = run_cli_here("rank", "--help", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "writes ranking.json, ranking.png, a report per model." in " ".join(proc.stdout.split())
    analyse_help = run_cli_here("analyse", "--help", cwd=tmp_path)
    assert analyse_help.returncode == 0 and "--analysis.threshold" in analyse_help.stdout
    assert "torch.sparse" not in analyse_help.stdout  # no list of torch.Tensor subclasses under the functions


def test_persistence_summaries_plot_and_a_list_volume_is_named() -> None:
    import matplotlib

    matplotlib.use("Agg")
    from lightning_topo.functional import cubical_persistence
    from lightning_topo.metrics import PersistenceSummaries

    metric = PersistenceSummaries(num_classes=2)
    metric.update(torch.rand(4, 6, 6), torch.tensor([0, 1, 0, 1]))
    fig, ax = metric.plot()
    assert fig is not None and len(ax.lines) == len(metric.keys)  # a series per summary
    diagrams = cubical_persistence(torch.rand(3, 5, 5))
    with pytest.raises(TypeError, match=r"`volume` must be an int or None, got \[1\]"):
        diagrams.select(volume=[1])
    assert torch.equal(diagrams.select(volume=1).index.unique(), torch.tensor([1]))


def test_report_table_shows_the_persistence_summaries_and_no_negative_zero() -> None:
    from lightning_topo import analyse
    from lightning_topo.analysis.report import _shown

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Conv2d(4, 4, 3), torch.nn.ReLU())
    data = TensorDataset(torch.rand(12, 1, 9, 9), torch.arange(12) % 2)
    report = analyse(net, data, progress=False, persistence=["total_persistence", "persistent_betti"])
    lines = report.table().splitlines()
    start = lines.index("total_persistence (mean over classes)")
    assert lines[start + 1].split()[-3:] == ["H0", "H1", "H2"]
    for i, _name in enumerate(report.layers):
        shown = [float(v) for v in lines[start + 2 + i].split()[2:]]
        expected = [float(report.mean_persistence()[f"total_persistence_{k}"][i]) for k in range(3)]
        assert shown == pytest.approx(expected, rel=1e-3, abs=1e-3)
    assert "persistent_betti (mean over classes)" in lines
    assert _shown(-0.00001) == "0.0000" and _shown(-0.25) == "-0.2500"


def test_png_charts_beside_a_tensorboard_logger(tmp_path: Path) -> None:
    from lightning.pytorch.loggers import TensorBoardLogger

    callback = TopologyCallback(samples_per_class=2, charts=["png"])
    logger = TensorBoardLogger(tmp_path, name="tb")
    _fit(tmp_path, [callback], max_epochs=1, logger=logger)
    assert callback.wait_for_charts(timeout=120)
    folder = Path(logger.log_dir) / "topology"
    assert sorted(p.name for p in folder.glob("*.png")) == ["betti_vs_depth.png", "decay.png", "omega_history.png"]
    assert not list(Path(logger.log_dir).glob("*.topology_figures"))  # no TensorBoard figures: not asked for


def test_every_layer_non_finite_is_one_message_about_the_model() -> None:
    from lightning_topo import analyse

    class Diverged(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1, self.conv2 = torch.nn.Conv2d(1, 2, 3), torch.nn.Conv2d(2, 2, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv2(self.conv1(x * float("nan")))

    data = TensorDataset(torch.rand(8, 1, 9, 9), torch.arange(8) % 2)
    with pytest.warns(UserWarning):
        report = analyse(Diverged(), data, layers=["conv1", "conv2"], progress=False)
    assert [w for w in report.warnings if "every watched layer (2) failed" in w and "model or its inputs" in w]
    assert not [w for w in report.warnings if "to leave it out" in w]


# ------------------------------------------------------------------ a failing forward pass on the sample
class _Steps(Classifier):
    """Counts training steps: a misconfigured callback must fail before the first one."""

    steps = 0

    def training_step(self, batch, batch_idx):
        type(self).steps += 1
        return super().training_step(batch, batch_idx)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"forward_fn": lambda model, x: model(x.pixels)}, r"`forward_fn` \(.*<lambda>\) raised AttributeError"),
        ({"output_fn": lambda out: out.hidden}, r"`output_fn` \(.*<lambda>\) raised AttributeError.*layer 'net\.0'"),
    ],
)
def test_failing_forward_or_output_fn_stops_the_fit_at_the_sanity_check(
    tmp_path: Path, kwargs: dict, pattern: str
) -> None:
    from lightning_topo.capture import ForwardError

    _Steps.steps = 0
    callback = TopologyCallback(samples_per_class=2, **kwargs)
    trainer = quiet_trainer(tmp_path, [callback], max_epochs=1, num_sanity_val_steps=2)  # Lightning's default
    with pytest.raises(TopologyMisconfiguration, match=pattern) as err:
        trainer.fit(_Steps(digits_cnn((4, 8))), datamodule=DigitsDataModule(classes=[0, 1, 2]))
    assert isinstance(err.value.__cause__, ForwardError)
    assert _Steps.steps == 0  # the run stopped before training


def test_model_that_does_not_take_the_sampled_inputs_names_the_fix() -> None:
    from lightning_topo import analyse
    from lightning_topo.capture import ForwardError

    class Dict(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(4, 4)

        def forward(self, batch: dict) -> torch.Tensor:
            return self.fc(batch["x"])

    data = TensorDataset(torch.rand(8, 4), torch.arange(8) % 2)
    with pytest.raises(ForwardError, match=r"`model\(inputs\)` on a batch of shape \(2, 4\) \(float32\).*`forward_fn="):
        analyse(Dict(), data, layers=["fc"], complex="rips", progress=False)
    report = analyse(Dict(), data, layers=["fc"], complex="rips", progress=False, forward_fn=lambda m, x: m({"x": x}))
    assert report.layers == ["fc"]


# ------------------------------------------------------------------ persistence summaries at the edges
def test_persistent_betti_at_infinity_keeps_the_essential_class() -> None:
    import numpy as np

    from lightning_topo.functional import cubical_betti, cubical_persistence
    from lightning_topo.functional.summaries import persistent_betti

    x = torch.rand(2, 4, 5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    diagrams = cubical_persistence(x)
    for t in (float("inf"), np.float32(0.5), float(x.max())):
        assert torch.equal(persistent_betti(diagrams, t, 0.0), cubical_betti(x, float(t)))
    assert persistent_betti(diagrams, float("inf"))[:, 0].tolist() == [1, 1]


def test_summaries_do_not_overflow_near_the_float64_limit() -> None:
    from lightning_topo.functional import cubical_persistence
    from lightning_topo.functional.summaries import persistence_entropy, persistent_betti, total_persistence

    big = cubical_persistence(torch.tensor([[1e308, -1e308, 1e308, 0.0, 5.0]], dtype=torch.float64))
    small = cubical_persistence(torch.tensor([[1.0, -1.0, 1.0, 0.0, 5e-308]], dtype=torch.float64))
    # H0 bars: the essential class (-1e308 to the max 1e308) and (0, 1e308): lifetimes 2:1.
    expected = -(2 / 3) * math.log(2 / 3) - (1 / 3) * math.log(1 / 3)
    assert persistence_entropy(big)[0, 0].item() == pytest.approx(expected)
    assert persistence_entropy(small)[0, 0].item() == pytest.approx(expected)  # the same bars, scaled
    assert persistent_betti(big, 1.0, 0.1)[0, 0].item() == 2  # (0, 1e308) lives half the range
    assert total_persistence(big, dims=0).shape == (1, 1)  # one dimension as an int, as cubical_persistence takes it


def test_the_sample_runs_under_the_trainers_precision(tmp_path: Path) -> None:
    model = Classifier(digits_cnn((4, 8)))
    seen: list[tuple[int, torch.dtype]] = []
    model.net[0].register_forward_hook(lambda module, args, out: seen.append((out.shape[0], out.dtype)))
    callback = TopologyCallback(samples_per_class=5)
    trainer = quiet_trainer(tmp_path, [callback], max_epochs=1, limit_train_batches=2, precision="bf16-mixed")
    trainer.fit(model, datamodule=DigitsDataModule(classes=[0, 1]))
    assert (10, torch.bfloat16) in seen and (10, torch.float32) not in seen  # the 10 sampled inputs, as validated
    assert math.isfinite(callback.history[-1]["decay_rate"])


# ------------------------------------------------------------------ layers named past their calls, sequence-first
def test_a_call_index_past_the_module_calls_is_an_error() -> None:
    from lightning_topo.capture import UnknownLayerError, watched_layers

    class Twice(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.block, self.head = torch.nn.Linear(3, 3), torch.nn.Linear(3, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.block(self.block(x)))

    with pytest.raises(UnknownLayerError, match=r"\['block#3'\].*'block' runs 2 times per forward pass"):
        watched_layers(Twice(), torch.zeros(1, 3), ["block#3", "head"])
    assert watched_layers(Twice(), torch.zeros(1, 3), ["block#2", "head"])[0] == ["block#2", "head"]


def test_a_sequence_first_layer_is_named_as_a_possible_cause() -> None:
    from lightning_topo import analyse

    class Seq(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn, self.fc = torch.nn.LSTM(4, 6), torch.nn.Linear(6, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, T, 4); the LSTM is sequence-first
            out, _ = self.rnn(x.transpose(0, 1))
            return self.fc(out[-1])

    data = TensorDataset(torch.rand(12, 5, 4), torch.arange(12) % 2)
    with pytest.warns(UserWarning, match=r"\['rnn'\] do not have the inputs on their first axis.*batch_first=True"):
        report = analyse(Seq(), data, layers=["rnn", "fc"], complex="rips", progress=False, k=2)
    assert report.layers == ["fc"] and not report.problems  # not measured, rather than a NaN layer
    assert [w for w in report.warnings if "batch_first=True" in w]


@pytest.mark.skipif(torch.cuda.is_available(), reason="the message is for machines without CUDA")
def test_functional_device_cuda_without_cuda_fails_before_the_work() -> None:
    from lightning_topo.functional import cubical_betti, cubical_persistence

    volumes = torch.rand(2, 3, 4, 4)
    with pytest.raises(ValueError, match=r"`device='cuda'`, but this machine has no CUDA device"):
        cubical_persistence(volumes, device="cuda")
    with pytest.raises(ValueError, match=r"`device='cuda'`, but this machine has no CUDA device"):
        cubical_betti(volumes, 0.5, device="cuda")
    with pytest.raises(ValueError, match=r"`device` must be a torch device or its name .* got 'gpu'"):
        cubical_betti(volumes, 0.5, device="gpu")


def test_the_logged_summary_name_points_to_its_summary() -> None:
    from lightning_topo.config import ConfigError

    with pytest.raises(ConfigError, match=r"'persistence_entropy' \(did you mean 'entropy'\?\)"):
        TopologyConfig(persistence=["persistence_entropy"])


def _cli_analyse_cnn(cwd: Path, *extra: str) -> subprocess.CompletedProcess:
    """``lightning-topo analyse`` of a fresh digits CNN on 2 digits per class, writing ``out/``, with ``extra``."""
    model = ["--model", "lightning_topo.models.CNNClassifier", "--data", "lightning_topo.datasets.DigitsDataModule"]
    return _cli(
        "analyse",
        *model,
        "--analysis.samples_per_class",
        "2",
        "--output_dir",
        "out",
        "--progress",
        "false",
        *extra,
        cwd=cwd,
    )


def test_cli_takes_one_summary_and_one_dimension_as_python_does(tmp_path: Path) -> None:
    from lightning_topo import TopologyReport

    proc = _cli_analyse_cnn(tmp_path, "--analysis.persistence", "entropy", "--analysis.persistence_dims", "1")
    assert proc.returncode == 0, proc.stderr
    report = TopologyReport.from_json(tmp_path / "out" / "report.json")
    assert report.persistence_keys == ["persistence_entropy_1"]


def test_rank_names_the_entry_whose_checkpoint_is_missing(tmp_path: Path) -> None:
    config = tmp_path / "rank.yaml"
    config.write_text(
        "data:\n  class_path: lightning_topo.datasets.DigitsDataModule\nmodels:\n"
        "  - {name: mlp, model: lightning_topo.models.MLPClassifier, ckpt: nowhere/mlp.ckpt}\n"
        "  - {name: cnn, model: lightning_topo.models.CNNClassifier}\n"
    )
    proc = run_cli_here("rank", "--config", str(config), cwd=tmp_path)
    assert proc.returncode == 2
    assert "'nowhere/mlp.ckpt' not found; pass an existing file to the `ckpt` of model 'mlp'" in proc.stderr
    assert "--ckpt" not in proc.stderr


def test_persistence_diagrams_compare_by_value() -> None:
    from lightning_topo.functional import cubical_persistence

    x = torch.rand(2, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    same, other = cubical_persistence(x), cubical_persistence(x.clone())
    assert same == other  # raised "Boolean value of Tensor ... is ambiguous"
    assert cubical_persistence(x + 1) != same and same != "diagrams"
    assert cubical_persistence(x, dims=(0,)) != same


def test_cli_numbers_have_no_negative_zero() -> None:
    from lightning_topo.cli.training import _g

    assert (_g(-0.0), _g(0.80412), _g(-0.5)) == ("0", "0.8041", "-0.5")


def test_layers_whose_b1_b2_are_zero_by_construction_are_named(tmp_path: Path, caplog) -> None:
    import logging

    callback = TopologyCallback(samples_per_class=2)
    with caplog.at_level(logging.INFO, logger="lightning.pytorch"):
        _fit(tmp_path, [callback], max_epochs=1)
    notes = [r.getMessage() for r in caplog.records if "by construction" in r.getMessage()]
    assert notes == [
        "TopologyCallback: layers ['net.6', 'net.8'] are vectors (one axis of size > 1 per input): "
        "b1 = b2 = 0 by construction, not measured."
    ]
    for name in ("net.6", "net.8"):  # per class: b0, b1, b2
        assert all(row[1] == row[2] == 0 for row in callback.history[-1]["layers"][name]["betti"])


def test_cli_shows_a_config_warning_once(tmp_path: Path) -> None:
    proc = _cli_analyse_cnn(tmp_path, "--analysis.min_persistence", "0.2")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("`min_persistence=0.2` has no effect") == 1, proc.stderr


def test_cli_model_without_its_arguments_says_model_args(tmp_path: Path) -> None:
    proc = run_cli_here(
        "analyse", "--model", "torch.nn.Linear", "--data", "lightning_topo.datasets.DigitsDataModule", cwd=tmp_path
    )
    assert proc.returncode == 2
    assert "missing 2 required positional arguments" in proc.stderr and "--model_args '{" in proc.stderr
    assert "checkpoint" not in proc.stderr.split("error:", 1)[1]


def test_cli_misspelt_option_names_its_close_matches(tmp_path: Path) -> None:
    base = ["--model", "lightning_topo.models.CNNClassifier", "--data", "lightning_topo.datasets.DigitsDataModule"]
    proc = run_cli_here("analyse", *base, "--analysis.persistance", "[entropy]", cwd=tmp_path)
    assert proc.returncode == 2
    assert "unknown option --analysis.persistance; did you mean --analysis.persistence" in proc.stderr
    proc = run_cli_here("rank", "--outputdir", "x", cwd=tmp_path)
    assert proc.returncode == 2 and "did you mean --output_dir?" in proc.stderr


def test_auto_layers_look_inside_a_backbone_and_head_of_sequentials(tmp_path: Path) -> None:
    import copy

    from lightning_topo.capture import resolve_layers

    class BackboneHead(Classifier):
        def __init__(self) -> None:
            super().__init__(torch.nn.Identity())
            del self.net
            self.backbone = torch.nn.Sequential(
                torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Conv2d(4, 8, 3), torch.nn.ReLU(), torch.nn.Flatten()
            )
            self.head = torch.nn.Sequential(torch.nn.Linear(128, 3))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.backbone(x))

    model = BackboneHead()
    callback = TopologyCallback(samples_per_class=2)
    quiet_trainer(tmp_path, [callback], limit_train_batches=2).fit(
        model, datamodule=DigitsDataModule(classes=[0, 1, 2])
    )
    assert callback.layer_names == ["backbone.0", "backbone.1", "backbone.2", "backbone.3", "head"]  # was 2 layers
    assert math.isfinite(callback.history[-1]["decay_rate"])

    class WithEma(torch.nn.Module):  # a network and its EMA copy: the copy's layers never run, and are dropped
        def __init__(self) -> None:
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Conv2d(4, 2, 3))
            self.ema = copy.deepcopy(self.net)

    assert resolve_layers(WithEma()) == ["net.0", "net.1", "net.2", "ema.0", "ema.1", "ema.2"]


def test_validate_summary_prints_the_persistence_summaries(tmp_path: Path) -> None:
    from lightning_topo.cli.training import validate_summary

    callback = TopologyCallback(samples_per_class=2, persistence=["entropy"], persistence_dims=[0])
    trainer = quiet_trainer(tmp_path, [callback], limit_train_batches=2)
    model, data = Classifier(digits_cnn((4, 8))), DigitsDataModule(classes=[0, 1, 2])
    trainer.validate(model, datamodule=data, verbose=False)
    lines = validate_summary(trainer)
    (line,) = [line for line in lines if line.startswith("  persistence_entropy_0 per layer: ")]
    record = callback.validate_history[-1]["layers"]["net.0"]["persistence"]["persistence_entropy_0"]
    assert f"net.0 {sum(record) / len(record) + 0.0:.4g}" in line


def test_a_failure_of_our_own_reduction_is_not_blamed_on_the_model() -> None:
    from lightning_topo.capture import run_on_sample

    net = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.ReLU())

    def broken_reduction(name: str, tensor: torch.Tensor) -> None:
        raise RuntimeError("kernel broke")

    with pytest.raises(RuntimeError, match="kernel broke") as err, ActivationCapture(net, ["0"], broken_reduction):
        run_on_sample(net, torch.zeros(4, 3), batch_size=2)
    assert type(err.value) is RuntimeError  # as raised, not a ForwardError saying "pass forward_fn"


# ------------------------------------------------------------------ a researcher's trial of the API
def test_decay_rate_called_on_one_layer_is_refused_and_keeps_its_state() -> None:
    from lightning_topo.metrics import DecayRate

    metric = DecayRate(num_layers=3)
    betti = torch.tensor([[[5, 2, 0]], [[3, 1, 0]], [[1, 0, 0]]])
    metric.update(betti)
    with pytest.raises(ValueError, match=r"layer=0\) would need the decay of one layer's batch"):
        metric(betti[0], layer=0)
    assert metric.count.tolist() == [[1], [1], [1]]  # torchmetrics' forward had reset it
    assert metric(betti).item() == pytest.approx(metric.compute().item())


def test_thresholds_are_read_as_documented_or_refused() -> None:
    import numpy as np

    from lightning_topo.functional import betti_curves, cubical_betti, omega, rips_betti

    volumes = torch.randn(2, 4, 4, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=r"`thresholds` must be 1-D .* got shape \(2, 2\)"):
        betti_curves(volumes, torch.tensor([[0.0, 1.0], [0.5, 2.0]]))  # read as 4 shared thresholds before
    with pytest.raises(ValueError, match=r"sublevel_thresholds"):
        betti_curves(volumes, "mean")
    assert torch.equal(betti_curves(volumes, 0.5)[:, 0], cubical_betti(volumes, 0.5))
    assert torch.equal(cubical_betti(volumes, np.float32(0.5)), cubical_betti(volumes, 0.5))
    with pytest.raises(ValueError, match=r"got 'mean'; .* sublevel_thresholds\(volumes, 'mean'\)"):
        cubical_betti(volumes, "mean")
    circle = torch.stack([torch.cos(torch.arange(24) / 24 * 6.2832), torch.sin(torch.arange(24) / 24 * 6.2832)], 1)
    assert rips_betti(circle, torch.tensor(0.5)).tolist() == rips_betti(circle, 0.5).tolist() == [1, 1]
    with pytest.raises(ValueError, match=r"label 0\.2 in `labels` is not a whole number.*labels\.argmax\(-1\)"):
        omega(torch.tensor([[1, 0, 0], [2, 0, 0]]), torch.tensor([0.2, 0.7]))


def test_metric_inputs_and_merges_are_checked() -> None:
    from lightning_topo.metrics import DecayRate, LayerwiseTopology, TopologicalComplexity

    metric = LayerwiseTopology(["a"], [0, 1], TopologyConfig())
    with pytest.raises(ValueError, match=r"non-negative Betti numbers, got a minimum of -1"):
        metric.update("a", torch.tensor([[-1, 0, 0], [2, 0, 0]]), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"integer Betti numbers, got dtype torch.float32"):
        metric.update("a", torch.tensor([[1.0, 0, 0], [2, 0, 0]]), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"num_classes=3 vs 2"):
        TopologicalComplexity(num_classes=3).merge_state(TopologicalComplexity(num_classes=2))
    with pytest.raises(ValueError, match=r"kind='normalised' vs 'theta'"):
        DecayRate(num_layers=2).merge_state(DecayRate(num_layers=2, kind="theta"))
    same = TopologicalComplexity(num_classes=2)
    same.update(betti=torch.tensor([[2, 1, 0]]), labels=torch.tensor([1]))
    merged = TopologicalComplexity(num_classes=2)
    merged.merge_state(same)
    assert merged.count.tolist() == [0, 1]


def test_a_rips_report_records_the_k_each_class_used() -> None:
    from lightning_topo import TopologyReport, analyse

    data = TensorDataset(torch.rand(70, 4), torch.cat([torch.zeros(60), torch.ones(10)]).long())
    net = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    report = analyse(net, data, layers=["0", "2"], complex="rips", progress=False)
    assert report.config["k"] == "auto" and report.config["k_per_class"] == {"0": 2, "1": 2}
    report = analyse(net, data, layers=["0", "2"], complex="rips", k=5, progress=False)
    assert report.config["k_per_class"] == {"0": 5, "1": 5}
    assert TopologyReport.from_dict(report.to_dict()).config["k_per_class"] == {"0": 5, "1": 5}


def test_rips_betti_refuses_a_k_it_would_ignore() -> None:
    from lightning_topo.functional import rips_betti

    with pytest.raises(ValueError, match=r"`k=3` is for metric='knn_hops'"):
        rips_betti(torch.rand(20, 2), 0.5, k=3)


@pytest.mark.parametrize("resumed", [{"min_persistence": 0.2}, {}], ids=["other-min-persistence", "no-persistence"])
def test_resume_with_other_persistence_settings_keeps_the_betti_history(tmp_path: Path, resumed: dict) -> None:
    first = TopologyCallback(samples_per_class=2, persistence=["persistent_betti"], min_persistence=0.1)
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    _fit(tmp_path, [first, ckpt], max_epochs=2, enable_checkpointing=True)
    persistence = {"persistence": ["persistent_betti"]} if resumed else {}
    second = TopologyCallback(samples_per_class=2, **persistence, **resumed)
    assert second.state_key == first.state_key  # the summaries' settings are not in the key
    trainer = quiet_trainer(tmp_path, [second], max_epochs=3, limit_train_batches=2)
    with pytest.warns(UserWarning, match=r"restored the checkpoint's topology history \(2 evaluations\)") as record:
        trainer.fit(Classifier(digits_cnn((4, 8))), datamodule=DigitsDataModule(classes=[0, 1, 2]),
                    ckpt_path=str(tmp_path / "ckpt" / "last.ckpt"))  # fmt: skip
    assert not [w for w in record if "is not restored" in str(w.message)]
    # Lightning restored it by key: no "callbacks used to create the checkpoint need to be provided" advice
    advice = [str(w.message) for w in record if "Please add the following callbacks" in str(w.message)]
    assert not [m for m in advice if "TopologyCallback" in m]  # (the resumed run has no ModelCheckpoint: named)
    assert [h["epoch"] for h in second.history] == [0, 1, 2]
    assert second.history[:2] == first.history


def test_the_resume_note_names_only_the_persistence_settings_in_use() -> None:
    """min_persistence is only the persistent Betti numbers' setting: where neither run computes them, it is no
    difference to report (it was said as one)."""
    saved = TopologyCallback(samples_per_class=2, persistence=["entropy"], persistence_dims=(0,)).state_dict()
    saved["settings"]["min_persistence"] = 0.3
    saved["history"] = [{"epoch": 0}]
    resumed = TopologyCallback(samples_per_class=2)
    with pytest.warns(UserWarning, match="restored the checkpoint's topology history") as record:
        resumed.load_state_dict(saved)
    (said,) = [str(w.message) for w in record if "restored the checkpoint" in str(w.message)]
    assert "persistence=['entropy']" in said and "persistence=None" in said
    assert "min_persistence" not in said
    assert "keep the persistence summaries their runs computed" in said


def test_a_checkpoint_of_the_earlier_state_key_is_restored(tmp_path: Path) -> None:
    """Checkpoints saved before the state key left the persistence summaries' settings out hold the state under the
    key built with them: a run with the same settings restores it, silently."""
    first = TopologyCallback(samples_per_class=2, persistence=["entropy"])
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    _fit(tmp_path, [first, ckpt], max_epochs=2, enable_checkpointing=True)
    path = tmp_path / "ckpt" / "last.ckpt"
    checkpoint = torch.load(path, weights_only=False)
    # The key as the callback built it then: Lightning's key of every numeric setting, the summaries' included.
    earlier = first._generate_state_key(**first.config.numeric_settings())
    assert earlier != first.state_key and "entropy" in earlier
    checkpoint["callbacks"][earlier] = checkpoint["callbacks"].pop(first.state_key)
    torch.save(checkpoint, path)
    second = TopologyCallback(samples_per_class=2, persistence=["entropy"])
    trainer = quiet_trainer(tmp_path, [second], max_epochs=3, limit_train_batches=2)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        trainer.fit(Classifier(digits_cnn((4, 8))), datamodule=DigitsDataModule(classes=[0, 1, 2]),
                    ckpt_path=str(path))  # fmt: skip
    assert [h["epoch"] for h in second.history] == [0, 1, 2]
    assert second.history[:2] == first.history
    assert not [w for w in record if "TopologyCallback" in str(w.message) and "restore" in str(w.message)]


def test_persistence_without_numba_fails_before_training(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lightning_topo.functional import MissingDependencyError

    # The kernels' module cannot be imported (as without numba): Python refuses a module set to None.
    monkeypatch.setitem(sys.modules, "lightning_topo.functional._persistence_kernels", None)
    steps = []

    class Counted(Classifier):
        def training_step(self, batch, batch_idx):  # type: ignore[no-untyped-def]
            steps.append(batch_idx)
            return super().training_step(batch, batch_idx)

    topo = TopologyCallback(samples_per_class=2, persistence=["entropy"])
    trainer = quiet_trainer(tmp_path, [topo], max_epochs=1, limit_train_batches=2)
    with pytest.raises(MissingDependencyError, match=r'pip install "lightning-topo\[fast\]"'):
        trainer.fit(Counted(digits_cnn((4, 8))), datamodule=DigitsDataModule(classes=[0, 1, 2]))
    assert steps == []  # at setup, not after an epoch
    # Without persistence the callback needs no numba kernels of persistence.
    plain = quiet_trainer(tmp_path, [TopologyCallback(samples_per_class=2)], max_epochs=1, limit_train_batches=2)
    plain.fit(Counted(digits_cnn((4, 8))), datamodule=DigitsDataModule(classes=[0, 1, 2]))
    assert steps == [0, 1]


def test_plot_keeps_the_fit_diagrams_apart_from_a_validate_run(tmp_path: Path) -> None:
    topo = TopologyCallback(samples_per_class=2, persistence=["entropy"], layers=["net.0"])
    model = Classifier(digits_cnn((4, 8)))
    trainer = quiet_trainer(tmp_path, [topo], max_epochs=1, limit_train_batches=2)
    trainer.fit(model, datamodule=DigitsDataModule(classes=[0, 1, 2]))
    fit_inputs = topo.last_diagrams["net.0"].num_volumes
    other = DataLoader(TensorDataset(torch.randn(30, 1, 8, 8), torch.zeros(30, dtype=torch.long)), batch_size=10)
    trainer.validate(model, other, verbose=False)
    assert topo.last_diagrams["net.0"].num_volumes != fit_inputs  # the latest evaluation: the validate run's

    def title(figures: dict) -> str:
        return figures["persistence_diagram/net.0"]._suptitle.get_text()

    assert f"({fit_inputs} inputs" in title(topo.plot())  # the fit's figures: its own diagrams
    validate_inputs = topo.last_diagrams["net.0"].num_volumes
    assert f"({validate_inputs} inputs" in title(topo.plot(validate=True))


def test_a_threshold_callable_of_the_wrong_shape_fails_before_training(tmp_path: Path) -> None:
    """`threshold=lambda v: v.mean()` (one number for the whole batch, a 0-d tensor) was refused only inside the
    first evaluation, after an epoch of training; the ordering pass at the sanity check tries it on each watched
    layer's volumes of one input now."""
    from lightning_topo.functional.thresholds import ThresholdRuleError

    steps = []

    class Counted(Classifier):
        def training_step(self, batch, batch_idx):  # type: ignore[no-untyped-def]
            steps.append(batch_idx)
            return super().training_step(batch, batch_idx)

    topo = TopologyCallback(samples_per_class=2, threshold=lambda v: v.mean())
    trainer = quiet_trainer(tmp_path, [topo], max_epochs=1, limit_train_batches=2, num_sanity_val_steps=1)
    with pytest.raises(
        TopologyMisconfiguration, match=r"layer 'net.0': the `threshold` callable <lambda> returned"
    ) as err:
        trainer.fit(Counted(digits_cnn((4, 8))), datamodule=DigitsDataModule(classes=[0, 1, 2]))
    assert isinstance(err.value.__cause__, ThresholdRuleError) and steps == []
    # One threshold per volume is fine: every volume's sublevel set at its own mean holds a component.
    by_hand = TopologyCallback(samples_per_class=2, threshold=lambda v: v.flatten(1).double().mean(1))
    trainer = quiet_trainer(tmp_path, [by_hand], max_epochs=1, limit_train_batches=2, num_sanity_val_steps=1)
    trainer.fit(Counted(digits_cnn((4, 8))), datamodule=DigitsDataModule(classes=[0, 1, 2]))
    layers = by_hand.history[-1]["layers"]
    assert len(layers) == len(by_hand.layer_names) and all(row[0] >= 1 for v in layers.values() for row in v["betti"])


def test_a_callback_reused_in_another_trainer_says_so(tmp_path: Path) -> None:
    """Lightning's callbacks keep their state over fits; a TopologyCallback reused in a new Trainer says that its
    history goes on (a seed loop with one callback mixed the runs silently). Resuming from a checkpoint does not."""
    topo = TopologyCallback(samples_per_class=2)
    _fit(tmp_path, [topo], max_epochs=1)
    assert len(topo.history) == 1
    with pytest.warns(UserWarning, match=r"already holds 1 evaluation of an earlier fit"):
        _fit(tmp_path, [topo], max_epochs=1)
    assert len(topo.history) == 2
    # A fit of the same trainer going on (a larger max_epochs) is no reuse.
    trainer = quiet_trainer(tmp_path, [topo], max_epochs=1, limit_train_batches=2)
    model, data = Classifier(digits_cnn((4, 8))), DigitsDataModule(classes=[0, 1, 2])
    with pytest.warns(UserWarning, match="already holds"):
        trainer.fit(model, datamodule=data)
    trainer.fit_loop.max_epochs = 2
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        trainer.fit(model, datamodule=data)
    assert not [w for w in record if "already holds" in str(w.message)]
    assert len(topo.history) == 4


def test_validate_summary_says_what_it_wrote(tmp_path: Path) -> None:
    """`lightning-topo validate` printed the topology but not where its metrics and figures went (`fit` does)."""
    from lightning.pytorch.loggers import CSVLogger

    from lightning_topo.cli.training import validate_summary

    callback = TopologyCallback(samples_per_class=2)
    trainer = quiet_trainer(tmp_path, [callback], logger=CSVLogger(tmp_path, name="logs"))
    trainer.validate(Classifier(digits_cnn((4, 8))), datamodule=DigitsDataModule(classes=[0, 1, 2]), verbose=False)
    lines = validate_summary(trainer)
    metrics = [line for line in lines if line.startswith("  metrics:")]
    figures = [line for line in lines if line.startswith("  figures:")]
    assert len(metrics) == 1 and metrics[0].endswith("metrics.csv"), lines
    assert len(figures) == 1 and "topology/validate/ (3 PNG files" in figures[0], lines
    assert Path(metrics[0].split()[-1]).is_file() or (Path.cwd() / metrics[0].split()[-1]).is_file()


def test_settings_that_make_no_number_are_refused_before_training() -> None:
    from lightning_topo.analysis import analyse
    from lightning_topo.config import ConfigError

    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU())
    data = TensorDataset(torch.randn(20, 3), torch.arange(20) % 2)
    # "meta" holds no values: `analyse` moved the model there and could not move it back (its weights were lost)
    with pytest.raises(ConfigError, match=r"`device='meta'` holds shapes, not values.*device=None"):
        analyse(net, data, device="meta", progress=False)
    assert all(p.device.type == "cpu" for p in net.parameters())
    # a seed torch.Generator cannot take failed at the first evaluation, after an epoch of training
    with pytest.raises(ConfigError, match=r"`seed` must be an integer in \[-2\*\*63, 2\*\*64 - 1\] \(torch"):
        TopologyConfig(seed=2**70)
    assert TopologyConfig(seed=2**64 - 1).seed == 2**64 - 1 and TopologyConfig(seed=-1).seed == -1
    # an infinite threshold: every sublevel set the whole volume (Omega 1) or empty (Omega 0, theta NaN)
    for value, what in ((math.inf, "the whole volume"), (-math.inf, "empty")):
        with pytest.raises(ConfigError, match=f"`threshold={value!r}` makes every sublevel set {what}"):
            TopologyConfig(threshold=value)


def test_point_cloud_settings_on_the_cubical_view_are_said() -> None:
    with pytest.warns(UserWarning, match=r"`k=5, maxdim=2` have no effect: point-cloud ones, and complex='cubical'"):
        TopologyConfig(k=5, maxdim=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        TopologyConfig()  # the defaults say nothing
        TopologyConfig(complex="rips", k=5, maxdim=2)
    # a keyword beside `config` (in Python: given on purpose) replaces its value; the config's k is then said
    with pytest.warns(UserWarning, match="`k=3` has no effect: a point-cloud setting"):
        callback = TopologyCallback(TopologyConfig(complex="rips", k=3), complex="cubical")
    assert callback.config.complex == "cubical"


def test_thinned_automatic_choice_is_said(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """``layers="auto"`` keeping ``max_layers`` of more candidates says so (it said "watching 32 layers" only)."""
    import logging

    from lightning_topo import analyse

    torch.manual_seed(0)
    deep = torch.nn.Sequential(*[torch.nn.Sequential(torch.nn.Linear(6, 6), torch.nn.Tanh()) for _ in range(10)])
    data = TensorDataset(torch.rand(12, 6), torch.arange(12) % 2)
    with pytest.warns(UserWarning, match=r"automatic choice of 10 layers thinned to 4, evenly spaced \(max_layers=4"):
        report = analyse(deep, data, max_layers=4, progress=False)
    assert len(report.layers) == 4
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        analyse(deep, data, max_layers=10, samples_per_class=6, progress=False)  # nothing thinned: no warning

    class Deep(Classifier):
        def __init__(self) -> None:
            super().__init__(deep)

        def validation_step(self, batch, batch_idx):  # type: ignore[no-untyped-def]
            return None

    callback = TopologyCallback(max_layers=4, samples_per_class=6)
    trainer = quiet_trainer(tmp_path, [callback], max_epochs=1, limit_train_batches=1)
    with caplog.at_level(logging.INFO), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(Deep(), DataLoader(data, batch_size=6), DataLoader(data, batch_size=6))
    said = [r.getMessage() for r in caplog.records if "watching" in r.getMessage()]
    assert any("watching 4 layers (the automatic choice of 10 layers thinned to 4" in m for m in said), said


def test_researcher_api_edges() -> None:
    """From a TDA researcher's audit: ``summary_keys`` (named in ``persistence_summaries``' docstring) is exported,
    and a list of thresholds is refused with the conversion to use."""
    from lightning_topo.functional import cubical_betti, summary_keys

    assert summary_keys(["entropy"], [0, 2]) == ["persistence_entropy_0", "persistence_entropy_2"]
    with pytest.raises(ValueError, match=r"must be a number, a tensor or a NumPy array, got list; torch.tensor"):
        cubical_betti(torch.rand(2, 4, 4), [0.1, 0.2])
    assert cubical_betti(torch.rand(2, 4, 4), torch.tensor([0.1, 0.2])).shape == (2, 3)


def test_setting_warnings_point_at_the_users_line_on_rank_zero_only() -> None:
    """A setting with no effect is said at the user's ``TopologyCallback(...)`` line (it pointed inside the
    package), and once under a DDP script that Lightning launches once per process (rank from the environment)."""
    with pytest.warns(UserWarning, match=r"`k=5` has no effect") as caught:
        TopologyCallback(k=5)
    assert [w.filename for w in caught if "k=5" in str(w.message)] == [__file__]
    script = (
        "import warnings\nwarnings.simplefilter('always')\nfrom lightning_topo import TopologyConfig\n"
        "TopologyConfig(k=5)\n"
    )
    for rank, count in (("0", 1), ("1", 0)):
        run = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
            env={"PATH": "/usr/bin:/bin", "LOCAL_RANK": rank},
        )  # fmt: skip
        assert run.returncode == 0 and run.stderr.count("has no effect") == count, run.stderr


def test_labels_that_are_not_classes() -> None:
    """From an audit of tasks other than classification: more classes than `max_samples` (the lowest 200 ids were
    taken), integer regression targets (negative ones dropped as "ignore"), classes of one input, one class."""
    from lightning_topo.capture.sampling import NO_CLASS_FIX

    gen = torch.Generator().manual_seed(0)
    labels = torch.repeat_interleave(torch.arange(1000), 2)
    many = TensorDataset(torch.rand(2000, 3, generator=gen), labels)
    sample = build_sample(many, samples_per_class=20, max_samples=200, seed=0)
    assert len(sample.classes) == 200 and max(sample.classes) > 500 and sample.classes != list(range(200))
    assert any("1000 classes, more than max_samples=200: a seeded choice" in n for n in sample.notes)
    other = build_sample(many, samples_per_class=20, max_samples=200, seed=1)
    assert other.classes != sample.classes

    prices = TensorDataset(torch.rand(300, 3, generator=gen), torch.randint(-50, 50, (300,), generator=gen))
    with pytest.raises(SampleError, match=r"distinct negative values .* not classes \(a regression target's\?\)"):
        build_sample(prices, samples_per_class=20, max_samples=200, seed=0)
    counts = TensorDataset(torch.rand(300, 3, generator=gen), torch.arange(300) % 150)
    sample = build_sample(counts, samples_per_class=20, max_samples=200, seed=0)
    assert any("per class: each class's Betti numbers are those of one or two inputs" in n for n in sample.notes)

    with pytest.raises(SampleError) as err:
        build_sample(TensorDataset(torch.rand(9, 3), torch.rand(9, 4, 4)), samples_per_class=2, max_samples=9, seed=0)
    assert NO_CLASS_FIX in str(err.value) and "target_fn=lambda item: 0" in str(err.value)

    from lightning_topo import analyse

    net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.ReLU(), torch.nn.Linear(8, 8), torch.nn.ReLU())
    with pytest.warns(UserWarning, match=r"every input has the same label .* one class of samples_per_class=20"):
        report = analyse(net, TensorDataset(torch.rand(60, 3)), progress=False)  # no labels: one class
    assert len(report.labels) == 20


def test_a_config_passed_in_is_not_said_twice() -> None:
    with pytest.warns(UserWarning) as caught:
        TopologyCallback(config=TopologyConfig(k=3))
    said = [w for w in caught if "`k=3` has no effect" in str(w.message)]
    assert len(said) == 1 and said[0].filename == __file__
