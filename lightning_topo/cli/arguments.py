"""What the command line says when jsonargparse refuses its arguments: one line naming the option (or the config
file's entry), the class, the value and what the argument takes, instead of jsonargparse's list of every type of a
field's ``Union``. Each check runs after jsonargparse has refused the arguments, re-reads them (the command line,
the ``--config`` files) and says nothing it cannot attribute (``None``: jsonargparse's own message stands); a value
is judged by ``TopologyConfig`` (:func:`refused_choice`) or by jsonargparse itself against the argument's type alone
(:func:`refused_argument`), never by reading a message.
"""

from __future__ import annotations

import contextlib
import difflib
import inspect
import pkgutil
import re
import types
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import yaml
from jsonargparse import ArgumentError, ArgumentParser
from lightning.pytorch import Callback, LightningDataModule, LightningModule, Trainer
from lightning.pytorch.loggers import Logger
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from lightning_topo.cli import CLIError, config_files, one_line
from lightning_topo.config import ConfigError, TopologyConfig

__all__ = ["read_configs", "refused_argument", "refused_choice", "refused_value", "resolve_class"]


def _lists_choices(annotation: Any) -> bool:
    return get_origin(annotation) is Literal or any(_lists_choices(arg) for arg in get_args(annotation))


def refused_choice(candidates: Iterable[tuple[str, str, Any]]) -> CLIError | None:
    """After jsonargparse refused the arguments: the first of ``candidates`` (``(where, field, value)``) that is a
    ``TopologyConfig`` field with a fixed set of choices (``complex``, ``metric``, ``persistence``, ``k``, ...) or a
    plain type (``seed``, ``scale``, ``overlap``: numbers, strings, booleans, which jsonargparse reads as YAML does)
    whose ``value`` ``TopologyConfig`` refuses too, as a :class:`CLIError` with its one-line message (the valid
    choices, the closest one; the type), instead of jsonargparse's list of every type of the field's ``Union``;
    ``None`` if none is. Fields whose values jsonargparse turns into objects (``input_fn``: an import path) are left
    out: ``TopologyConfig`` would refuse the text that jsonargparse accepts.
    """
    hints = get_type_hints(TopologyConfig).items()
    fields = {name for name, annotation in hints if _lists_choices(annotation) or _plain(annotation)}
    for where, name, value in candidates:
        if name not in fields:
            continue
        try:
            with warnings.catch_warnings():  # a valid value's advice (min_persistence without persistence) is not due
                warnings.simplefilter("ignore")
                TopologyConfig(**{name: value})
        except ConfigError as err:
            return CLIError(f"{where}: {one_line(err)}")
    return None


_CLASS_OPTIONS: dict[str, tuple[type, str]] = {
    "model": (LightningModule, "model"),
    "data": (LightningDataModule, "data module"),
    "optimizer": (Optimizer, "optimizer"),
    "lr_scheduler": (LRScheduler, "learning-rate scheduler"),
}
_EXAMPLE_PATH = {
    LightningModule: "lightning_topo.models.CNNClassifier",
    LightningDataModule: "lightning_topo.datasets.DigitsDataModule",
    Optimizer: "torch.optim.Adam",
    LRScheduler: "torch.optim.lr_scheduler.StepLR",
}
_CLASS_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
"""A class name or a dotted import path (not a YAML mapping or a list)."""
_YAML_WORDS = {"null", "Null", "NULL", "None", "none", "true", "True", "false", "False"}
"""Values of ``--model`` / ``--data`` that jsonargparse reads as ``None`` or a boolean, not as a class name."""
_NOT_ARGUMENTS = {"class_path", "init_args", "dict_kwargs", "help"}
_TRAINER_CLASSES: dict[str, type] = {"callbacks": Callback, "logger": Logger}


