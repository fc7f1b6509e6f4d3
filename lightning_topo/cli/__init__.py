"""The command line ``lightning-topo`` (also ``python -m lightning_topo``), built by the libraries:

* ``fit``, ``validate``, ``test``, ``predict``: Lightning's ``LightningCLI`` (:mod:`.training`): model, data, trainer
  and callbacks (``TopologyCallback`` among them) in YAML; ``fit`` prints a line per epoch and a summary ending with
  the command that resumes.
* ``analyse`` (alias ``analyze``) and ``rank``: jsonargparse's ``auto_cli`` on the functions of :mod:`.analysis`,
  whose signatures and docstrings give the options, ``--config``, ``--print_config`` and the help.

Errors are classified by type, never by message: a user error (:data:`USER_ERRORS`) prints one line and exits
2, any other exception one line naming its type and exits 1, Ctrl-C exits 130; ``--debug`` shows the traceback. An
argument jsonargparse refuses is explained in that line by :mod:`.arguments` (the option or config entry, the class
and what the argument takes).
"""

from __future__ import annotations

import contextlib
import itertools
import pickle
import sys
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import yaml
from jsonargparse import ArgumentError
from lightning.pytorch.utilities.exceptions import MisconfigurationException

from lightning_topo.capture import CaptureError
from lightning_topo.config import ConfigError

__all__ = [
    "INTERRUPTED_EXIT",
    "USER_ERRORS",
    "CLIError",
    "config_files",
    "main",
    "one_line",
    "option_values",
    "read_checkpoint",
    "user_message",
]

PROG = "lightning-topo"
TRAINER_COMMANDS = ("fit", "validate", "test", "predict")
ANALYSIS_COMMANDS = ("analyse", "rank")
INTERRUPTED_EXIT = 130
"""Exit code after Ctrl-C (a ``KeyboardInterrupt``): 128 + SIGINT, as a shell reports it."""
MAX_MESSAGE = 1000
"""Longest error message printed (characters, after collapsing whitespace)."""
CHECKPOINT_READ_ERRORS = (OSError, EOFError, RuntimeError, pickle.UnpicklingError, KeyError, ValueError)
"""What ``torch.load`` raises for a file that is not a (complete) checkpoint: truncated, random bytes, ..."""


class CLIError(Exception):
    """A user error found by the command line itself: printed as one line, exit code 2."""


USER_ERRORS = (CLIError, ArgumentError, ConfigError, CaptureError, MisconfigurationException)
"""The exception types that are the user's to fix (exit code 2): bad arguments, YAML or class paths (jsonargparse's
``ArgumentError``), a bad ``TopologyConfig`` value, an unknown layer, data that cannot be sampled, a Lightning
misconfiguration, a bad checkpoint. Any other exception is internal (exit code 1)."""


def one_line(err: BaseException, limit: int = MAX_MESSAGE) -> str:
    """The exception's own message on one line: whitespace collapsed, capped at ``limit`` characters.

    Example:
        >>> one_line(ValueError("a\\n  b")), one_line(KeyError())
        ('a b', 'KeyError')
    """
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def user_message(err: BaseException, where: str, args: Sequence[str] = ()) -> str:
    """The line printed for a user error: malformed YAML says so (naming the ``--config`` files of ``args``), another
    argument error points to ``--help``.

    Example:
        >>> user_message(ArgumentError(None, "bad"), "lightning-topo fit")
        'bad (see `lightning-topo fit --help`)'
    """
    if not isinstance(err, ArgumentError):
        return one_line(err)
    cause: BaseException | None = err
    while cause is not None and not isinstance(cause, yaml.YAMLError):
        cause = cause.__cause__ or cause.__context__
    if cause is not None:
        files = config_files(args)
        named = f" (--config {', '.join(files)})" if files else ""
        return f"malformed YAML{named}: {one_line(err)}; fix the syntax of the config file."
    return f"{one_line(err)} (see `{where} --help`)"


def config_files(args: Sequence[str]) -> list[str]:
    """The files given to ``--config`` in ``args``.

    Example:
        >>> config_files(["fit", "--config", "a.yaml", "--config=b.yaml", "--x", "1"])
        ['a.yaml', 'b.yaml']
    """
    files = [value for option, value in itertools.pairwise(args) if option == "--config"]
    return files + [a.split("=", 1)[1] for a in args if a.startswith("--config=")]


def option_values(args: Sequence[str], prefix: str) -> list[tuple[str, Any]]:
    """``(name, value)`` of each ``--<prefix>name value`` or ``--<prefix>name=value`` in ``args`` (``name`` without
    ``prefix``; the value read as YAML, as jsonargparse reads it; one that is not YAML is left out).

    Example:
        >>> option_values(["--analysis.k", "3", "--analysis.metric=knn", "--seed", "1"], "analysis.")
        [('k', 3), ('metric', 'knn')]
    """
    found = []
    for i, arg in enumerate(args):
        if not arg.startswith(f"--{prefix}"):
            continue
        name, eq, value = arg[2 + len(prefix) :].partition("=")
        if not eq and i + 1 < len(args):
            value = args[i + 1]
        elif not eq:
            continue
        with contextlib.suppress(yaml.YAMLError):
            found.append((name, yaml.safe_load(value)))
    return found


