"""``lightning-topo fit | validate | test | predict``: Lightning's ``LightningCLI``, with every one of its options,
a line per training epoch (:class:`EpochProgress`) and, after ``fit`` (also after Ctrl-C), what was written and the
command that resumes (:func:`fit_summary`)."""

from __future__ import annotations

import importlib
import math
import pkgutil
import re
import shlex
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from jsonargparse import ArgumentError
from lightning.pytorch import LightningDataModule, LightningModule, Trainer
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint, Timer
from lightning.pytorch.cli import LightningCLI

from lightning_topo.cli import (
    INTERRUPTED_EXIT,
    PROG,
    CLIError,
    one_line,
    option_values,
    read_checkpoint,
)
from lightning_topo.cli.arguments import read_configs, refused_choice, refused_value, resolve_class

CHART_WAIT_SECONDS = 60.0
"""How long the summary waits for ``TopologyCallback``'s last figures to be written."""
DESCRIPTION = f"""Layerwise topology (Betti numbers) of neural networks. The commands below are LightningCLI's;
`{PROG} analyse` (one checkpoint) and `{PROG} rank` (several) have their own --help. --debug shows an error's
traceback."""


class TopologyCLI(LightningCLI):
    """``LightningCLI`` whose user errors (a bad checkpoint, a bad value for a class of the config) are typed."""

    def parse_arguments(self, parser: Any, args: Any) -> None:
        """Parse, then read ``--ckpt_path`` (a :class:`CLIError` naming a missing, unreadable or unsafe file);
        with ``--weights_only false`` allow its objects, which LightningCLI's own read of its hyperparameters needs.
        A refused value is one line (:mod:`~lightning_topo.cli.arguments`).
        """
        try:
            super().parse_arguments(parser, args)
        except ArgumentError as err:
            given = list(args or [])
            refused = refused_choice(_callback_values(given)) or unchosen_class(given) or refused_value(given)
            if refused is None:
                raise
            raise refused from err
        command = self.config.get("subcommand")
        ckpt = self.config[command].get("ckpt_path") if command else None
        if ckpt is None or ckpt in ("last", "best", "hpc") or str(ckpt).startswith("registry"):
            return
        trusted = self.config[command].get("weights_only") is False
        read_checkpoint(str(ckpt), "--ckpt_path", weights_only=not trusted)
        if trusted:
            unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(ckpt)
            torch.serialization.add_safe_globals([pkgutil.resolve_name(name) for name in unsafe])

    def add_arguments_to_parser(self, parser: Any) -> None:
        """``--overwrite_checkpoints``: let a new ``fit`` replace the checkpoint files of an earlier run."""
        parser.add_argument(
            "--overwrite_checkpoints",
            type=bool,
            default=False,
            help=(
                "fit only: replace the checkpoint files an earlier run left at the fixed paths of a ModelCheckpoint "
                "with enable_version_counter: false (without it, a new fit that would overwrite them stops and names "
                "them; a run resumed with --ckpt_path continues its own files)."
            ),
        )

    def before_fit(self) -> None:
        """Keep the checkpoints of earlier runs: under ``fast_dev_run`` no ``last.ckpt`` is written (Lightning 2.6
        writes ``save_last``'s file at the end of training even then); a new run (no ``--ckpt_path``) that would
        overwrite a checkpoint file of an earlier one is a :class:`CLIError` naming the files, unless
        ``--overwrite_checkpoints true``."""
        trainer = self.trainer
        checkpoints = [cb for cb in trainer.checkpoint_callbacks if isinstance(cb, ModelCheckpoint)]
        if trainer.fast_dev_run:
            for callback in checkpoints:
                callback.save_last = False
            return
        config = self.config["fit"]
        if config.get("ckpt_path") is not None or config.get("overwrite_checkpoints"):
            return
        existing = [path for cb in checkpoints for path in fixed_checkpoint_files(cb) if path.is_file()]
        if existing:
            names = ", ".join(_shown(str(path)) for path in dict.fromkeys(existing))
            last = next((p for p in existing if p.stem == ModelCheckpoint.CHECKPOINT_NAME_LAST), None)
            resume = f"continue that run with --ckpt_path {_shown(str(last))}, " if last is not None else ""
            raise CLIError(
                f"this fit would overwrite {names}, written by an earlier run (its ModelCheckpoint has "
                f"enable_version_counter: false); {resume}pass --overwrite_checkpoints true to replace "
                "them, or move them away."
            )

    def instantiate_classes(self) -> None:
        """Build the model, data, trainer and callbacks; their own argument errors are a :class:`CLIError` naming
        the class and its own message (jsonargparse wraps it in a list of every subtype of the field's ``Union``)."""
        try:
            super().instantiate_classes()
        except (ValueError, TypeError) as err:
            cause = _root_cause(err)
            what = _raised_by(cause) or "the classes of the config"
            raise CLIError(f"cannot build {what}: {one_line(cause)}") from err