def refused_value(args: Sequence[str], classes: dict[str, tuple[type, str]] | None = None) -> CLIError | None:
    """After jsonargparse refused the arguments: the first ``--trainer.NAME VALUE``, ``--model[.init_args].NAME
    VALUE`` or ``--data[.init_args].NAME VALUE`` of ``args``, or ``trainer:`` / ``model: init_args:`` / ``data:
    init_args:`` entry of its ``--config`` files, whose class (``Trainer``, or the model / data class chosen on the
    command line or in a config file) has no argument ``NAME``, or whose value that argument's type refuses, as a
    :class:`CLIError` naming the option (or the file), the class, the value and what the argument takes (instead of
    jsonargparse's list of every type of the field's ``Union``); ``None`` if there is none. The ``init_args`` of
    ``trainer.callbacks`` and ``trainer.logger`` entries are checked against their classes the same way. A value is
    checked by jsonargparse itself, against the argument's type alone; arguments whose types name classes are left
    to jsonargparse's message. A class option (``--model``, ``--data``, ``--optimizer``, ``--lr_scheduler``; or
    ``classes``: option -> (base class, what it is called)) given a name that is no such class says so, with the
    closest names.

    Example:
        >>> print(refused_value(["fit", "--trainer.max_epochs", "x"]))
        --trainer.max_epochs: Trainer's `max_epochs` must be an integer or null, got 'x'.
        >>> refused_value(["fit", "--trainer.max_epochs", "3"]) is None
        True
    """
    command = args[0] if args and not args[0].startswith("-") else "fit"
    classes = _CLASS_OPTIONS if classes is None else classes
    chosen: dict[str, type | None] = {"trainer": Trainer, "model": None, "data": None}
    configs = dict(read_configs(args))
    for i, arg in enumerate(args):
        option, eq, raw = arg.partition("=")
        if not eq:
            raw = args[i + 1] if i + 1 < len(args) else ""
        if option == "--config":
            config = configs.get(raw, {})
            for part in (config, config.get(command)):
                for key in ("trainer", *classes) if isinstance(part, dict) else ():
                    refused = _refused_entry(part.get(key), key, chosen, raw, classes)
                    if refused is not None:
                        return refused
            continue
        key, _, name = option[2:].partition(".") if option.startswith("--") else ("", "", "")
        if key in classes and name in ("", "class_path"):
            base, what = classes[key]
            chosen[key] = resolve_class(raw, base)
            unknown = None if chosen[key] else _unknown_class(option, raw, base, what, f"--{key} ")
            if unknown is not None:
                return unknown
            continue
        if option == "--seed_everything":
            if _type_refuses(bool | int, raw, given=True):  # LightningCLI's type of seed_everything
                return CLIError(f"{option} must be {_expected(bool | int)}, got {raw!r}.")
            continue
        name = name.removeprefix("init_args.") if key in classes else name
        if key == "trainer" and name in _TRAINER_CLASSES:
            with contextlib.suppress(yaml.YAMLError):
                refused = _refused_classes(option, "", yaml.safe_load(raw), _TRAINER_CLASSES[name])
                if refused is not None:
                    return refused
            continue
        cls = chosen.get(key)
        if cls is None or not name or "." in name or name.endswith("+") or name in _NOT_ARGUMENTS:
            continue
        refused = refused_argument(option, cls, name, raw, given=True)
        if refused is not None:
            return refused
    return None


def _refused_entry(
    entry: Any, key: str, chosen: dict[str, type | None], file: str, classes: dict[str, tuple[type, str]]
) -> CLIError | None:
    """:func:`refused_value` for the ``key`` entry (``trainer``, or a class option: ``model``, ``data``, ...) of
    config ``file``: the class it chooses (``class_path``) goes to ``chosen`` (a name that is no such class is
    refused); its arguments (``init_args``; the trainer's own) are checked."""
    if key != "trainer":
        path = entry.get("class_path") if isinstance(entry, dict) else entry
        if isinstance(path, str):
            base, what = classes[key]
            chosen[key] = resolve_class(path, base)
            unknown = None if chosen[key] else _unknown_class(f"{key} in {file}", path, base, what, "class_path: ")
            if unknown is not None:
                return unknown
        entry = entry.get("init_args") if isinstance(entry, dict) else None
    cls = chosen.get(key)
    if cls is None or not isinstance(entry, dict):
        return None
    where = "" if key == "trainer" else "init_args."
    for name, value in entry.items():
        if key == "trainer" and name in _TRAINER_CLASSES:
            refused = _refused_classes(f"trainer.{name}", f" in {file}", value, _TRAINER_CLASSES[name])
        elif isinstance(name, str) and name not in _NOT_ARGUMENTS:
            refused = refused_argument(f"{key}.{where}{name} in {file}", cls, name, value, given=False)
        else:
            refused = None
        if refused is not None:
            return refused
    return None


