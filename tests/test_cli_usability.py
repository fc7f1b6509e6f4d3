"""Usability of the `lightning-topo` command line found by a new-user audit, through `cli.main` in the test process
(`test_cli.run_cli_here`: the same commands without a ~10 s Lightning import each; `test_cli.py` and the README's
commands run the real `python -m lightning_topo`): a run that reached its end does not print a command that stops
at once, an early-stopped run names its stopper, earlier checkpoints are kept, bad values are one-line usage
errors, `predict` says what it did and `--help` documents every argument."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Trainer
from test_cli import CONFIGS, SHORT, _help_entries, _ok, fit_summary, resume_args, run_cli_here

from lightning_topo.cli.arguments import refused_argument
from lightning_topo.config import ConfigError, TopologyConfig

MLP = ["--config", str(CONFIGS / "digits_mlp.yaml")]
CHECKPOINTS = "outputs/digits_mlp/checkpoints"


def _error_line(proc: subprocess.CompletedProcess) -> str:
    """The one `error:` line of a command that exited 2, without a traceback."""
    assert proc.returncode == 2, f"exit {proc.returncode}\n{proc.stderr[-3000:]}"
    lines = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return lines[0]


def _files(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def test_max_steps_run_prints_a_resume_command_that_trains_further(tmp_path: Path) -> None:
    """A run ended by max_steps: the summary says so and its command doubles max_steps (the same max_steps stopped
    the resumed run at once and printed the same command again)."""
    limits = ["--trainer.max_epochs", "5", "--trainer.limit_train_batches", "3", "--trainer.max_steps", "3"]
    first = _ok(run_cli_here("fit", *MLP, *limits, cwd=tmp_path))
    head, items = fit_summary(first.stdout)
    assert "(max_steps=3 reached)" in head, head
    args = resume_args(items)
    assert args[-4:] == ["--ckpt_path", f"{CHECKPOINTS}/last.ckpt", "--trainer.max_steps", "6"], args
    assert args.count("--trainer.max_steps") == 1

    second = _ok(run_cli_here(*args, cwd=tmp_path))  # exactly the printed command
    head, items = fit_summary(second.stdout)
    assert "(max_steps=6 reached)" in head and "[2/5] epoch 1:" in second.stdout, second.stdout[-2000:]
    assert torch.load(tmp_path / CHECKPOINTS / "last.ckpt", weights_only=True)["global_step"] == 6
    assert resume_args(items)[-2:] == ["--trainer.max_steps", "12"]


def test_an_early_stopped_run_names_its_stopper_and_what_resuming_does(tmp_path: Path) -> None:
    """A run stopped by EarlyStopping said "stopped early" and offered a resume command that trained one epoch and
    stopped again without a word: the summary names the callback and its reason, and the resume line says what the
    resumed run will do, which the printed command then does."""
    # val_loss < 1000 at every check, whatever the training did: the callback stops the run at its first check
    stopper = ["--trainer.callbacks+", "lightning.pytorch.callbacks.EarlyStopping"]
    stopper += ["--trainer.callbacks.monitor", "val_loss", "--trainer.callbacks.stopping_threshold", "1000"]
    limits = ["--trainer.max_epochs", "5", "--trainer.limit_train_batches", "3"]
    first = _ok(run_cli_here("fit", *MLP, *limits, *stopper, cwd=tmp_path))
    head, items = fit_summary(first.stdout)
    assert re.search(
        r"finished 1 epoch \(stopped early by EarlyStopping: Stopping threshold reached: val_loss = "
        r"\d+(\.\d{1,4})? < 1000(\.0)?\)",  # in 4 digits, not Lightning's 2.279132843017578
        head,
    ), head
    (resume,) = items["resume"]
    assert resume.startswith(
        "EarlyStopping stopped this run and resumes with its state: the resumed run stops at its "
        "next check if the same condition holds"
    ), resume
    command = shlex.split(resume[resume.index("lightning-topo fit ") :])
    assert command[-2:] == ["--ckpt_path", f"{CHECKPOINTS}/last.ckpt"] and "--trainer.max_epochs" in command

    second = _ok(run_cli_here(*command[1:], cwd=tmp_path))  # exactly the printed command
    head, _ = fit_summary(second.stdout)
    assert "finished 2 epochs (stopped early by EarlyStopping" in head, head
    assert "(1 of them trained by this run, resumed at epoch 1)" in head, head
    assert torch.load(tmp_path / CHECKPOINTS / "last.ckpt", weights_only=True)["epoch"] == 1

    # The callback's state holds its message: a resumed run that the callback did not stop (val_loss < 0 never; 2
    # checks < patience 3) ended at max_epochs, not "stopped early"
    never = [arg if arg != "1000" else "0" for arg in command[1:]]
    never[never.index("--trainer.max_epochs") + 1] = "4"
    third = _ok(run_cli_here(*never, cwd=tmp_path))
    head, items = fit_summary(third.stdout)
    assert head.startswith("lightning-topo fit: finished 4 epochs in ") and "stopped" not in head, head
    assert "stopped this run" not in items["resume"][0] and "--trainer.max_epochs 8" in items["resume"][0]

    # Stopped in the last epoch it was allowed: the resume command doubles max_epochs, and still says that the
    # callback would stop the resumed run (the doubled limit alone would not make it train on)
    last = tmp_path / "last_epoch"
    last.mkdir()
    limits[limits.index("--trainer.max_epochs") + 1] = "1"
    head, items = fit_summary(_ok(run_cli_here("fit", *MLP, *limits, *stopper, cwd=last)).stdout)
    assert "finished 1 epoch (stopped early by EarlyStopping: Stopping threshold reached" in head, head
    (resume,) = items["resume"]
    assert resume.startswith("EarlyStopping stopped this run and resumes with its state"), resume
    assert resume.endswith(f"--ckpt_path {CHECKPOINTS}/last.ckpt --trainer.max_epochs 2"), resume
    assert "--trainer.max_epochs 1 " not in resume, resume


def test_fast_dev_run_saves_nothing_and_offers_no_resume(tmp_path: Path) -> None:
    """fast_dev_run is a trial: it leaves a real run's checkpoints as they were (Lightning 2.6 wrote last.ckpt at
    its end) and its summary offers the command of a real run, not a resume that stops at once."""
    _ok(run_cli_here("fit", *MLP, *SHORT, cwd=tmp_path))
    before = _files(tmp_path / CHECKPOINTS)
    assert set(before) == {"digits_mlp.ckpt", "last.ckpt"}
    trial = _ok(run_cli_here("fit", *MLP, "--trainer.fast_dev_run", "true", cwd=tmp_path))
    assert _files(tmp_path / CHECKPOINTS) == before
    head, items = fit_summary(trial.stdout)
    assert "fast_dev_run" in head and "checkpoint" not in items, trial.stdout[-2000:]
    (resume,) = items["resume"]
    real = shlex.split(resume.split("for a real run: ", 1)[1])
    assert real == ["lightning-topo", "fit", *MLP], resume
    assert "--ckpt_path" not in resume


def test_a_new_fit_refuses_to_overwrite_an_earlier_runs_checkpoints(tmp_path: Path) -> None:
    """The configs write fixed names (enable_version_counter: false): running `fit` again stops with one line naming
    the files, how to resume and `--overwrite_checkpoints true`, which replaces them."""
    _ok(run_cli_here("fit", *MLP, *SHORT, cwd=tmp_path))
    before = _files(tmp_path / CHECKPOINTS)
    line = _error_line(run_cli_here("fit", *MLP, *SHORT, cwd=tmp_path))
    assert f"{CHECKPOINTS}/digits_mlp.ckpt" in line and f"{CHECKPOINTS}/last.ckpt" in line, line
    assert f"--ckpt_path {CHECKPOINTS}/last.ckpt" in line and "--overwrite_checkpoints true" in line, line
    assert _files(tmp_path / CHECKPOINTS) == before

    again = _ok(
        run_cli_here("fit", *MLP, *SHORT, "--seed_everything", "1", "--overwrite_checkpoints", "true", cwd=tmp_path)
    )
    after = _files(tmp_path / CHECKPOINTS)
    assert set(after) == set(before) and all(after[name] != before[name] for name in before)
    assert "--overwrite_checkpoints" not in resume_args(fit_summary(again.stdout)[1])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["fit", *MLP, "--data.batch_size", "0"],
            "cannot build DigitsDataModule: `batch_size` must be an integer >= 1, got 0.",
        ),
        (["fit", "--config", str(CONFIGS / "digits_cnn.yaml"), "--data.size", "0"], "`size` must be an integer >= 1"),
        (["fit", *MLP, "--data.num_workers", "-1"], "`num_workers` must be an integer >= 0, got -1."),
        (
            ["fit", "--config", str(CONFIGS / "d1_relu.yaml"), "--data.batch_size", "0"],
            "`batch_size` must be an integer >= 1, got 0.",
        ),
        (
            ["analyse", "--config", str(CONFIGS / "analyse_digits.yaml"), "--data.init_args.batch_size", "0"],
            "`batch_size` must be an integer >= 1, got 0.",
        ),
    ],
)
def test_a_bad_data_size_is_a_one_line_usage_error(tmp_path: Path, args: list[str], message: str) -> None:
    """batch_size 0 and size 0 exited 1 from deep inside the DataLoader / the interpolation; now exit 2 naming the
    value and the valid range, before anything runs."""
    assert message in _error_line(run_cli_here(*args, cwd=tmp_path))


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["fit", "--data.batch_size", "0"],
            "--data.batch_size sets an argument of the data module, but no data module is chosen: choose one first, "
            "with --data CLASS (e.g. --data lightning_topo.datasets.DigitsDataModule) or a --config file with a "
            "`data:` entry (as configs/digits_cnn.yaml has); `lightning-topo fit --help` lists the classes.",
        ),
        (
            ["validate", "--data", "DigitsDataModule", "--model.lr=0.1"],
            "--model.lr sets an argument of the model, but no model is chosen: choose one first, with --model CLASS "
            "(e.g. --model lightning_topo.models.CNNClassifier) or a --config file",
        ),
        (
            ["fit", "--data", "DigitsDataModule", "--data.batch_size", "0", "--model", "CNNClassifier"],
            "cannot build DigitsDataModule: `batch_size` must be an integer >= 1, got 0.",
        ),
        (
            ["fit", "--config", str(CONFIGS / "digits_cnn.yaml"), "--model.init_args.channels", "[8, 0]"],
            "cannot build CNNClassifier: `channels[1]` must be an integer >= 1, got 0.",
        ),
        (
            ["fit", *MLP, "--model.lr", "-0.5"],
            "cannot build MLPClassifier: `lr` must be a finite number >= 0, got -0.5.",
        ),
    ],
)
def test_a_model_or_data_argument_error_names_the_class_not_a_union(tmp_path: Path, args: list[str], line: str) -> None:
    """`fit --data.batch_size 0` without a data module, and a value a model or data class refuses, printed
    jsonargparse's list of every type of the field's Union (LightningDataModule, NoneType) around the message:
    now one line naming the class and its message, or how to choose a class. A conv layer of 0 channels and a
    negative learning rate were accepted and failed later (in the callback's forward pass, in the optimizer)."""
    error = _error_line(run_cli_here(*args, cwd=tmp_path))
    assert error.startswith(f"lightning-topo {args[0]}: error: {line}"), error
    assert "Union" not in error and "NoneType" not in error, error


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["fit", *MLP, "--trainer.precision", "foo"],
            "--trainer.precision: Trainer's `precision` must be one of 64, 32, 16, 'transformer-engine', ",
        ),
        (["fit", *MLP, "--trainer.max_epochs", "x"], "--trainer.max_epochs: Trainer's `max_epochs` must be an integer"),
        (["fit", *MLP, "--model.init_args.lr", "abc"], "--model.init_args.lr: MLPClassifier's `lr` must be a number, "),
        (
            ["fit", "--config", str(CONFIGS / "digits_cnn.yaml"), "--model.channels", "[8, x]"],
            "--model.channels: CNNClassifier's `channels` must be a list of integers or null, got '[8, x]'.",
        ),
        (
            ["validate", "--model", "CNNClassifier", "--data", "DigitsDataModule", "--data.flatten=maybe"],
            "--data.flatten: DigitsDataModule's `flatten` must be a boolean (true/false), got 'maybe'.",
        ),
        (
            ["fit", *MLP, "--model.nope", "1"],
            "--model.nope: MLPClassifier has no argument `nope`; its arguments: in_features, hidden, depth, ",
        ),
        (
            ["fit", *MLP, "--data.init_args.batchsize", "8"],
            "--data.init_args.batchsize: DigitsDataModule has no argument `batchsize` (did you mean `batch_size`?); ",
        ),
        (
            ["fit", *MLP, "--trainer.callbacks=[{class_path: EarlyStopping, init_args: {monitor: x, patience: p}}]"],
            "--trainer.callbacks[0]: EarlyStopping's `patience` must be an integer, got 'p'.",
        ),
        (
            ["analyse", "--config", str(CONFIGS / "analyse_digits.yaml"), "--data.init_args.batch_size", "abc"],
            "--data.init_args.batch_size: DigitsDataModule's `batch_size` must be an integer, got 'abc'.",
        ),
        (
            ["analyse", "--config", str(CONFIGS / "analyse_digits.yaml"), "--analysis.seed", "x"],
            "--analysis.seed: `seed` must be an integer, got 'x'.",
        ),
        (
            ["fit", *MLP, "--trainer.callbacks=[{class_path: lightning_topo.TopologyCallback, init_args: {seed: x}}]"],
            "--trainer.callbacks: TopologyCallback seed: `seed` must be an integer, got 'x'.",
        ),
        (
            ["fit", *MLP, "--data", "DigitsDataModul"],
            "--data: no data module class named 'DigitsDataModul' is imported (did you mean `DigitsDataModule`",
        ),
        (
            ["fit", *MLP, "--optimizer", "Adamm"],
            "--optimizer: no optimizer class named 'Adamm' is imported (did you mean `Adam`",
        ),
        (
            ["fit", *MLP, "--model", "lightning_topo.models.CNNClassifer"],
            "--model: cannot import 'lightning_topo.models.CNNClassifer' (AttributeError: ",
        ),
        (
            ["fit", *MLP, "--model", "torch.nn.ReLU"],
            "--model: 'torch.nn.ReLU' is a class, not a subclass of LightningModule (a model class).",
        ),
        (["fit", *MLP, "--seed_everything", "abc"], "--seed_everything must be a boolean (true/false) or an integer"),
        (
            # analyse takes any torch.nn.Module: ReLU is a model there, and the bad value is the data's
            ["analyse", "--model", "torch.nn.ReLU", "--data", "DigitsDataModule", "--data.batch_size", "x"],
            "--data.batch_size: DigitsDataModule's `batch_size` must be an integer, got 'x'.",
        ),
        (
            ["fit", *MLP, "--trainer.maxepochs", "3"],
            "--trainer.maxepochs: Trainer has no argument `maxepochs` (did you mean `max_epochs`?); --help lists ",
        ),
    ],
)
def test_a_value_an_argument_type_refuses_names_the_option_and_the_type(
    tmp_path: Path, args: list[str], line: str
) -> None:
    """`--trainer.precision foo`, `--model.init_args.lr abc` or an argument the class does not have printed
    jsonargparse's list of every type of the field's Union (for the model and data: the subtypes
    LightningModule / NoneType and a NestedArg repr) around the reason: now one line naming the option, the class,
    what the argument takes and the value (or the closest argument name)."""
    error = _error_line(run_cli_here(*args, cwd=tmp_path))
    assert error.startswith(f"lightning-topo {args[0]}: error: {line}"), error
    assert "Union" not in error and "NoneType" not in error and "NestedArg" not in error, error


