"""``lightning-topo analyse`` and ``rank``: jsonargparse's ``auto_cli`` makes their options, ``--config``,
``--print_config`` and help from the signatures and docstrings below; ``--analysis.*`` are the fields of
:class:`~lightning_topo.config.TopologyConfig`, each documented once in its docstring."""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import json
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import torch
from jsonargparse import ArgumentError, ArgumentParser, auto_parser
from lightning.pytorch import LightningDataModule, LightningModule
from torch import nn

from lightning_topo.analysis import Ranking, TopologyReport, rank_models
from lightning_topo.analysis import analyse as analyse_model
from lightning_topo.cli import (
    PROG,
    CLIError,
    one_line,
    option_values,
    read_checkpoint,
)
from lightning_topo.cli.arguments import read_configs, refused_argument, refused_choice, refused_value
from lightning_topo.config import TopologyConfig

MODEL_LOAD_ERRORS = (RuntimeError, KeyError, TypeError, ValueError, AttributeError)
"""What building a model, or loading a readable checkpoint into it, raises when they do not fit each other."""


@runtime_checkable
class ModelClass(Protocol):
    """A model class, named by its import path: any ``torch.nn.Module``."""

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any: ...


@dataclass
class ModelEntry:
    """One model of ``rank --models``.

    Args:
        name: Its name in the ranking and the name of its report file.
        model: Import path of its class (any torch.nn.Module), e.g. lightning_topo.models.CNNClassifier.
        ckpt: Its checkpoint (Lightning's, or a torch.save'd state_dict); none: a freshly initialised model.
        model_args: Keyword arguments of the class; a LightningModule's override the hyperparameters saved in ckpt.
    """

    name: str
    model: type[ModelClass]
    ckpt: str | None = None
    model_args: dict[str, Any] = field(default_factory=dict)


def load_model(
    cls: type,
    ckpt: str | None = None,
    model_args: dict[str, Any] | None = None,
    weights_only: bool = True,
    seed: int = 0,
    option: str = "--ckpt",
) -> nn.Module:
    """Build a model of class ``cls`` and load ``ckpt`` into it (on the CPU).

    A ``LightningModule`` is restored by ``load_from_checkpoint`` from a Lightning checkpoint (its saved
    hyperparameters, overridden by ``model_args``); another ``nn.Module``, or a ``LightningModule`` given a plain
    ``torch.save``'d ``state_dict``, is built from ``model_args`` and given that ``state_dict``. Without ``ckpt``:
    the freshly initialised model, its weights drawn with torch's generator seeded with ``seed`` (the same model
    every run; the process's random state is left as it was), with a warning. Every failure is a
    :class:`CLIError`; ``option`` says where ``ckpt`` came from (``--ckpt``, or a ``rank`` entry's ``ckpt``).
    """
    name = f"{cls.__module__}.{cls.__qualname__}"
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise CLIError(f"{name} is not a torch.nn.Module class; e.g. lightning_topo.models.CNNClassifier.")
    model_args = dict(model_args or {})
    state = None if ckpt is None else read_checkpoint(ckpt, option, weights_only)
    if ckpt is None:
        warnings.warn(
            f"no checkpoint given: analysing a freshly initialised {cls.__name__} (weights seeded with {seed}).",
            UserWarning,
            stacklevel=2,
        )
    lightning_checkpoint = isinstance(state, dict) and "pytorch-lightning_version" in state
    if lightning_checkpoint and issubclass(cls, LightningModule) and model_args:
        # load_from_checkpoint drops keyword arguments the class does not take: a misspelt one would pass unseen
        params = inspect.signature(cls.__init__).parameters
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        unknown = [k for k in model_args if k not in params or k == "self"]
        if unknown and not takes_any:
            hints = {k: difflib.get_close_matches(k, [p for p in params if p != "self"], n=1) for k in unknown}
            named = ", ".join(f"{k!r}" + (f" (did you mean {h[0]!r}?)" if h else "") for k, h in hints.items())
            raise CLIError(
                f"{name} takes no argument {named}: model_args must be arguments of {cls.__name__}.__init__ "
                f"({', '.join(p for p in params if p != 'self')})."
            )
    try:
        if lightning_checkpoint and issubclass(cls, LightningModule):
            return cls.load_from_checkpoint(ckpt, map_location="cpu", weights_only=weights_only, **model_args)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = cls(**model_args)
        if isinstance(state, dict):
            model.load_state_dict(state.get("state_dict", state))
        return model
    except MODEL_LOAD_ERRORS as err:
        source = f"checkpoint {ckpt!r} and " if ckpt else ""
        fix = (
            "check that the checkpoint was written for this class and that the model_args are its arguments"
            if ckpt
            else "pass its arguments as --model_args '{name: value, ...}' (in rank: each entry's model_args)"
        )
        raise CLIError(f"cannot build {name} from {source}model_args {model_args}: {one_line(err)}; {fix}.") from err