def read_checkpoint(path: str, option: str, weights_only: bool = True) -> Any:
    """``torch.load`` of a checkpoint, every failure a :class:`CLIError` naming the file and what to do.

    A missing file lists the checkpoints beside it; a file that torch's safe loader (``weights_only``) refuses is
    told apart, by :func:`torch.serialization.get_unsafe_globals_in_checkpoint`, from one that is not a checkpoint.
    """
    file = Path(path)
    if not file.is_file():
        found = sorted(p.name for p in file.parent.glob("*.ckpt")) if file.parent.is_dir() else []
        where = f"beside it: {', '.join(found)}" if found else f"nothing is there yet: `{PROG} fit` writes checkpoints"
        raise CLIError(f"checkpoint {path!r} not found; pass an existing file to {option} ({where}).")
    try:
        return torch.load(file, map_location="cpu", weights_only=weights_only, mmap=zipfile.is_zipfile(file))
    except CHECKPOINT_READ_ERRORS as err:
        unsafe: list[str] = []
        if weights_only and isinstance(err, pickle.UnpicklingError):
            with contextlib.suppress(*CHECKPOINT_READ_ERRORS):  # not a checkpoint at all
                unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(file)
        if unsafe:
            raise CLIError(
                f"checkpoint {path!r} is intact but holds Python objects that torch's safe loader refuses "
                f"({', '.join(unsafe)}); if you trust its source, pass `--weights_only false` (this runs their code)."
            ) from err
        raise CLIError(
            f"checkpoint {path!r} is not a readable checkpoint ({type(err).__name__} while loading it: the file "
            "is truncated, corrupt or not written by torch.save / Lightning); pass a complete checkpoint file."
        ) from err


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``lightning-topo``: runs the command and returns the exit code (0, 1, 2 or 130)."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    args = [a for a in args if a != "--debug"]
    args[:1] = ["analyse" if a == "analyze" else a for a in args[:1]]
    command = args[0] if args else ""
    where = f"{PROG} {command}" if command in TRAINER_COMMANDS + ANALYSIS_COMMANDS else PROG
    if argv is not None:  # called from Python (a test, a notebook): warnings are shown as that caller shows them
        return _run(args, command, where, debug)
    with warnings.catch_warnings():  # the command: restores `showwarning` when it returns
        _SHOWN.clear()
        warnings.showwarning = _show_warning
        return _run(args, command, where, debug)


_PACKAGE_DIR = str(Path(__file__).resolve().parents[1])


def _show_warning(
    message: Warning | str, category: type[Warning], filename: str, lineno: int, file: Any = None, line: Any = None
) -> None:
    """Our own warnings as ``UserWarning: message`` (the source line of the package says nothing to a user of the
    command); the others as Python shows them. Each text once per command (a config checked at two places of the
    argument parser warned twice)."""
    seen = (category, str(message))
    if seen in _SHOWN:
        return
    _SHOWN.add(seen)
    if not str(Path(filename).resolve()).startswith(_PACKAGE_DIR):
        _DEFAULT_SHOW(message, category, filename, lineno, file, line)
        return
    with contextlib.suppress(OSError):
        print(f"{category.__name__}: {message}", file=sys.stderr if file is None else file, flush=True)


_DEFAULT_SHOW = warnings.showwarning
_SHOWN: set[tuple[type[Warning], str]] = set()


def _run(args: list[str], command: str, where: str, debug: bool) -> int:
    try:
        with contextlib.suppress(ImportError):  # figures are optional
            __import__("matplotlib").use("Agg")
        if command in ANALYSIS_COMMANDS:
            from lightning_topo.cli.analysis import run_analysis

            run_analysis(args)
            return 0
        if not command.startswith("-") and command not in TRAINER_COMMANDS:
            choices = ", ".join(map(repr, TRAINER_COMMANDS + ANALYSIS_COMMANDS))
            what = f"unknown command {command!r}" if command else "no command given"
            raise CLIError(f"{what}; choose from {choices} (see `{PROG} --help`).")
        from lightning_topo.cli.training import run_trainer

        return run_trainer(args)
    except SystemExit as exc:  # --help, --print_config
        return exc.code if isinstance(exc.code, int) else 2 if exc.code else 0
    except KeyboardInterrupt:
        print(f"{where}: interrupted", file=sys.stderr)
        return INTERRUPTED_EXIT
    except Exception as err:
        if debug:
            raise
        if isinstance(err, USER_ERRORS):
            print(f"{where}: error: {user_message(err, where, args)}", file=sys.stderr)
            return 2
        hint = "(rerun with --debug for the traceback)"
        print(f"{where}: error: {type(err).__name__}: {one_line(err)} {hint}", file=sys.stderr)
        return 1