@pytest.mark.parametrize(
    ("old", "new", "line"),
    [
        ("    lr: 0.01\n", "    lr: abc\n", "model.init_args.lr in @: MLPClassifier's `lr` must be a number, got"),
        ("  max_epochs: 10\n", "  max_epochs: ten\n", "trainer.max_epochs in @: Trainer's `max_epochs` must be an"),
        (
            "    batch_size: 64\n",
            "    batchsize: 64\n",
            "data.init_args.batchsize in @: DigitsDataModule has no argument `batchsize` (did you mean `batch_size`?)",
        ),
        (
            "  class_path: lightning_topo.models.MLPClassifier\n",
            "  class_path: lightning_topo.models.MLPClassifer\n",
            "model in @: cannot import 'lightning_topo.models.MLPClassifer' (AttributeError: ",
        ),
        (
            "  class_path: lightning_topo.datasets.DigitsDataModule\n",
            "  class_path: DigitsDataModul\n",
            "data in @: no data module class named 'DigitsDataModul' is imported (did you mean `DigitsDataModule`",
        ),
        (
            "        save_last: true",
            "        save_lst: true",
            "trainer.callbacks[1] in @: ModelCheckpoint has no argument `save_lst` (did you mean `save_last`?)",
        ),
        (
            "        samples_per_class: 20\n",
            "        samples_per_clas: 20\n",
            "trainer.callbacks[0] in @: TopologyCallback has no argument `samples_per_clas` (did you mean `samples_per",
        ),
        (
            "      name: logs\n",
            "      nme: logs\n",
            "trainer.logger in @: CSVLogger has no argument `nme` (did you mean `name`?); its arguments: save_dir,",
        ),
    ],
)
def test_a_config_file_value_of_the_wrong_type_names_the_file_entry(
    tmp_path: Path, old: str, new: str, line: str
) -> None:
    """The same refusals in a --config file printed the Union list with the whole `model:` entry as a dict (for the
    callbacks: every subtype of `Callback` and the whole list): now one line naming the entry and the file (``@`` in
    ``line``)."""
    config = (CONFIGS / "digits_mlp.yaml").read_text()
    assert config.count(old) == 1
    bad = tmp_path / "bad.yaml"
    bad.write_text(config.replace(old, new))
    error = _error_line(run_cli_here("fit", "--config", str(bad), cwd=tmp_path))
    assert error.startswith(f"lightning-topo fit: error: {line.replace('@', str(bad))}"), error
    assert "Union" not in error and "NoneType" not in error, error