_EXAMPLE_CLASS = {"model": "lightning_topo.models.CNNClassifier", "data": "lightning_topo.datasets.DigitsDataModule"}


def unchosen_class(args: Sequence[str]) -> CLIError | None:
    """After jsonargparse refused the arguments: an argument of the model or the data module (``--data.batch_size
    0``) given while no class is chosen for it (no ``--data CLASS``, ``--data.class_path`` or ``--config`` file with
    a ``data:`` entry), as a :class:`CLIError` saying how to choose one, instead of jsonargparse's list of the types
    of the field's ``Union``; ``None`` if every such argument has its class.

    Example:
        >>> print(unchosen_class(["fit", "--data.batch_size", "0"]))  # doctest: +ELLIPSIS
        --data.batch_size sets an argument of the data module, but no data module is chosen: ...
        >>> unchosen_class(["fit", "--data", "DigitsDataModule", "--data.batch_size", "0"]) is None
        True
    """
    command = args[0] if args and not args[0].startswith("-") else "fit"
    configs = [part for _, config in read_configs(args) for part in (config, config.get(command))]
    for key, what in (("model", "model"), ("data", "data module")):
        given = [arg.split("=", 1)[0] for arg in args if arg.startswith(f"--{key}.")]
        chosen = any(arg == f"--{key}" or arg.startswith(f"--{key}=") for arg in args)
        chosen |= f"--{key}.class_path" in given or any(isinstance(c, dict) and key in c for c in configs)
        if given and not chosen:
            return CLIError(
                f"{given[0]} sets an argument of the {what}, but no {what} is chosen: choose one first, with "
                f"--{key} CLASS (e.g. --{key} {_EXAMPLE_CLASS[key]}) or a --config file with a `{key}:` entry (as "
                f"configs/digits_cnn.yaml has); `{PROG} {command} --help` lists the classes."
            )
    return None


def _root_cause(err: BaseException) -> BaseException:
    """The exception at the end of ``err``'s chain of explicit causes (``raise ... from``)."""
    seen = {id(err)}
    while err.__cause__ is not None and id(err.__cause__) not in seen:
        err = err.__cause__
        seen.add(id(err))
    return err


def _raised_by(err: BaseException) -> str | None:
    """The name of the class whose ``__init__`` raised ``err`` (the outermost ``__init__`` of a method, with ``self``,
    in its traceback), or ``None``."""
    tb = err.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_name == "__init__" and "self" in frame.f_code.co_varnames[:1]:
            return type(frame.f_locals["self"]).__name__
        tb = tb.tb_next
    return None


def _callback_values(args: list[str]) -> list[tuple[str, str, Any]]:
    """``(where, argument, value)`` of the ``init_args`` of each ``TopologyCallback`` in ``--trainer.callbacks``
    values of ``args`` and in the ``trainer.callbacks`` of its ``--config`` files."""
    from lightning_topo.callbacks import TopologyCallback

    def entries(value: Any) -> list[dict[str, Any]]:
        items = value if isinstance(value, list) else [value]
        return [item for item in items if isinstance(item, dict)]

    lists = [("--trainer.callbacks", value) for name, value in option_values(args, "trainer.") if name == "callbacks"]
    for file, config in read_configs(args):
        trainer = config.get("trainer")
        if isinstance(trainer, dict):
            lists.append((f"trainer.callbacks in {file}", trainer.get("callbacks")))
    found = []
    for where, value in lists:
        for entry in entries(value):
            path, init_args = entry.get("class_path"), entry.get("init_args")
            if isinstance(path, str) and isinstance(init_args, dict) and resolve_class(path, TopologyCallback):
                found += [(f"{where}: TopologyCallback {name}", name, v) for name, v in init_args.items()]
    return found