def analyse(
    model: type[ModelClass],
    data: LightningDataModule,
    ckpt: str | None = None,
    model_args: dict[str, Any] | None = None,
    analysis: TopologyConfig = TopologyConfig(),  # noqa: B008 - frozen, so never shared mutable state
    output_dir: str = "outputs/analyse",
    progress: bool = True,
    weights_only: bool = True,
) -> TopologyReport:
    """Layerwise topology of one model checkpoint: writes report.json and report.png, prints the table.

    With persistence summaries it writes report.npz too: the same report, its diagrams as arrays.

    Args:
        model: Import path of the model class (any torch.nn.Module), e.g. lightning_topo.models.CNNClassifier.
        data: Data module (class path and init_args) whose validation split is analysed.
        ckpt: Checkpoint to load (Lightning's, or a torch.save'd state_dict); none: a freshly initialised model, its
            weights seeded with analysis.seed.
        model_args: Keyword arguments of the model class; a LightningModule's override the hyperparameters saved
            in ckpt.
        analysis: What to compute on which layers and inputs (the fields of TopologyConfig).
        output_dir: Where report.json, report.png and (with analysis.persistence) report.npz are written.
        progress: Show a progress bar.
        weights_only: Load checkpoints with torch's safe loader (tensors and plain values only); false loads a
            trusted checkpoint that holds other Python objects (and runs the code pickled in it).
    """
    net = load_model(model, ckpt, model_args, weights_only, seed=analysis.seed)
    report = analyse_model(net, data, analysis, progress=progress, name=ckpt or f"{model.__module__}.{model.__name__}")
    out = Path(output_dir)
    files = [str(report.to_json(out / "report.json"))]
    if report.diagrams is not None:  # the diagrams as arrays too: smaller and faster to load than the JSON
        files.append(f"{report.to_npz(out / 'report.npz')} (the persistence diagrams as arrays)")
    png = _save_figure(report.plot, out / "report.png")
    print(f"{report.table()}\nwrote {', '.join(files)}" + (f" and {png}" if png else ""))
    return report


def _scores_file(value: str) -> dict[str, float]:
    """``--scores`` given as text that is not a mapping: the path of a JSON or YAML file holding one."""
    import yaml  # jsonargparse's own YAML reader

    example = "--scores '{cnn: 0.98, mlp: 0.91}' (or the path of a JSON or YAML file holding such a mapping)"
    path = Path(value)
    if not path.is_file():
        raise CLIError(f"--scores {value!r} is neither a mapping of model names to scores nor a file; pass {example}.")
    try:
        loaded = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise CLIError(f"--scores file {value} is not JSON or YAML ({type(err).__name__}); pass {example}.") from err
    if not isinstance(loaded, dict) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in loaded.values()
    ):
        raise CLIError(f"--scores file {value} must hold a mapping of model names to numbers; pass {example}.")
    return {str(name): float(score) for name, score in loaded.items()}


def rank(
    models: list[ModelEntry],
    data: LightningDataModule,
    scores: dict[str, float] | str | None = None,
    by: Literal["theta", "decay_rate"] = "theta",
    analysis: TopologyConfig = TopologyConfig(),  # noqa: B008 - frozen, so never shared mutable state
    output_dir: str = "outputs/rank",
    progress: bool = True,
    weights_only: bool = True,
) -> Ranking:
    """Rank model checkpoints by the decay of their topology: writes ranking.json, ranking.png, a report per model.

    Prints the table and, given scores, the rank correlations.

    Args:
        models: The models: a list of {name, model, ckpt (optional), model_args (optional)}.
        data: Data module (class path and init_args) whose validation split every model is analysed on.
        scores: Model name -> score (higher = better, e.g. fine-tuned accuracy) for the rank correlations: a
            mapping ('{cnn: 0.98, mlp: 0.91}') or the path of a JSON or YAML file holding one.
        by: What ranks the models: theta (lower first) or decay_rate (higher first).
        analysis: What to compute on which layers and inputs (the fields of TopologyConfig).
        output_dir: Where the files are written.
        progress: Show a progress bar.
        weights_only: Load checkpoints with torch's safe loader (tensors and plain values only); false loads
            trusted checkpoints that hold other Python objects (and runs the code pickled in them).
    """
    names = [entry.name for entry in models]
    if not names or len(set(names)) < len(names):
        raise CLIError(f"--models needs at least one entry and a different name for each, got {names}.")
    if isinstance(scores, str):
        scores = _scores_file(scores)
    if scores is not None and set(scores) != set(names):
        # Fewer than 3 models is not an error: the ranking comes without correlations and its note says why, as
        # from rank_models().
        raise CLIError(
            f"`scores` must have one value per model: missing {[n for n in names if n not in scores]}, unknown "
            f"{[n for n in scores if n not in names]} (models: {names}); give --scores a score for each name of "
            "--models, or drop it."
        )
    nets = {
        e.name: load_model(
            e.model, e.ckpt, e.model_args, weights_only, seed=analysis.seed, option=f"the `ckpt` of model {e.name!r}"
        )
        for e in models
    }
    ranking = rank_models(nets, data, scores=scores, by=by, config=analysis, progress=progress)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ranking.json").write_text(json.dumps(ranking.to_dict(), indent=1))
    for name, report in ranking.reports.items():
        report.to_json(out / "reports" / f"{name}.json")
    png = _save_figure(ranking.plot, out / "ranking.png")
    print(f"{ranking.table()}\nwrote {out / 'ranking.json'}" + (f" and {png}" if png else ""))
    return ranking