def test_layers_plus_appending_to_auto_is_refused_naming_the_fix(tmp_path: Path) -> None:
    """`--analysis.layers+ net.0` appends to the default 'auto', giving ['auto', 'net.0']: refused with one line
    giving the list to pass instead; ['auto'] alone is 'auto'."""
    args = ["analyse", "--config", str(CONFIGS / "analyse_digits.yaml"), "--analysis.layers+", "net.0"]
    line = _error_line(run_cli_here(*args, cwd=tmp_path))
    assert "`layers` lists 'auto' with module names ['net.0']" in line and "--analysis.layers '[net.0]'" in line
    assert TopologyConfig(layers=["auto"]).layers == "auto"
    assert TopologyConfig(layers=["net.0", "net.2"]).layers == ("net.0", "net.2")
    with pytest.raises(ConfigError, match=r"'auto' .* stands alone"):
        TopologyConfig(layers=["net.*", "auto"])


def test_predict_says_what_it_predicted_and_saves_it(tmp_path: Path) -> None:
    """`predict` printed nothing; now one line (how many predictions, of which checkpoint, the first ones) and the
    file it saved them to, which holds them."""
    _ok(run_cli_here("fit", *MLP, *SHORT, cwd=tmp_path))
    ckpt = f"{CHECKPOINTS}/digits_mlp.ckpt"
    proc = _ok(run_cli_here("predict", *MLP, "--ckpt_path", ckpt, cwd=tmp_path))
    head, saved = proc.stdout.strip().splitlines()[-2:]
    match = re.fullmatch(rf"lightning-topo predict: (\d+) predictions \(\d+ batches\) of {ckpt}; first: (\[.*\])", head)
    assert match, proc.stdout[-2000:]
    assert saved.startswith("  saved to outputs/digits_mlp/predictions.pt (a torch.int64 tensor of shape"), saved
    predictions = torch.load(tmp_path / "outputs/digits_mlp/predictions.pt", weights_only=True)
    assert predictions.shape == (int(match[1]),) and predictions[:10].tolist() == json.loads(match[2])
    assert int(predictions.min()) >= 0 and int(predictions.max()) <= 9