def fixed_checkpoint_files(callback: ModelCheckpoint) -> list[Path]:
    """The files a ``ModelCheckpoint`` writes at fixed paths, replacing what is there: with a ``dirpath``, without
    the version counter (``enable_version_counter=False``; with it Lightning writes ``name-v1.ckpt`` beside an
    existing file), its ``filename`` and ``last`` when they hold no ``{metric}`` template."""
    # enable_version_counter is kept only privately by Lightning 2.6; the default (True) writes no file twice
    if callback.dirpath is None or getattr(callback, "_enable_version_counter", True):
        return []
    names = [callback.filename] if callback.filename is not None and callback.save_top_k != 0 else []
    names += [callback.CHECKPOINT_NAME_LAST] if callback.save_last else []
    return [Path(callback.format_checkpoint_name({}, name)) for name in names if name and "{" not in name]


def _g(value: float) -> str:
    """``value`` in 4 significant digits, ``0`` for -0.0 (a flat curve's decay rate)."""
    return f"{value + 0.0:.4g}"


def run_trainer(args: list[str]) -> int:
    """Run a Trainer command with :class:`TopologyCLI`; return 0, or 130 after Ctrl-C (summary printed first)."""
    progress = EpochProgress()
    for module in ("lightning_topo.datasets", "lightning_topo.models"):  # `--help` lists them as known subclasses
        importlib.import_module(module)
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
    try:
        cli = TopologyCLI(
            LightningModule,
            LightningDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            args=args,
            parser_kwargs={"exit_on_error": False, "prog": PROG, "description": DESCRIPTION},
            save_config_kwargs={"overwrite": True},
            trainer_defaults={"callbacks": [progress]},
        )
        trainer = cli.trainer
    except SystemExit:  # Lightning exits after its graceful shutdown on KeyboardInterrupt; also --help
        if progress.trainer is None or not progress.trainer.interrupted:
            raise
        trainer = progress.trainer
    if trainer.is_global_zero and args[0] == "fit":
        seconds = time.perf_counter() - progress.started
        print("\n".join(fit_summary(trainer, args[1:], seconds, trained=progress.epochs_trained)), flush=True)
    if trainer.is_global_zero and args[0] == "validate":
        print("\n".join(validate_summary(trainer)), flush=True)
    if trainer.is_global_zero and args[0] == "predict":
        print("\n".join(predict_summary(trainer, progress.predictions)), flush=True)
    return INTERRUPTED_EXIT if trainer.interrupted else 0