def _save_figure(draw: Callable[[], Any], path: Path) -> Path | None:
    """Save the matplotlib figure ``draw()`` makes to ``path`` and close it; without matplotlib (the core install)
    say so on stderr and return ``None`` (the table and the JSON are the results; the figure an extra)."""
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        print(f'no {path.name}: figures need matplotlib (pip install "lightning-topo[plot]").', file=sys.stderr)
        return None
    fig = draw()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


COMMANDS = {"analyse": analyse, "rank": rank}


def build_parser() -> ArgumentParser:
    """jsonargparse's parser of :data:`COMMANDS`: one subcommand per function, its options from the signature."""
    return auto_parser(COMMANDS, prog=PROG, as_positional=False, exit_on_error=False)


_FREE_FORM = ("--data", "--model_args", "--models", "--scores")
"""Options whose nested names come from a class or a dict the user gives, not from our signatures."""


def _option_names(command: str) -> list[str]:
    """The options of ``command``: its function's parameters, ``--analysis.<TopologyConfig field>`` and the
    parser's own (``--config``, ``--print_config``, ``--help``)."""
    names = ["--config", "--print_config", "--help", "-h"]
    for param in inspect.signature(COMMANDS[command]).parameters:
        names.append(f"--{param}")
    names += [f"--analysis.{f.name}" for f in dataclasses.fields(TopologyConfig)]
    return names


def _check_option_names(args: list[str]) -> None:
    """A misspelt option is a :class:`CLIError` naming its close matches (jsonargparse says only "unrecognized")."""
    if not args or args[0] not in COMMANDS:
        return
    known = _option_names(args[0])
    for token in args[1:]:
        if not token.startswith("--"):
            continue
        name = token.split("=", 1)[0].removesuffix("+")
        if name in known or any(name.startswith(f"{free}.") for free in _FREE_FORM):
            continue
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        raise CLIError(f"unknown option {name}{hint} (see `{PROG} {args[0]} --help`)")


def _analysis_values(args: list[str]) -> list[tuple[str, str, Any]]:
    """``(where, TopologyConfig field, value)`` of the ``--analysis.*`` options of ``args`` and the ``analysis``
    sections of its ``--config`` files."""
    found = [(f"--analysis.{name}", name, value) for name, value in option_values(args, "analysis.")]
    for file, config in read_configs(args):
        analysis = config.get("analysis")
        if isinstance(analysis, dict):
            found += [(f"analysis.{name} in {file}", name, value) for name, value in analysis.items()]
    return found


_CLASSES: dict[str, tuple[type, str]] = {"model": (nn.Module, "model"), "data": (LightningDataModule, "data module")}
"""The class options of ``analyse`` / ``rank`` and what they take (any ``torch.nn.Module`` as the model)."""


def _refused_model_entry(args: list[str]) -> CLIError | None:
    """After jsonargparse refused ``rank``'s arguments: the first entry of ``--models`` (or of a ``--config`` file's
    ``models:``) that is not a mapping, has a key :class:`ModelEntry` does not take, or a value its field's type
    refuses, as a :class:`CLIError` naming the entry and the key (instead of jsonargparse's message about a path and
    this module's class); ``None`` if none is."""
    if not args or args[0] != "rank":
        return None
    lists = [(f"models in {file}", config.get("models")) for file, config in read_configs(args)]
    lists += [("--models", value) for name, value in option_values(args, "") if name == "models"]
    fields = [f.name for f in dataclasses.fields(ModelEntry)]
    for where, entries in lists:
        for i, entry in enumerate(entries if isinstance(entries, list) else []):
            if not isinstance(entry, dict):
                return CLIError(f"{where}[{i}] must be a mapping {{{', '.join(fields)}}}, got {entry!r}.")
            label = f"{where}[{i}] ({entry['name']!r})" if isinstance(entry.get("name"), str) else f"{where}[{i}]"
            for key, value in entry.items():
                refused = refused_argument(label, ModelEntry, str(key), value, False, "a `models` entry", "key")
                if refused is not None:
                    return refused
    return None


def run_analysis(args: list[str]) -> Any:
    """Run ``analyse`` or ``rank``: jsonargparse's parser of :data:`COMMANDS` parses ``args`` and builds the data
    module and ``TopologyConfig`` (their errors, and a class path that does not import, are a :class:`CLIError`),
    then the command runs."""
    _check_option_names(args)
    parser = build_parser()
    try:
        cfg = parser.parse_args(args)
        init = parser.instantiate(cfg)[cfg.subcommand]
    except ArgumentError as err:
        refused = refused_choice(_analysis_values(args)) or refused_value(args, _CLASSES) or _refused_model_entry(args)
        if refused is None:
            raise
        raise refused from err
    except (ImportError, AttributeError, TypeError, ValueError) as err:
        raise CLIError(f"{one_line(err)} (see `{PROG} {args[0]} --help`)") from err
    init.pop("config", None)
    return COMMANDS[cfg.subcommand](**init)