HELP = [
    ("--model.help", "lightning_topo.models.CNNClassifier"),
    ("--model.help", "lightning_topo.models.MLPClassifier"),
    ("--data.help", "lightning_topo.datasets.DigitsDataModule"),
    ("--data.help", "lightning_topo.datasets.NaitzatDataModule"),
    ("--trainer.callbacks.help", "lightning_topo.TopologyCallback"),
    ("--trainer.callbacks.help", "lightning_topo.TopologyEarlyStopping"),
]


@pytest.mark.parametrize(("option", "class_path"), HELP)
def test_fit_help_describes_every_argument_of_our_classes(tmp_path: Path, option: str, class_path: str) -> None:
    """Every argument of the models, data modules and callbacks has its docstring entry in `fit`'s help (the CNN's
    channels, the MLP's sizes, num_workers had none), and an argument's help is the argument's entry, not an
    attribute's of the same name (TopologyEarlyStopping.min_delta showed the attribute)."""
    proc = _ok(run_cli_here("fit", option, class_path, cwd=tmp_path))
    prefix = option.removesuffix("help")
    entries = {name: text for name, text in _help_entries(proc.stdout).items() if name.startswith(prefix)}
    assert len(entries) >= 3, proc.stdout[-2000:]
    undocumented = [name for name, text in entries.items() if text.strip().startswith("(type:")]
    assert not undocumented, f"{class_path}: no help for {undocumented}"
    if class_path.endswith("TopologyEarlyStopping"):
        assert entries[f"{prefix}min_delta"].strip().startswith("smallest change that counts as an improvement")