def _refused_classes(option: str, suffix: str, value: Any, base: type) -> CLIError | None:
    """The ``init_args`` of each ``{class_path, init_args}`` in ``value`` (one, or a list: ``trainer.callbacks``,
    ``trainer.logger``) checked by :func:`refused_argument` against the subclass of ``base`` it names; the first
    refusal, labelled ``option[i]`` + ``suffix``."""
    entries = value if isinstance(value, list) else [value]
    for i, entry in enumerate(entries):
        path = entry.get("class_path") if isinstance(entry, dict) else None
        init_args = entry.get("init_args") if isinstance(entry, dict) else None
        cls = resolve_class(path, base) if isinstance(path, str) else None
        if cls is None or not isinstance(init_args, dict):
            continue
        where = f"{option}[{i}]" if isinstance(value, list) else option
        for name, arg in init_args.items():
            refused = refused_argument(f"{where}{suffix}", cls, str(name), arg, given=False)
            if refused is not None:
                return refused
    return None


def _unknown_class(option: str, name: str, base: type, what: str, example: str) -> CLIError | None:
    """``name`` (given to ``option``) names no subclass of ``base``: the error, with the closest names of the
    subclasses imported (a dotted path: why it does not import, or what it is instead); ``example`` leads the
    example of an import path (``--data ``, ``class_path: ``). ``None`` when ``name`` is no class name at all (a
    YAML mapping, ``null``): jsonargparse's message stands."""
    if not _CLASS_NAME.fullmatch(name) or name in _YAML_WORDS:
        return None
    if "." in name:
        try:
            found = pkgutil.resolve_name(name)
        except Exception as err:  # importing a user's module can raise anything; the reason is the message
            return CLIError(f"{option}: cannot import {name!r} ({type(err).__name__}: {one_line(err)}).")
        it_is = "a class" if isinstance(found, type) else f"a {type(found).__name__}"
        return CLIError(f"{option}: {name!r} is {it_is}, not a subclass of {base.__name__} (a {what} class).")
    names = sorted({sub.__name__ for sub in _subclasses(base)})
    close = [f"`{c}`" for c in difflib.get_close_matches(name, names, n=3)]
    listed = f"{', '.join(close[:-1])} or {close[-1]}" if len(close) > 1 else "".join(close)
    hint = f" (did you mean {listed}?)" if close else ""
    return CLIError(
        f"{option}: no {what} class named {name!r} is imported{hint}; give its import path (e.g. "
        f"{example}{_EXAMPLE_PATH.get(base, _EXAMPLE_PATH[LightningModule])}) or the "
        f"name of an imported subclass of {base.__name__}."
    )


def _subclasses(base: type) -> list[type]:
    """Every subclass of ``base`` imported so far, at any depth."""
    found, pending = [], [base]
    while pending:
        for sub in pending.pop().__subclasses__():
            found.append(sub)
            pending.append(sub)
    return found


def _type_refuses(hint: Any, value: Any, given: bool) -> bool:
    """Whether jsonargparse refuses ``value`` for an argument of type ``hint``: read as the command line's text when
    ``given``, else as a config file's value."""
    parser = ArgumentParser(exit_on_error=False)
    parser.add_argument("--value", type=hint)
    try:
        parser.parse_args([f"--value={value}"]) if given else parser.parse_object({"value": value})
    except ArgumentError:
        return True
    return False


def resolve_class(path: str, base: type) -> type | None:
    """The subclass of ``base`` named by ``path``: an import path, or the name of a subclass already imported (as
    jsonargparse resolves ``--model CNNClassifier``); ``None`` if there is not exactly one."""
    if "." in path:
        try:
            found = pkgutil.resolve_name(path)
        except Exception:  # importing a user's module can raise anything: no class, jsonargparse's message stands
            return None
        return found if isinstance(found, type) and issubclass(found, base) else None
    named = {sub for sub in _subclasses(base) if sub.__name__ == path}
    return named.pop() if len(named) == 1 else None