class EpochProgress(Callback):
    """One line per training epoch on global rank zero when no progress bar is shown, e.g. ``[2/10] epoch 1:
    train_loss 0.31  val_acc 0.92  topology/decay_rate 0.804  (1.2 s)`` (epochs done of ``max_epochs``, the epoch as
    logged, its metrics without ``/``, ``topology/decay_rate`` on the epochs a ``TopologyCallback`` evaluated, its
    wall time; an epoch without validation shows the training metrics only, marked ``(no validation)``); keeps the
    trainer and counts the epochs this run trained."""

    def __init__(self) -> None:
        super().__init__()
        self.started = self._epoch_started = time.perf_counter()
        self.trainer: Trainer | None = None
        self.epochs_trained = 0
        self._before_validation: dict[str, int] = {}
        self._validation_keys: set[str] = set()  # what validation logs (values it replaced in callback_metrics)
        self._validated = False  # in this epoch
        self.predictions: list[Any] = []  # what predict_step returned, batch by batch, on the CPU

    def on_predict_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.predictions = []

    def on_predict_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int, *args: Any
    ) -> None:
        self.predictions.append(outputs.detach().cpu() if isinstance(outputs, torch.Tensor) else outputs)

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        self.trainer = trainer  # for the summary after Ctrl-C (Lightning then exits)

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._epoch_started = time.perf_counter()
        self._validated = False

    def on_validation_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._before_validation = {key: id(value) for key, value in trainer.callback_metrics.items()}

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking:
            return
        self._validated = True
        before = self._before_validation
        self._validation_keys |= {k for k, v in trainer.callback_metrics.items() if before.get(k) != id(v)}

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        from lightning_topo.callbacks import TopologyCallback

        self.epochs_trained += 1
        if not trainer.is_global_zero or trainer.progress_bar_callback is not None or trainer.sanity_checking:
            return
        total = trainer.max_epochs if trainer.max_epochs is not None and trainer.max_epochs > 0 else "?"
        metrics, epoch = trainer.callback_metrics, trainer.current_epoch
        keys = [key for key in sorted(metrics) if "/" not in key]
        if not self._validated:  # the values of the last validation are still there: not this epoch's
            keys = [key for key in keys if key not in self._validation_keys]
        topology = [cb for cb in trainer.callbacks if isinstance(cb, TopologyCallback)]  # type: ignore[attr-defined]
        # `callback_metrics` keeps the last evaluation's value: shown only on the epochs that evaluated.
        if not topology or any(cb.history and cb.history[-1]["epoch"] == epoch for cb in topology):
            keys.append("topology/decay_rate")
        values = "  ".join(f"{k} {_g(float(metrics[k]))}" for k in keys if k in metrics and metrics[k].numel() == 1)
        seconds = time.perf_counter() - self._epoch_started
        note = "" if self._validated else "  (no validation)"
        print(f"[{epoch + 1}/{total}] epoch {epoch}: {values}{note}  ({seconds:.2f} s)", flush=True)


def fit_summary(trainer: Trainer, args: Sequence[str], seconds: float, trained: int | None = None) -> list[str]:
    """What a ``fit`` run wrote and how to resume it, as lines to print.

    A first line (finished, or interrupted in which epoch; of a resumed run, how many epochs it ``trained``), then
    ``checkpoint:`` per checkpoint file of the run, ``metrics:`` and ``config:`` per logger, ``figures:`` (the latest
    PNG file of each kind written by ``TopologyCallback``), ``topology:`` its last evaluation and ``resume:`` the
    command that continues from the last checkpoint (for a run that reached ``max_epochs``, with twice that many).
    Paths relative to the working directory when under it.
    """
    from lightning_topo.callbacks import TopologyCallback

    epoch, interrupted = trainer.current_epoch, trainer.interrupted
    if trainer.fast_dev_run:
        return fast_dev_run_summary(trainer, args, seconds)
    max_epochs = trainer.max_epochs if trainer.max_epochs is not None and trainer.max_epochs > 0 else None
    max_steps = trainer.max_steps if trainer.max_steps is not None and trainer.max_steps >= 0 else None
    epochs_done = not interrupted and max_epochs is not None and epoch >= max_epochs
    steps_done = not interrupted and max_steps is not None and trainer.global_step >= max_steps
    timers = [cb for cb in trainer.callbacks if isinstance(cb, Timer)]  # type: ignore[attr-defined]
    time_done = not interrupted and any(cb.time_remaining() is not None and cb.time_remaining() <= 0 for cb in timers)
    stoppers: list[tuple[str, str]] = []
    if interrupted:
        head = f"interrupted (KeyboardInterrupt) during epoch {epoch} after {seconds:.1f} s"
    else:
        reasons = [f"max_steps={max_steps} reached"] if steps_done else []
        reasons += ["max_time reached"] if time_done else []
        stoppers = [] if reasons else _stoppers(trainer)
        if stoppers:
            reasons = [f"stopped early by {name}: {why}" for name, why in stoppers]
        elif not reasons and max_epochs is not None and epoch < max_epochs:
            reasons = ["stopped early"]
        early = f" ({', '.join(reasons)})" if reasons else ""
        head = f"finished {epoch} epoch{'s' if epoch != 1 else ''}{early} in {seconds:.1f} s"
        if trained is not None and trained != epoch:  # resumed from a checkpoint
            head += f" ({trained} of them trained by this run, resumed at epoch {epoch - trained})"
    lines = [f"{PROG} fit: {head}; written:"]
    callbacks = trainer.checkpoint_callbacks
    best = [getattr(c, "best_model_path", "") for c in callbacks]
    lasts = [getattr(c, "last_model_path", "") for c in callbacks]
    paths = [p for i, c in enumerate(callbacks) for p in [*getattr(c, "best_k_models", {}), best[i], lasts[i]]]
    checkpoints = [p for p in dict.fromkeys(paths) if p and Path(p).is_file()]
    unmonitored = [b for b, c in zip(best, callbacks, strict=True) if getattr(c, "monitor", "") is None]
    resume = next((p for p in [*lasts, *unmonitored] if p and Path(p).is_file()), None)
    for path in checkpoints:
        note = f" ({_saved_at(path)}; --ckpt_path resumes from it)" if path == resume else ""
        lines.append(f"  checkpoint: {_shown(path)}{note}")
    lines += _logger_lines(trainer)
    for callback in trainer.callbacks:  # type: ignore[attr-defined]
        if isinstance(callback, TopologyCallback):
            lines += _topology_lines(callback)
    hint = ""
    if resume:  # a limit the run reached would stop the resumed run at once: the command doubles it
        more_epochs = 2 * max_epochs if epochs_done and max_epochs else None
        more_steps = 2 * max_steps if steps_done and max_steps else None
        hint = resume_command(args, _shown(resume), more_epochs, more_steps)
        if time_done:
            hint = f"max_time was reached: add a larger --trainer.max_time to {hint}"
        elif stoppers:  # also when it stopped in the last epoch: the doubled limit alone would not train on
            names = " and ".join(dict.fromkeys(name for name, _ in stoppers))
            hint = (
                f"{names} stopped this run and resumes with its state: the resumed run stops at its next check if "
                f"the same condition holds (loosen or remove the callback to train on); {hint}"
            )
    if resume is None and checkpoints:
        again = resume_command(args, _shown(checkpoints[-1]))
        hint = f"no last checkpoint (set `save_last: true` on the ModelCheckpoint); from the best one: {again}"
    hint = hint or f"no checkpoint was written; run again: {shlex.join([PROG, 'fit', *args])}"
    return [*lines, f"  resume:     {hint}"]