def test_fit_help_lists_the_bundled_data_modules(tmp_path: Path) -> None:
    proc = _ok(run_cli_here("fit", "--help", cwd=tmp_path))
    assert "lightning_topo.datasets.DigitsDataModule" in " ".join(proc.stdout.split())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["analyse", "--config", str(CONFIGS / "analyse_digits.yaml"), "--analysis.persistence", "entropyy"],
            "--analysis.persistence: `persistence` has unknown summary 'entropyy' (did you mean 'entropy'?)",
        ),
        (
            ["analyse", "--config", "@bad_analyse", "--progress", "false"],
            "analysis.metric in ",
        ),
        (
            [
                "fit",
                *MLP,
                "--trainer.callbacks=[{class_path: lightning_topo.TopologyCallback, init_args: {complex: cubicle}}]",
            ],
            "TopologyCallback complex: `complex` must be one of ('cubical', 'rips'), got 'cubicle' (did you mean "
            "'cubical'?).",
        ),
        (["fit", "--config", "@bad_fit"], "TopologyCallback persistence: `persistence` has unknown summary 'entropyy'"),
    ],
)
def test_a_misspelt_choice_is_one_short_line_naming_the_closest(tmp_path: Path, args: list[str], message: str) -> None:
    """A TopologyCallback / --analysis value outside its choices, on the command line or in a config file: one line
    naming the value, the choices and the closest one, instead of jsonargparse's ~1000 characters listing every type
    of the field's Union."""
    analyse = (CONFIGS / "analyse_digits.yaml").read_text()
    assert "metric:" not in analyse and "\nanalysis:\n" in analyse
    (tmp_path / "bad_analyse.yaml").write_text(analyse.replace("\nanalysis:\n", "\nanalysis:\n  metric: knn\n"))
    fit = (CONFIGS / "digits_mlp.yaml").read_text()
    assert "        complex: cubical\n" in fit
    bad_fit = fit.replace("complex: cubical\n", "complex: cubical\n        persistence: [entropyy]\n")
    (tmp_path / "bad_fit.yaml").write_text(bad_fit)
    files = {"@bad_analyse": str(tmp_path / "bad_analyse.yaml"), "@bad_fit": str(tmp_path / "bad_fit.yaml")}
    line = _error_line(run_cli_here(*[files.get(a, a) for a in args], cwd=tmp_path))
    assert message in line and len(line.replace(str(tmp_path), "<tmp>")) < 300, line  # the path's length varies
    assert "Union" not in line


