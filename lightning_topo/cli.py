"""The command line: ``lightning-topo fit | analyse | rank`` (also ``python -m lightning_topo``).

One jsonargparse parser with three subcommands:

* ``fit``: Lightning's ``LightningCLI`` (model, data, trainer and callbacks — ``TopologyCallback`` among them —
  set in YAML with ``class_path`` / ``init_args``); every ``LightningCLI`` option works (the arguments after
  ``fit`` are handed to it as they are). It prints a line per epoch (when no progress bar is shown) and, at the end
  or after Ctrl-C, where the checkpoints, metrics and figures are and the command that resumes (``--ckpt_path``).
* ``analyse`` (alias ``analyze``): one model (``--model``, a class path with optional ``init_args``, plus
  ``--ckpt``) on a data module's validation split; writes ``report.json`` and ``report.png`` to ``--output_dir``
  and prints the table.
* ``rank``: several checkpoints ranked by theta on the same sample; writes ``ranking.json``, ``ranking.png``
  and one report per model; prints the table and, given ``--scores``, the rank correlations.

The ``--analysis.*`` options are the fields of :class:`~lightning_topo.config.TopologyConfig` (with their
documentation as help). Errors are classified by their type only, never by their message: a user error (a bad
argument or YAML file, a bad ``TopologyConfig`` value, an unknown layer, data that cannot be sampled, a Lightning
misconfiguration, a missing or unreadable checkpoint, one whose objects torch's safe loader refuses: see
``--trust_checkpoint``) prints one line, ``lightning-topo <command>: error: ...``,
and exits with code 2; any other exception prints one line naming its type and exits with code 1. ``--debug``
(anywhere on the command line) shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import json
import pickle
import re
import shlex
import sys
import time
import warnings
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from jsonargparse import DefaultHelpFormatter
from lightning.pytorch.callbacks import Callback

if TYPE_CHECKING:
    from jsonargparse import ArgumentParser, Namespace
    from lightning.pytorch import LightningModule, Trainer
    from torch import nn

    from lightning_topo.config import TopologyConfig

__all__ = [
    "INTERRUPTED_EXIT",
    "CLIError",
    "EpochProgress",
    "build_parser",
    "build_parsers",
    "config_writing",
    "fit_summary",
    "load_model",
    "main",
    "one_line",
    "resume_command",
    "user_error_types",
    "user_message",
]

PROG = "lightning-topo"
COMMANDS = ("fit", "analyse", "rank")
ALIASES = {"analyze": "analyse"}
MAX_MESSAGE = 1000
"""Longest error message printed (characters, after collapsing whitespace)."""

DESCRIPTION = f"""Layerwise topology (Betti numbers) of neural networks: train, analyse, rank.

Examples:
  {PROG} fit --config configs/digits_cnn.yaml
  {PROG} fit --config configs/digits_cnn.yaml --ckpt_path outputs/digits_cnn/checkpoints/last.ckpt \\
      --trainer.max_epochs 20
  {PROG} analyse --config configs/analyse_digits.yaml
  {PROG} analyse --model lightning_topo.models.CNNClassifier --ckpt model.ckpt \\
      --data lightning_topo.datasets.DigitsDataModule --analysis.complex rips
  {PROG} rank --config configs/rank_digits.yaml