def validate_summary(trainer: Trainer) -> list[str]:
    """What each ``TopologyCallback`` measured in a ``validate`` run, as lines to print (``trainer.validate`` returns
    the values logged with ``self.log`` only; the topology values are in ``trainer.callback_metrics``, the loggers and
    the callback's ``validate_history``)."""
    from lightning_topo.callbacks import TopologyCallback

    lines = []
    for callback in trainer.callbacks:  # type: ignore[attr-defined]
        if not isinstance(callback, TopologyCallback) or not callback.validate_history:
            continue
        last = callback.validate_history[-1]
        inputs = len(callback.sample.labels) if callback.sample is not None else "?"
        layers = "  ".join(f"{name} {_g(layer['omega'])}" for name, layer in last["layers"].items())
        lines += [
            f"{PROG} validate: topology of {len(last['layers'])} layers on {inputs} inputs: "
            f"decay_rate {_g(last['decay_rate'])}, theta {_g(last['theta'])}",
            f"  omega per layer: {layers}",
        ]
        keys = list(dict.fromkeys(k for layer in last["layers"].values() for k in layer.get("persistence") or {}))
        for key in keys:  # persistence summaries: the mean over classes, as logged
            values = "  ".join(
                f"{name} {_g(_mean(layer['persistence'][key]))}"
                for name, layer in last["layers"].items()
                if key in (layer.get("persistence") or {})
            )
            lines.append(f"  {key} per layer: {values}")
        lines += _figure_lines(callback, under="validate")
    if lines:
        lines += _logger_lines(trainer)
    return lines


PREDICTIONS_FILE = "predictions.pt"
"""Where ``predict`` saves what the model predicted, under the trainer's ``default_root_dir``."""