def refused_argument(
    option: str, cls: type, name: str, value: Any, given: bool, owner: str | None = None, kind: str = "argument"
) -> CLIError | None:
    """A :class:`CLIError` (prefixed ``option``) when ``cls.__init__`` has no argument ``name`` (and takes no
    ``**kwargs``), or when its type refuses ``value`` (read by jsonargparse as the command line's text when ``given``,
    else as a config file's value); else ``None``. ``owner`` and ``kind`` name ``cls`` and its arguments in the
    message (default: the class's name, "argument").

    Example:
        >>> print(refused_argument("trainer.max_epochs in my.yaml", Trainer, "max_epochs", "ten", given=False))
        trainer.max_epochs in my.yaml: Trainer's `max_epochs` must be an integer or null, got 'ten'.
    """
    try:
        params = inspect.signature(cls.__init__).parameters
    except (ValueError, TypeError):  # no signature to read (a class implemented in C): jsonargparse's message stands
        return None
    if name not in params:
        names = [n for n, p in params.items() if n != "self" and p.kind is not inspect.Parameter.VAR_POSITIONAL]
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            # **kwargs (TopologyCallback's TopologyConfig fields): the names jsonargparse itself accepts, if it can say
            names = _accepted_names(cls)
            if names is None or name in names:
                return None
        close = difflib.get_close_matches(name, names, n=1)
        hint = f" (did you mean `{close[0]}`?)" if close else ""
        listed = f"its {kind}s: {', '.join(names)}" if len(names) <= 12 else f"--help lists its {kind}s"
        listed = listed if names else f"it takes no {kind}s"
        return CLIError(f"{option}: {owner or cls.__name__} has no {kind} `{name}`{hint}; {listed}.")
    try:
        hint = get_type_hints(cls.__init__).get(name)
    except (NameError, TypeError, AttributeError):
        return None
    if hint is None or not _plain(hint):
        return None
    if _type_refuses(hint, value, given):
        return CLIError(f"{option}: {owner or cls.__name__}'s `{name}` must be {_expected(hint)}, got {value!r}.")
    return None


def _accepted_names(cls: type) -> list[str] | None:
    """The arguments jsonargparse accepts for ``cls`` (for a ``**kwargs`` it follows, e.g. into ``TopologyConfig``),
    or ``None`` when it cannot list them."""
    parser = ArgumentParser(exit_on_error=False)
    try:
        parser.add_class_arguments(cls, fail_untyped=False)
    except (ValueError, TypeError, AttributeError, NameError, ArgumentError):
        return None
    keys = parser.get_defaults().keys()  # a jsonargparse Namespace: iterating it is not iterating its keys
    return [name for name in keys if "." not in name]


_PLAIN_TYPES = {
    type(None): "null",
    bool: "a boolean (true/false)",
    int: "an integer",
    float: "a number",
    str: "a string",
}
_PLURAL = {bool: "booleans", int: "integers", float: "numbers", str: "strings"}


def _plain(hint: Any) -> bool:
    """Whether ``hint`` is made of ``None``, ``bool``, ``int``, ``float``, ``str``, ``Literal``, ``Union``, lists of
    ``bool``, ``int``, ``float`` or ``str`` and ``dict[str, ...]`` of those or ``Any`` alone."""
    if get_origin(hint) is Literal:
        return True
    if get_origin(hint) in (Union, types.UnionType):
        return all(_plain(part) for part in get_args(hint))
    if get_origin(hint) is list:
        return get_args(hint)[0] in _PLURAL
    if get_origin(hint) is dict:
        return get_args(hint)[0] is str and (get_args(hint)[1] is Any or _plain(get_args(hint)[1]))
    return hint in _PLAIN_TYPES


def _expected(hint: Any) -> str:
    """What a :func:`_plain` type takes, in words: ``one of 64, 32, 'bf16-mixed', an integer or null``."""
    choices: list[str] = []
    kinds: list[str] = []
    pending = [hint]
    while pending:
        part = pending.pop(0)
        if get_origin(part) in (Union, types.UnionType):
            pending[:0] = get_args(part)
        elif get_origin(part) is Literal:
            choices += [repr(value) for value in get_args(part)]
        elif get_origin(part) is list:
            kinds.append(f"a list of {_PLURAL[get_args(part)[0]]}")
        elif get_origin(part) is dict:
            kinds.append("a mapping")
        else:
            kinds.append(_PLAIN_TYPES[part])
    words = ([f"one of {', '.join(choices)}"] if choices else []) + kinds
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


def read_configs(args: Sequence[str]) -> list[tuple[str, dict[str, Any]]]:
    """``(file, mapping)`` of each ``--config`` file of ``args`` that reads as a YAML mapping (the others are left
    out: jsonargparse's own error names them)."""
    found = []
    for file in config_files(args):
        with contextlib.suppress(OSError, yaml.YAMLError):
            config = yaml.safe_load(Path(file).read_text())
            if isinstance(config, dict):
                found.append((file, config))
    return found