def test_refused_argument_reads_the_signature_and_says_nothing_it_cannot_read() -> None:
    """The check behind those lines: a value of the wrong type or an unknown name is refused with the class's own
    names; a right value, or a type it does not read (a class), gives ``None`` (jsonargparse's message stands)."""
    line = refused_argument("--x", torch.nn.ReLU, "inplace", "maybe", given=True)
    assert str(line) == "--x: ReLU's `inplace` must be a boolean (true/false), got 'maybe'."
    assert refused_argument("--x", torch.nn.ReLU, "inplace", "true", given=True) is None
    assert str(refused_argument("--x", torch.nn.ReLU, "inplce", 1, given=False)).endswith(
        "ReLU has no argument `inplce` (did you mean `inplace`?); its arguments: inplace."
    )
    assert (
        str(refused_argument("--x", int, "base", 1, given=False))
        == "--x: int has no argument `base`; it takes no arguments."
    )
    # `Trainer.logger` names classes: not read here
    assert refused_argument("--trainer.logger", Trainer, "logger", "abc", given=True) is None


def test_a_yaml_config_entry_of_the_callback_is_honoured(tmp_path: Path) -> None:
    """jsonargparse passes every TopologyConfig field next to `config:`, at its default where the YAML says nothing;
    those used to replace the config's values (a `config: {complex: rips}` ran the cubical view without a word)."""
    from lightning.pytorch.cli import LightningCLI

    from lightning_topo import TopologyCallback
    from lightning_topo.datasets import DigitsDataModule
    from lightning_topo.models import CNNClassifier

    path = tmp_path / "config.yaml"
    path.write_text(
        "trainer:\n  logger: false\n  enable_checkpointing: false\n  callbacks:\n"
        "    - class_path: lightning_topo.TopologyCallback\n      init_args:\n"
        "        config: {complex: rips, k: 3, samples_per_class: 30}\n"
        "        max_samples: 300\n"  # a field option beside it, not at its default: it changes the config's value
    )
    cli = LightningCLI(CNNClassifier, DigitsDataModule, run=False, args=["--config", str(path)])
    (callback,) = [cb for cb in cli.trainer.callbacks if isinstance(cb, TopologyCallback)]
    assert (callback.config.complex, callback.config.k, callback.config.samples_per_class) == ("rips", 3, 30)
    assert callback.config.max_samples == 300