def predict_summary(trainer: Trainer, predictions: list[Any]) -> list[str]:
    """Save ``predictions`` (``predict_step``'s outputs, one per batch) to :data:`PREDICTIONS_FILE` under the
    trainer's ``default_root_dir``, as one tensor when they are tensors of one kind (else the list), and say so:
    how many, of which checkpoint, where, and the first values."""
    ckpt = trainer.ckpt_path
    source = f"of {_shown(str(ckpt))}" if ckpt else "of the model as built (no --ckpt_path: untrained weights)"
    if not predictions:
        return [f"{PROG} predict: no batch to predict {source} (the data module's predict split is empty)."]
    tensors = all(isinstance(p, torch.Tensor) and p.dim() >= 1 for p in predictions)
    same = tensors and len({(p.dtype, p.shape[1:]) for p in predictions}) == 1
    saved: Any = torch.cat(predictions) if same else predictions
    path = Path(trainer.default_root_dir) / PREDICTIONS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(saved, path)
    batches = f"{len(predictions)} batch{'es' if len(predictions) != 1 else ''}"
    if isinstance(saved, torch.Tensor):
        what = f"{saved.shape[0]} predictions ({batches}) {source}"
        kind = f"a {saved.dtype} tensor of shape {tuple(saved.shape)}"
        first = f"; first: {saved[:10].tolist()}" if saved.dim() == 1 else ""
    else:
        what, kind, first = f"predictions of {batches} {source}", f"a list of {len(predictions)} outputs", ""
    return [f"{PROG} predict: {what}{first}", f"  saved to {_shown(str(path))} ({kind}; torch.load reads it)"]


def _mean(values: Sequence[float]) -> float:
    """The mean of the finite ``values`` (NaN when there is none), as the callback logs a per-class value."""
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else math.nan


def _stoppers(trainer: Trainer) -> list[tuple[str, str]]:
    """The early-stopping callbacks that stopped ``trainer``'s run: per callback its class name and why it stopped
    (Lightning's ``stopping_reason_message`` less "Signaling Trainer to stop.", its long numbers in 4 digits;
    Lightning >= 2.5).

    A callback stopped the run when it stopped it in its last epoch: the message is part of the callback's state,
    so a run resumed from a checkpoint of a stopped run holds the old message whether or not it stopped again."""
    found = []
    if not trainer.should_stop:
        return found
    for callback in trainer.callbacks:  # type: ignore[attr-defined]
        stopped = isinstance(callback, EarlyStopping) and callback.stopped_epoch == trainer.current_epoch - 1
        why = getattr(callback, "stopping_reason_message", None) if stopped else None
        if why:
            why = " ".join(why.replace("Signaling Trainer to stop.", "").split()).rstrip(".")
            why = re.sub(r"-?\d+\.\d{5,}(e[-+]?\d+)?", lambda number: _g(float(number[0])), why)  # 4 digits
            found.append((type(callback).__name__, why))
    return found


def resume_command(args: Sequence[str], ckpt: str, max_epochs: int | None = None, max_steps: int | None = None) -> str:
    """``lightning-topo fit`` with the same arguments (less ``--overwrite_checkpoints``), ``--ckpt_path ckpt`` and,
    given, ``--trainer.max_epochs`` and ``--trainer.max_steps``.

    Example:
        >>> resume_command(["--config", "c.yaml", "--ckpt_path=a.ckpt"], "out/last.ckpt", 20)
        'lightning-topo fit --config c.yaml --ckpt_path out/last.ckpt --trainer.max_epochs 20'
        >>> resume_command(["--trainer.max_steps", "3"], "last.ckpt", max_steps=6)
        'lightning-topo fit --ckpt_path last.ckpt --trainer.max_steps 6'
    """
    limits = {"--trainer.max_epochs": max_epochs, "--trainer.max_steps": max_steps}
    added = ["--ckpt_path", ckpt] + [arg for name, n in limits.items() if n is not None for arg in (name, str(n))]
    return shlex.join([PROG, "fit", *_without(args, {"--ckpt_path", "--overwrite_checkpoints", *added[::2]}), *added])