Run `{PROG} <command> --help` for every option; add --debug anywhere to see the traceback of an error."""

CHECKPOINT_READ_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    EOFError,
    RuntimeError,
    pickle.UnpicklingError,
    zipfile.BadZipFile,
    KeyError,
    ValueError,
)
"""What ``torch.load`` raises for a file that is not a (complete) checkpoint: truncated, random bytes, ..."""

MODEL_LOAD_ERRORS: tuple[type[BaseException], ...] = (RuntimeError, KeyError, TypeError, ValueError, AttributeError)
"""What building a model or loading a readable checkpoint into it raises when they do not fit each other."""


class CLIError(Exception):
    """A user error found by the command line itself: printed as one line, exit code 2."""


def user_error_types() -> tuple[type[BaseException], ...]:
    """The exception types that are the user's to fix (exit code 2); everything else is internal (exit code 1).

    Returns:
        ``CLIError``, jsonargparse's ``ArgumentError`` (bad arguments, YAML, class paths), ``ConfigError`` (a bad
        ``TopologyConfig`` value; ``TopologyMisconfiguration`` too), ``UnknownLayerError``, ``SampleError`` and
        Lightning's ``MisconfigurationException``.
    """
    from jsonargparse import ArgumentError
    from lightning.pytorch.utilities.exceptions import MisconfigurationException

    from lightning_topo.capture import SampleError, UnknownLayerError
    from lightning_topo.config import ConfigError

    return (CLIError, ArgumentError, ConfigError, UnknownLayerError, SampleError, MisconfigurationException)


def one_line(err: BaseException, limit: int = MAX_MESSAGE) -> str:
    """The exception's own message on one line: whitespace collapsed, capped at ``limit`` characters.

    Args:
        err: the exception.
        limit: the longest message returned; a longer one is cut and ends with ``...``.

    Returns:
        The message (the exception's type name when it has no message).
    """
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def user_message(err: BaseException, where: str) -> str:
    """The one-line message of a user error: its own message, plus the fix for a bad argument.

    Args:
        err: an instance of one of :func:`user_error_types`.
        where: the command, e.g. ``"lightning-topo analyse"`` (for the pointer to its ``--help``).

    Returns:
        The message: for malformed YAML (a ``yaml.YAMLError`` behind jsonargparse's error) ``malformed YAML: ...``,
        for another jsonargparse error its message and ``see `<command> --help```, else the exception's message.
    """
    import yaml
    from jsonargparse import ArgumentError

    if not isinstance(err, ArgumentError):
        return one_line(err)
    if any(isinstance(cause, yaml.YAMLError) for cause in _causes(err)):
        return f"malformed YAML: {one_line(err)}; fix the syntax of the config file."
    return f"{one_line(err)} (see `{where} --help`)"


def _causes(err: BaseException) -> list[BaseException]:
    """``err`` and the exceptions it was raised from or while handling (``__cause__`` / ``__context__``).

    Args:
        err: the exception.

    Returns:
        The chain, ``err`` first.
    """
    chain: list[BaseException] = []
    current: BaseException | None = err
    while current is not None and all(current is not seen for seen in chain):
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


# ---------------------------------------------------------------------------------------------- models
def import_class(class_path: str) -> type:
    """The class named by a dotted import path (already validated by jsonargparse), nested classes included.

    Args:
        class_path: ``"package.module.Name"`` (or ``"package.module.Outer.Inner"``).

    Returns:
        The class.

    Raises:
        CLIError: no module prefix of ``class_path`` imports, or the attribute chain does not exist.
    """
    parts = class_path.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                break
            obj = getattr(obj, attr)
        else:
            return obj
    raise CLIError(f"class path {class_path!r} cannot be imported; check the spelling.")


def load_model(
    class_path: str, ckpt: str | None = None, init_args: dict[str, Any] | None = None, trust_checkpoint: bool = False
) -> nn.Module:
    """Build a model from its class path and load a checkpoint.

    A ``LightningModule`` subclass is restored with ``load_from_checkpoint`` (its saved hyperparameters,
    overridden by ``init_args``); any other ``nn.Module`` class is built with ``init_args`` and given the
    checkpoint's ``state_dict`` (a Lightning checkpoint's or a plain ``torch.save(model.state_dict())``).
    Without ``ckpt`` the freshly initialised model is returned (with a warning).

    Args:
        class_path: import path of an ``nn.Module`` subclass, e.g. ``"lightning_topo.models.CNNClassifier"``.
        ckpt: the checkpoint file, or ``None`` for a freshly initialised model.
        init_args: keyword arguments of the class (only those given by the user: for a ``LightningModule``
            they override the saved hyperparameters).
        trust_checkpoint: load ``ckpt`` with ``torch.load(weights_only=False)``, which unpickles any object the
            file names (and so runs code from it): only for a file you trust whose hyperparameters hold objects
            beyond tensors and plain types (e.g. numpy numbers). Default ``False``: torch's safe loader
            (``weights_only=True``); a file it refuses raises a ``CLIError`` naming the objects.

    Returns:
        The model (on the CPU).

    Raises:
        CLIError: the class is not an ``nn.Module``, the checkpoint is missing or not a readable checkpoint
            (the message names the file), torch's safe loader refuses objects it holds (the message names them
            and ``--trust_checkpoint``), or the checkpoint does not fit the class.
    """
    import torch
    from lightning.pytorch import LightningModule
    from torch import nn

    cls = import_class(class_path)
    init_args = dict(init_args or {})
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise CLIError(f"--model {class_path!r} is not an nn.Module class; e.g. lightning_topo.models.CNNClassifier.")
    if ckpt is None:
        warnings.warn(f"no --ckpt given: analysing a freshly initialised {cls.__name__}.", UserWarning, stacklevel=2)
        return _build(cls, init_args)
    path = Path(ckpt)
    if not path.is_file():
        config = config_writing(path)
        how = f"`{PROG} fit --config {config}` writes it" if config else f"train one with `{PROG} fit --config ...`"
        raise CLIError(f"checkpoint {str(path)!r} not found; pass an existing file to --ckpt ({how}).")
    weights_only = not trust_checkpoint
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=weights_only)
    except pickle.UnpicklingError as err:  # refused by the safe loader, or not a pickle at all
        unsafe = _unsafe_globals(path) if weights_only else []
        if unsafe:
            raise CLIError(
                f"checkpoint {str(path)!r} is readable but holds objects torch's safe loader (weights_only=True) "
                f"refuses: {', '.join(unsafe)}; if you trust the file (loading it runs code it names), rerun with "
                "--trust_checkpoint true, or save plain Python types in the hyperparameters."
            ) from err
        raise _unreadable(path, err) from err
    except CHECKPOINT_READ_ERRORS as err:
        raise _unreadable(path, err) from err
    try:
        if issubclass(cls, LightningModule):
            del state  # read again by Lightning, which also restores the saved hyperparameters
            return cls.load_from_checkpoint(str(path), map_location="cpu", weights_only=weights_only, **init_args)
        model = _build(cls, init_args)
        model.load_state_dict(state.get("state_dict", state) if isinstance(state, dict) else state)
        return model
    except MODEL_LOAD_ERRORS as err:
        raise CLIError(
            f"cannot load checkpoint {str(path)!r} into {class_path}: {one_line(err)}; check that the checkpoint "
            "was written for this class (and its init_args)."
        ) from err


def _unsafe_globals(path: Path) -> list[str]:
    """The objects (``module.name``) a checkpoint's pickle names that ``weights_only=True`` refuses, read without
    unpickling anything; empty when the file is not a readable ``torch.save`` archive.

    Args:
        path: the checkpoint file.

    Returns:
        The names, e.g. ``["numpy.dtype"]``.
    """
    from torch.serialization import get_unsafe_globals_in_checkpoint

    try:
        return list(get_unsafe_globals_in_checkpoint(str(path)))
    except CHECKPOINT_READ_ERRORS:
        return []


def _unreadable(path: Path, err: BaseException) -> CLIError:
    """The error for a file ``torch.load`` cannot read at all (truncated, random bytes, ...).

    Args:
        path: the checkpoint file.
        err: what ``torch.load`` raised.

    Returns:
        The ``CLIError`` to raise.
    """
    return CLIError(
        f"checkpoint {str(path)!r} is not a readable checkpoint ({type(err).__name__} while loading it: the file "
        "is truncated, corrupt or not written by torch.save / Lightning); pass a complete checkpoint file."
    )


def config_writing(ckpt: str | Path, folder: str | Path = "configs") -> str | None:
    """The YAML config under ``folder`` whose ``fit`` writes the checkpoint ``ckpt`` (for an error's hint).

    A config writes it when one of its ``trainer.callbacks`` is a ``ModelCheckpoint`` with ``dirpath`` the
    checkpoint's folder and ``filename`` its name (or ``save_last`` and the name ``last.ckpt``).

    Args:
        ckpt: the checkpoint path as given.
        folder: where to look (relative to the working directory, as the configs' paths are).

    Returns:
        The config's path (``configs/digits_mlp.yaml`` for ``outputs/digits_mlp/checkpoints/digits_mlp.ckpt``
        in the repository's root), or ``None`` when no config there writes it.
    """
    import yaml

    target = Path(ckpt)
    for config in sorted(Path(folder).glob("*.yaml")):
        try:
            callbacks = (yaml.safe_load(config.read_text()) or {}).get("trainer", {}).get("callbacks") or []
        except (OSError, yaml.YAMLError, AttributeError):
            continue
        for callback in callbacks if isinstance(callbacks, list) else [callbacks]:
            if not isinstance(callback, dict) or not str(callback.get("class_path", "")).endswith("ModelCheckpoint"):
                continue
            init = callback.get("init_args") or {}
            names = {f"{init.get('filename')}.ckpt"} | ({"last.ckpt"} if init.get("save_last") else set())
            if Path(str(init.get("dirpath"))) == target.parent and target.name in names:
                return config.as_posix()
    return None


def _build(cls: type[nn.Module], init_args: dict[str, Any]) -> nn.Module:
    """``cls(**init_args)``, with the class's own argument errors as a :class:`CLIError`.

    Args:
        cls: the model class.
        init_args: its keyword arguments.

    Returns:
        The model.
    """
    try:
        return cls(**init_args)
    except (TypeError, ValueError) as err:
        raise CLIError(f"cannot build {cls.__name__} from init_args {init_args}: {one_line(err)}") from err


# ---------------------------------------------------------------------------------------------- parsers
CALLABLE_FIELDS = ("input_fn", "target_fn", "output_fn", "forward_fn")
"""``TopologyConfig`` fields that only Python code can give (functions): not command-line options."""


def build_parser() -> ArgumentParser:
    """The ``lightning-topo`` parser: subcommands ``fit``, ``analyse`` (alias ``analyze``) and ``rank``.

    Returns:
        A jsonargparse ``ArgumentParser`` raising ``ArgumentError`` instead of exiting on bad input.
    """
    return build_parsers()[0]


def build_parsers() -> tuple[ArgumentParser, dict[str, ArgumentParser]]:
    """The ``lightning-topo`` parser and its subcommands' parsers.

    ``fit`` takes every argument after it as they are (``nargs=REMAINDER``) and hands them to ``LightningCLI``,
    which parses them with its own jsonargparse parser (so ``lightning-topo fit --help`` is LightningCLI's help).

    Returns:
        The main parser and ``{"fit": ..., "analyse": ..., "rank": ...}``.
    """
    from jsonargparse import REMAINDER, ArgumentParser

    parser = ArgumentParser(
        prog=PROG, description=DESCRIPTION, exit_on_error=False, formatter_class=RawDescriptionFormatter
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        help="Show the traceback of an error instead of one line (accepted anywhere on the command line).",
    )
    fit = ArgumentParser(prog=f"{PROG} fit", add_help=False, exit_on_error=False)
    fit.add_argument("args", nargs=REMAINDER, help="LightningCLI's arguments: --config, --model, --trainer.*, ...")
    subparsers = {"fit": fit, "analyse": _analyse_parser(), "rank": _rank_parser()}
    subcommands = parser.add_subcommands(required=True, dest="subcommand")
    subcommands.add_subcommand(
        "fit", fit, help="Train with Lightning's LightningCLI (model, data, trainer, TopologyCallback set in YAML)."
    )
    subcommands.add_subcommand(
        "analyse",
        subparsers["analyse"],
        aliases=tuple(ALIASES),
        help="Analyse one checkpoint: report.json, report.png and a table.",
    )
    subcommands.add_subcommand(
        "rank", subparsers["rank"], help="Rank several checkpoints by theta (and correlate with --scores)."
    )
    return parser, subparsers


class RawDescriptionFormatter(argparse.RawDescriptionHelpFormatter, DefaultHelpFormatter):
    """jsonargparse's help formatter that keeps the description's line breaks (for the examples)."""


def _analyse_parser() -> ArgumentParser:
    """``analyse``: ``--config``, ``--data``, ``--model`` (class path and init_args), ``--ckpt``, ``--analysis.*``,
    ``--output_dir`` and ``--progress``.

    Returns:
        The parser.
    """
    from torch import nn

    parser = _parser_with_data("analyse", "Layerwise topology of one model checkpoint.")
    parser.add_subclass_arguments(
        nn.Module,
        "model",
        required=True,
        instantiate=False,
        help=(
            "Model class path (any nn.Module) and optional init_args, e.g. lightning_topo.models.CNNClassifier; "
            "a LightningModule's init_args override the hyperparameters saved in --ckpt."
        ),
    )
    parser.add_argument(
        "--ckpt",
        type=str | None,
        default=None,
        help="Checkpoint to load (Lightning's, or a torch.save'd state_dict); none: a freshly initialised model.",
    )
    _add_analysis_and_output(parser, "analyse")
    return parser


def _rank_parser() -> ArgumentParser:
    """``rank``: ``--config``, ``--data``, ``--models``, ``--scores``, ``--by``, ``--analysis.*``, ``--output_dir``
    and ``--progress``.

    Returns:
        The parser.
    """
    parser = _parser_with_data("rank", "Rank model checkpoints by the decay of their topology.")
    parser.add_argument(
        "--models",
        type=list[dict[str, Any]],
        required=True,
        help=(
            "Models to rank: a list of {name, class_path, init_args (optional), ckpt (optional)} entries "
            "(class_path and init_args as for `lightning-topo analyse --model`)."
        ),
    )
    parser.add_argument(
        "--scores",
        type=dict[str, float] | None,
        default=None,
        help="Model name -> score (higher = better, e.g. fine-tuned accuracy) for the rank correlations.",
    )
    parser.add_argument(
        "--by",
        type=Literal["theta", "decay_rate"],
        default="theta",
        help="What ranks the models: theta (lower first) or decay_rate (higher first).",
    )
    _add_analysis_and_output(parser, "rank")
    return parser


def _parser_with_data(command: str, description: str) -> ArgumentParser:
    """A subcommand's parser with the options ``analyse`` and ``rank`` start with: ``--config`` and ``--data``.

    Args:
        command: the subcommand's name (for ``prog``).
        description: the subcommand's description.

    Returns:
        The parser.
    """
    from jsonargparse import ActionConfigFile, ArgumentParser
    from lightning.pytorch import LightningDataModule

    parser = ArgumentParser(prog=f"{PROG} {command}", description=description, exit_on_error=False)
    parser.add_argument("--config", action=ActionConfigFile, help="YAML file with any of the options below.")
    parser.add_subclass_arguments(
        LightningDataModule,
        "data",
        required=True,
        help="Data module (class path and init_args) whose validation split is analysed.",
    )
    return parser


def _add_analysis_and_output(parser: ArgumentParser, command: str) -> None:
    """Add the options ``analyse`` and ``rank`` end with: ``--analysis.*``, ``--output_dir`` and ``--progress``.

    The ``--analysis.*`` options are the ``TopologyConfig`` fields but the callables (``input_fn``, ...), with the
    field's documentation as help.

    Args:
        parser: the subcommand's parser.
        command: the subcommand's name (for the default output directory).
    """
    from lightning_topo.config import TopologyConfig

    parser.add_class_arguments(
        TopologyConfig, "analysis", skip=set(CALLABLE_FIELDS), instantiate=False, sub_configs=True
    )
    parser.add_argument("--output_dir", type=str, default=f"outputs/{command}", help="Where the files are written.")
    parser.add_argument("--progress", type=bool, default=True, help="Show a progress bar.")
    parser.add_argument(
        "--trust_checkpoint",
        type=bool,
        default=False,
        help=(
            "Load the checkpoint(s) with torch.load(weights_only=False): for a file you trust whose hyperparameters "
            "hold objects torch's safe loader refuses (e.g. numpy numbers). Unpickling runs code the file names."
        ),
    )
    for dest in ("model", "analysis.threshold"):
        _drop_subclass_list(parser, dest)


def _model_entry_parser() -> ArgumentParser:
    """Validates one ``--models`` entry of ``rank`` exactly as ``analyse`` validates ``--model`` and ``--ckpt``.

    Returns:
        The parser (``name``, ``model`` as class_path / init_args, ``ckpt``).
    """
    from jsonargparse import ArgumentParser
    from torch import nn

    parser = ArgumentParser(prog=f"{PROG} rank --models", exit_on_error=False)
    parser.add_argument("--name", type=str, required=True, help="The model's name in the ranking.")
    parser.add_subclass_arguments(nn.Module, "model", required=True, instantiate=False, help="The model.")
    parser.add_argument("--ckpt", type=str | None, default=None, help="Its checkpoint.")
    return parser


def _drop_subclass_list(parser: ArgumentParser, dest: str) -> None:
    """Leave jsonargparse's "known subclasses" list out of the help of ``dest`` (for ``nn.Module``: hundreds).

    Args:
        parser: the parser holding the option.
        dest: the option's destination, e.g. ``"model"``.
    """
    for action in parser._actions:
        if action.dest == dest and hasattr(action, "extra_help"):
            action.extra_help = _no_extra_help  # type: ignore[attr-defined]


def _no_extra_help() -> str:
    """No extra help text.

    Returns:
        An empty string.
    """
    return ""


def _given(parser: ArgumentParser, cfg: Namespace) -> Namespace:
    """The parser's defaults updated with the values parsed with ``defaults=False`` (the ones given by the user).

    Args:
        parser: the subcommand's parser.
        cfg: its part of the namespace parsed with ``defaults=False``.

    Returns:
        Every option: given values, else defaults (model init_args: only the given ones).
    """
    merged = cfg.clone()
    defaults = parser.get_defaults()
    for key, value in defaults.items():  # leaf keys, e.g. "analysis.k"
        if key not in merged:
            merged[key] = value
    return merged


# ---------------------------------------------------------------------------------------------- commands
def run_fit(args: Sequence[str]) -> int:
    """``lightning-topo fit``: ``LightningCLI`` with any LightningModule / LightningDataModule by class path.

    While it trains, one line per epoch (when the trainer shows no progress bar: :class:`EpochProgress`); at the end,
    also after Ctrl-C, a summary of what was written and the command that resumes (:func:`fit_summary`), printed
    on global rank zero.

    Args:
        args: the arguments after ``fit``, handed to ``LightningCLI`` as they are.

    Returns:
        The exit code: 0, or :data:`INTERRUPTED_EXIT` after a ``KeyboardInterrupt`` (Lightning's graceful shutdown).
    """
    from lightning.pytorch import LightningDataModule, LightningModule
    from lightning.pytorch.cli import LightningCLI

    built: list[LightningCLI] = []

    class FitCLI(LightningCLI):
        """``LightningCLI`` whose class-building errors (a bad value for a class of the config) are user errors."""

        def instantiate_classes(self) -> None:
            """Build the model, data, trainer and callbacks; their own argument errors become a CLIError."""
            try:
                super().instantiate_classes()
            except (ValueError, TypeError) as err:
                raise CLIError(f"cannot build the classes of the config: {one_line(err)}") from err
            built.append(self)

    warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
    start = time.perf_counter()
    try:
        FitCLI(
            LightningModule,
            LightningDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            args=["fit", *args],
            parser_kwargs={"exit_on_error": False, "prog": PROG},
            save_config_kwargs={"overwrite": True},
            trainer_defaults={"callbacks": [EpochProgress()]},
        )
    except SystemExit:  # Lightning exits after its graceful shutdown on KeyboardInterrupt; --help, --print_config
        if not built or not built[0].trainer.interrupted:
            raise
        _print_summary(built[0].trainer, args, time.perf_counter() - start)
        return INTERRUPTED_EXIT
    _print_summary(built[0].trainer, args, time.perf_counter() - start)
    return 0


INTERRUPTED_EXIT = 130
"""Exit code of ``fit`` after Ctrl-C (a ``KeyboardInterrupt``): 128 + SIGINT, as a shell reports it."""


class EpochProgress(Callback):
    """One line per finished training epoch, on global rank zero, when the trainer shows no progress bar.

    ``[2/10] epoch 1: train_loss 0.31  train_acc 0.91  val_loss 0.28  val_acc 0.92  topology/decay_rate 0.804
    (1.2 s)``: the count of epochs (1-based, of ``max_epochs``), the epoch as logged (0-based, as in
    ``metrics.csv`` and the figure names), the epoch-level metrics whose names have no ``/`` plus the headline
    ``topology/decay_rate``, and the epoch's wall time.
    """

    def __init__(self) -> None:
        super().__init__()
        self._started = time.perf_counter()

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Start the epoch's clock."""
        self._started = time.perf_counter()

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Print the epoch's line (rank zero, no progress bar shown)."""
        if not trainer.is_global_zero or trainer.progress_bar_callback is not None or trainer.sanity_checking:
            return
        total = trainer.max_epochs if trainer.max_epochs is not None and trainer.max_epochs > 0 else "?"
        metrics = trainer.callback_metrics
        keys = [key for key in sorted(metrics) if "/" not in key] + ["topology/decay_rate"]
        values = [f"{key} {float(metrics[key]):.4g}" for key in keys if key in metrics and metrics[key].numel() == 1]
        seconds = time.perf_counter() - self._started
        epoch = trainer.current_epoch
        print(f"[{epoch + 1}/{total}] epoch {epoch}: " + "  ".join(values) + f"  ({seconds:.2f} s)", flush=True)


def _print_summary(trainer: Trainer, args: Sequence[str], seconds: float) -> None:
    """Print :func:`fit_summary` on global rank zero.

    Args:
        trainer: the trainer after ``fit`` returned or was interrupted.
        args: the arguments given after ``fit``.
        seconds: the run's wall time.
    """
    if trainer.is_global_zero:
        print("\n".join(fit_summary(trainer, args, seconds)), flush=True)


def fit_summary(trainer: Trainer, args: Sequence[str], seconds: float) -> list[str]:
    """What a ``fit`` run wrote and how to resume it, as lines to print.

    A first line (finished, or interrupted in which epoch), then one line per item: ``checkpoint: <file>`` for every
    checkpoint file of the run's ``ModelCheckpoint`` callbacks, ``metrics: <file or folder>`` per logger
    (``metrics.csv`` of a ``CSVLogger``), ``config: <log_dir>/config.yaml`` (the full config, saved by
    ``LightningCLI``), ``figures: <folder>/ (...)`` with the latest PNG file of each kind written by
    ``TopologyCallback``, ``topology:`` its last evaluation, and ``resume: <command>``: the same command with
    ``--ckpt_path`` set to the last checkpoint (and, for a run that reached ``max_epochs``, twice that many epochs,
    so that resuming trains further). Paths under the working directory are printed relative to it.

    Args:
        trainer: the trainer after ``fit`` returned or was interrupted.
        args: the arguments given after ``fit``.
        seconds: the run's wall time.

    Returns:
        The lines.
    """
    from lightning_topo.callbacks import TopologyCallback

    epoch = trainer.current_epoch
    max_epochs = trainer.max_epochs if trainer.max_epochs is not None and trainer.max_epochs > 0 else None
    if trainer.interrupted:
        head = f"{PROG} fit: interrupted (KeyboardInterrupt) during epoch {epoch} after {seconds:.1f} s; written:"
    else:
        early = " (stopped early)" if max_epochs is not None and epoch < max_epochs else ""
        head = f"{PROG} fit: finished {epoch} epoch{'s' if epoch != 1 else ''}{early} in {seconds:.1f} s; written:"
    lines = [head]
    checkpoints = _checkpoint_files(trainer)
    resume = _resume_checkpoint(trainer)
    for path in checkpoints:
        note = f" ({_saved_at(path)}; --ckpt_path resumes from it)" if path == resume else ""
        lines.append(f"  checkpoint: {_shown(path)}{note}")
    for logger in trainer.loggers:
        folder = getattr(logger, "log_dir", None) or getattr(logger, "save_dir", None)
        if folder is None:
            continue
        metrics = Path(folder) / "metrics.csv"
        lines.append(f"  metrics:    {_shown(str(metrics if metrics.is_file() else folder))}")
        if (Path(folder) / "config.yaml").is_file():
            lines.append(f"  config:     {_shown(str(Path(folder) / 'config.yaml'))}")
    for callback in trainer.callbacks:  # type: ignore[attr-defined]
        if isinstance(callback, TopologyCallback):
            lines += _topology_lines(callback)
    lines.append("  resume:     " + _resume_hint(trainer, args, checkpoints, resume, max_epochs))
    return lines


def _saved_at(path: str) -> str:
    """Where in training a Lightning checkpoint was saved, read without loading its tensors (memory-mapped).

    Args:
        path: the checkpoint file.

    Returns:
        ``"epoch E, step S"`` (``epoch`` as Lightning counts it, from 0), or ``"saved ..."`` when unreadable.
    """
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        return f"epoch {int(state['epoch'])}, step {int(state['global_step'])}"
    except (*CHECKPOINT_READ_ERRORS, TypeError):
        return "saved by this run"


def _checkpoint_files(trainer: Trainer) -> list[str]:
    """The checkpoint files of the trainer's checkpoint callbacks that exist, the last one of each callback last.

    Args:
        trainer: the trainer.

    Returns:
        The paths, each once.
    """
    found: dict[str, None] = {}
    for callback in trainer.checkpoint_callbacks:
        kept = list(getattr(callback, "best_k_models", {}) or {})
        kept += [getattr(callback, "best_model_path", ""), getattr(callback, "last_model_path", "")]
        for path in kept:
            if path and Path(path).is_file():
                found.pop(str(path), None)
                found[str(path)] = None
    return list(found)


def _resume_checkpoint(trainer: Trainer) -> str | None:
    """The checkpoint a resumed run continues from: a ``ModelCheckpoint``'s ``last_model_path`` (``save_last``), else
    the file kept by one that monitors nothing (it keeps the latest).

    Args:
        trainer: the trainer.

    Returns:
        The path, or ``None`` when no such file exists.
    """
    callbacks = trainer.checkpoint_callbacks
    for callback in callbacks:
        path = getattr(callback, "last_model_path", "")
        if path and Path(path).is_file():
            return str(path)
    for callback in callbacks:
        path = getattr(callback, "best_model_path", "")
        if getattr(callback, "monitor", "") is None and path and Path(path).is_file():
            return str(path)
    return None


def _resume_hint(
    trainer: Trainer, args: Sequence[str], checkpoints: list[str], ckpt: str | None, max_epochs: int | None
) -> str:
    """The ``resume:`` line of the summary.

    Args:
        trainer: the trainer.
        args: the arguments given after ``fit``.
        checkpoints: the run's checkpoint files.
        ckpt: the checkpoint to resume from (:func:`_resume_checkpoint`), if any.
        max_epochs: the trainer's ``max_epochs`` (``None`` when unbounded).

    Returns:
        The command that resumes, or what to do when there is nothing to resume from.
    """
    if ckpt is None:
        if checkpoints:
            return (
                f"no last checkpoint (set `save_last: true` on the ModelCheckpoint); to continue from the best one: "
                f"{resume_command(args, _shown(checkpoints[-1]))}"
            )
        return f"no checkpoint was written; run again: {shlex.join([PROG, 'fit', *args])}"
    done = not trainer.interrupted and max_epochs is not None and trainer.current_epoch >= max_epochs
    return resume_command(args, _shown(ckpt), 2 * max_epochs if done and max_epochs else None)


def resume_command(args: Sequence[str], ckpt: str, max_epochs: int | None = None) -> str:
    """``lightning-topo fit`` with the same arguments, ``--ckpt_path ckpt`` and optionally ``--trainer.max_epochs``.

    Args:
        args: the arguments given after ``fit`` (any ``--ckpt_path`` among them is replaced, and
            ``--trainer.max_epochs`` when ``max_epochs`` is given).
        ckpt: the checkpoint to resume from.
        max_epochs: the new ``max_epochs``, or ``None`` to keep the run's.

    Returns:
        The command, quoted for a POSIX shell.

    Examples:
        >>> resume_command(["--config", "c.yaml", "--ckpt_path=a.ckpt"], "out/last.ckpt", 20)
        'lightning-topo fit --config c.yaml --ckpt_path out/last.ckpt --trainer.max_epochs 20'
    """
    replaced = {"--ckpt_path"} | ({"--trainer.max_epochs"} if max_epochs is not None else set())
    kept: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
            continue
        name, eq, _ = arg.partition("=")
        if name in replaced:
            skip = not eq
            continue
        kept.append(arg)
    kept += ["--ckpt_path", ckpt]
    if max_epochs is not None:
        kept += ["--trainer.max_epochs", str(max_epochs)]
    return shlex.join([PROG, "fit", *kept])


CHART_WAIT_SECONDS = 60.0
"""How long the summary waits for ``TopologyCallback``'s last figures to be written."""


def _topology_lines(callback: Any) -> list[str]:
    """The ``figures:`` and ``topology:`` lines of a ``TopologyCallback``.

    Args:
        callback: the callback after ``fit``.

    Returns:
        The lines (none before its first evaluation).
    """
    lines = []
    wait = getattr(callback, "wait_for_charts", None)  # figures may still be drawing in the background
    if callable(wait):
        wait(CHART_WAIT_SECONDS)
    files = [Path(p) for p in dict.fromkeys(callback.chart_files) if Path(p).is_file()]
    if files:
        latest: dict[tuple[Path, str], Path] = {}
        for path in files:  # the latest file of each kind: betti_vs_depth_epoch007.png is of kind betti_vs_depth
            latest[(path.parent, re.sub(r"_epoch\d+$", "", path.stem))] = path
        for folder in dict.fromkeys(path.parent for path in files):
            count = sum(1 for path in files if path.parent == folder)
            names = ", ".join(path.name for (parent, _), path in latest.items() if parent == folder)
            lines.append(f"  figures:    {_shown(str(folder))}/ ({count} PNG files; latest: {names})")
    if callback.history:
        last = callback.history[-1]
        lines.append(
            f"  topology:   {len(callback.history)} evaluations; epoch {last['epoch']}: "
            f"decay_rate {last['decay_rate']:.4g}, theta {last['theta']:.4g}"
        )
    return lines


def _shown(path: str) -> str:
    """``path`` relative to the working directory when it lies under it, else as it is.

    Args:
        path: a file or folder.

    Returns:
        The path to print.
    """
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def run_analyse(parser: ArgumentParser, cfg: Namespace) -> int:
    """``lightning-topo analyse``: one checkpoint -> report.json, report.png, a printed table.

    Args:
        parser: the ``analyse`` parser.
        cfg: its options (given values merged over the defaults).

    Returns:
        The exit code (0).
    """
    from lightning_topo.analysis import analyse

    config = _topology_config(cfg)
    model = load_model(cfg.model.class_path, cfg.ckpt, _init_args(cfg.model), trust_checkpoint=cfg.trust_checkpoint)
    data = _instantiate_data(parser, cfg)
    name = cfg.ckpt or cfg.model.class_path
    report = analyse(model, data, config, progress=cfg.progress, name=name)
    out = Path(cfg.output_dir)
    json_path = report.to_json(out / "report.json")
    png_path = _save_figure(report.plot(), out / "report.png")
    print(report.table())
    print(f"wrote {json_path}" + (f" and {png_path}" if png_path else ""))
    return 0


def run_rank(parser: ArgumentParser, cfg: Namespace) -> int:
    """``lightning-topo rank``: several checkpoints ranked by theta; correlations with ``--scores``.

    Args:
        parser: the ``rank`` parser.
        cfg: its options (given values merged over the defaults).

    Returns:
        The exit code (0).
    """
    from lightning_topo.analysis import rank_models

    config = _topology_config(cfg)
    entries = _model_entries(cfg.models)
    names = [entry.name for entry in entries]
    if cfg.scores is not None:
        missing = [name for name in names if name not in cfg.scores]
        unknown = [name for name in cfg.scores if name not in names]
        if missing or unknown:
            raise CLIError(
                f"`scores` must have one value per model: missing {missing}, unknown {unknown} (models: {names}); "
                "give --scores a score for each name of --models."
            )
        if len(names) < 3:
            raise CLIError(f"rank correlations need at least 3 models, got {len(names)}; add models or drop --scores.")
    data = _instantiate_data(parser, cfg)
    models = {
        entry.name: load_model(
            entry.model.class_path, entry.ckpt, _init_args(entry.model), trust_checkpoint=cfg.trust_checkpoint
        )
        for entry in entries
    }
    ranking = rank_models(models, data, scores=cfg.scores, by=cfg.by, config=config, progress=cfg.progress)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ranking.json").write_text(json.dumps(ranking.to_dict(), indent=1))
    for name, report in ranking.reports.items():
        report.to_json(out / "reports" / f"{name}.json")
    png = _save_figure(ranking.plot(), out / "ranking.png")
    print(ranking.table())
    print(f"wrote {out / 'ranking.json'}" + (f" and {png}" if png else ""))
    return 0


def _model_entries(models: list[dict[str, Any]]) -> list[Namespace]:
    """Validate the ``--models`` entries of ``rank`` (class path, init_args, checkpoint, unique names).

    Args:
        models: the entries, ``{name, class_path, init_args, ckpt}`` mappings.

    Returns:
        One namespace per entry: ``name``, ``model`` (``class_path``, given ``init_args``), ``ckpt``.

    Raises:
        CLIError: no entries, an entry that is not a mapping, a bad entry (jsonargparse's message) or a repeated name.
    """
    from jsonargparse import ArgumentError

    if not models:
        raise CLIError("--models is empty; list at least one {name, class_path, ckpt} entry.")
    parser = _model_entry_parser()
    entries: list[Namespace] = []
    for i, entry in enumerate(models):
        if not isinstance(entry, dict):
            raise CLIError(f"--models entry {i} must be a mapping with name, class_path and ckpt, got {entry!r}.")
        spec = {k: v for k, v in entry.items() if k not in ("class_path", "init_args")}
        spec["model"] = {k: entry[k] for k in ("class_path", "init_args") if k in entry}
        try:
            parsed = parser.parse_object(spec, defaults=False)
        except ArgumentError as err:
            raise CLIError(f"--models entry {i} ({entry.get('name', 'no name')}): {one_line(err)}") from err
        if parsed.name in {e.name for e in entries}:
            raise CLIError(f"--models has the name {parsed.name!r} twice; give each model its own name.")
        parsed.ckpt = parsed.get("ckpt")
        entries.append(parsed)
    return entries


def _init_args(model: Namespace) -> dict[str, Any]:
    """The init_args given for a model (jsonargparse namespace -> plain dict).

    Args:
        model: the ``class_path`` / ``init_args`` namespace.

    Returns:
        The given init_args (empty when none).
    """
    init_args = model.get("init_args")
    return {} if init_args is None else init_args.as_dict()


def _topology_config(cfg: Namespace) -> TopologyConfig:
    """The ``TopologyConfig`` of the ``--analysis.*`` options (a bad value raises ``ConfigError``).

    Args:
        cfg: the subcommand's options.

    Returns:
        The ``TopologyConfig``.
    """
    from lightning_topo.config import TopologyConfig

    fields = cfg.analysis.as_dict() if cfg.get("analysis") is not None else {}
    return TopologyConfig.from_kwargs(**fields)


def _instantiate_data(parser: ArgumentParser, cfg: Namespace) -> Any:
    """Build the ``--data`` module; its own argument errors become a :class:`CLIError`.

    Args:
        parser: the subcommand's parser.
        cfg: its options.

    Returns:
        The data module.
    """
    try:
        return parser.instantiate(cfg).data
    except (TypeError, ValueError) as err:
        raise CLIError(f"cannot build the data module {cfg.data.class_path}: {one_line(err)}") from err


def _save_figure(fig: Any, path: Path) -> Path | None:
    """Save a matplotlib figure (and close it).

    Args:
        fig: the figure.
        path: where to write it.

    Returns:
        ``path``, or ``None`` without matplotlib.
    """
    try:
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - figures are optional
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


RUNNERS: dict[str, Callable[[ArgumentParser, Namespace], int]] = {"analyse": run_analyse, "rank": run_rank}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lightning-topo`` console script.

    Args:
        argv: the arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit code: 0 on success, 2 for a user error, 1 for an internal error.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    args = [a for a in args if a != "--debug"]
    if args[:1] == ["fit"]:
        args = ["fit", "--", *args[1:]]  # everything after `fit` is LightningCLI's
    try:
        import matplotlib

        matplotlib.use("Agg")
    except ImportError:  # pragma: no cover
        pass
    command = ALIASES.get(args[0], args[0]) if args else ""
    try:
        parser, subparsers = build_parsers()
        cfg = parser.parse_args(args, defaults=False)
        command = ALIASES.get(cfg.subcommand, cfg.subcommand)
        sub_cfg = cfg[cfg.subcommand]
        if command == "fit":
            return run_fit(list(sub_cfg.args)[1:])
        return RUNNERS[command](subparsers[command], _given(subparsers[command], sub_cfg))
    except SystemExit as exc:  # --help, --print_config
        return int(exc.code or 0) if not isinstance(exc.code, str) else 2
    except Exception as err:
        if debug:
            raise
        where = f"{PROG} {command}" if command in COMMANDS else PROG
        if isinstance(err, user_error_types()):
            print(f"{where}: error: {user_message(err, where)}", file=sys.stderr)
            return 2
        print(
            f"{where}: error: {type(err).__name__}: {one_line(err)} (rerun with --debug for the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