def _without(args: Sequence[str], options: set[str]) -> list[str]:
    """``args`` less the ``options`` (``--name value`` or ``--name=value``).

    Example:
        >>> _without(["--a", "1", "--b=2", "--c", "3"], {"--a", "--b"})
        ['--c', '3']
    """
    kept: list[str] = []
    skip = False
    for arg in args:
        name, eq, _ = arg.partition("=")
        if not skip and name not in options:
            kept.append(arg)
        skip = not skip and name in options and not eq
    return kept


def fast_dev_run_summary(trainer: Trainer, args: Sequence[str], seconds: float) -> list[str]:
    """The summary of a ``fast_dev_run``: a trial of a few batches that saves no checkpoint and logs nothing, so
    nothing to resume; the command for a real run instead.

    Example:
        >>> from lightning.pytorch import Trainer
        >>> fast_dev_run_summary(Trainer(fast_dev_run=2, logger=False), ["--trainer.fast_dev_run=2"], 1.0)[-1]
        '  resume:     nothing to resume (fast_dev_run); for a real run: lightning-topo fit'
    """
    batches = int(trainer.fast_dev_run)
    real = _without(args, {"--trainer.fast_dev_run"})
    if len(real) == len(args):  # set in a config file
        real += ["--trainer.fast_dev_run", "false"]
    return [
        f"{PROG} fit: fast_dev_run finished in {seconds:.1f} s: {batches} batch{'es' if batches != 1 else ''} of "
        "each loop, no checkpoint, no logs; written: nothing",
        f"  resume:     nothing to resume (fast_dev_run); for a real run: {shlex.join([PROG, 'fit', *real])}",
    ]


def _saved_at(path: str) -> str:
    """``"epoch E, step S"`` of a Lightning checkpoint (read memory-mapped), or ``"saved by this run"``."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        return f"epoch {int(state['epoch'])}, step {int(state['global_step'])}"
    except (OSError, RuntimeError, KeyError, TypeError, ValueError):
        return "saved by this run"


def _logger_lines(trainer: Trainer) -> list[str]:
    """The ``metrics:`` and ``config:`` lines of each logger that writes to a folder."""
    lines = []
    for logger in trainer.loggers:
        folder = getattr(logger, "log_dir", None) or getattr(logger, "save_dir", None)
        if folder is not None:
            metrics = Path(folder) / "metrics.csv"
            lines.append(f"  metrics:    {_shown(str(metrics if metrics.is_file() else folder))}")
            if (Path(folder) / "config.yaml").is_file():
                lines.append(f"  config:     {_shown(str(Path(folder) / 'config.yaml'))}")
    return lines


def _figure_lines(callback: Any, under: str | None = None) -> list[str]:
    """The ``figures:`` lines of a callback (the latest file of each kind per folder; only folders named ``under``
    where given)."""
    callback.wait_for_charts(CHART_WAIT_SECONDS)  # figures may still be drawing in the background
    files = [Path(p) for p in dict.fromkeys(callback.chart_files) if Path(p).is_file()]
    if under is not None:
        files = [p for p in files if p.parent.name == under]
    latest = {(p.parent, re.sub(r"_epoch\d+$", "", p.stem)): p for p in files}  # betti_vs_depth_epoch007 -> kind
    lines = []
    for folder in dict.fromkeys(p.parent for p in files):
        names = ", ".join(p.name for (parent, _), p in latest.items() if parent == folder)
        count = sum(p.parent == folder for p in files)
        lines.append(f"  figures:    {_shown(str(folder))}/ ({count} PNG files; latest: {names})")
    return lines


def _topology_lines(callback: Any) -> list[str]:
    """The ``figures:`` lines (the latest file of each kind per folder) and ``topology:`` line of a callback."""
    lines = _figure_lines(callback)
    if callback.history:
        last, count = callback.history[-1], len(callback.history)
        lines.append(
            f"  topology:   {count} evaluation{'s' if count != 1 else ''}; epoch {last['epoch']}: "
            f"decay_rate {_g(last['decay_rate'])}, theta {_g(last['theta'])}"
        )
    return lines


def _shown(path: str) -> str:
    """``path`` relative to the working directory when it lies under it, else as it is."""
    full, cwd = Path(path).resolve(), Path.cwd().resolve()
    return str(full.relative_to(cwd)) if full.is_relative_to(cwd) else str(path)
