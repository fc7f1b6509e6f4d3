"""The command line: ``lightning-topo fit | analyse | rank`` (also ``python -m lightning_topo``).

* ``fit``: Lightning's ``LightningCLI`` (model, data, trainer and callbacks — ``TopologyCallback`` among them —
  set in YAML with ``class_path`` / ``init_args``); every ``LightningCLI`` option works.
* ``analyse``: one model (a class path plus a checkpoint) on a data module's validation split; writes
  ``report.json`` and ``report.png`` to ``--output_dir`` and prints the table.
* ``rank``: several checkpoints ranked by theta on the same sample; writes ``ranking.json``, ``ranking.png``
  and one report per model; prints the table and, given ``--scores``, the rank correlations.

Bad input (a wrong class path, a missing checkpoint, an unknown layer, malformed YAML, a bad value) prints
one line, ``lightning-topo <command>: error: <what> ...<the fix>``, and exits with code 2; ``--debug``
shows the traceback instead.
"""

from __future__ import annotations

import importlib
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

__all__ = ["CLIError", "load_model", "main"]

COMMANDS = ("fit", "analyse", "rank")
USAGE = """usage: lightning-topo {fit,analyse,rank} [--config FILE] [options] [--debug]

  fit       train with LightningCLI (model, data, trainer, TopologyCallback set in YAML)
  analyse   analyse one checkpoint: report.json, report.png and a table
  rank      rank several checkpoints by theta (and correlate with --scores)

Examples:
  lightning-topo fit --config configs/digits_cnn.yaml
  lightning-topo analyse --config configs/analyse_digits.yaml
  lightning-topo analyse --model lightning_topo.models.CNNClassifier --ckpt model.ckpt \\
      --data lightning_topo.data.DigitsDataModule
  lightning-topo rank --config configs/rank_digits.yaml
Run `lightning-topo <command> --help` for every option."""


class CLIError(Exception):
    """A user error: printed as one line, exit code 2."""


# ---------------------------------------------------------------------------------------------- helpers
def import_object(path: str, what: str) -> Any:
    """``"package.module.Name"`` -> the object, or a :class:`CLIError` naming the path and the fix."""
    if not isinstance(path, str) or "." not in path:
        raise CLIError(f"{what} class path {path!r} is not a full import path; write e.g. {_EXAMPLES[what]}.")
    module_name, _, attr = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise CLIError(
            f"{what} class path {path!r}: cannot import module {module_name!r} ({err}); "
            f"check the spelling, e.g. {_EXAMPLES[what]}."
        ) from err
    if not hasattr(module, attr):
        raise CLIError(
            f"{what} class path {path!r}: module {module_name!r} has no {attr!r}; check the spelling, "
            f"e.g. {_EXAMPLES[what]}."
        )
    return getattr(module, attr)


_EXAMPLES = {
    "model": "lightning_topo.models.CNNClassifier",
    "data": "lightning_topo.data.DigitsDataModule",
}


def load_model(class_path: str, ckpt: str | None = None, init_args: dict[str, Any] | None = None) -> Any:
    """Build a model from its class path and load a checkpoint.

    A ``LightningModule`` subclass is restored with ``load_from_checkpoint`` (its saved hyperparameters,
    overridden by ``init_args``); any other ``nn.Module`` class is built with ``init_args`` and given the
    checkpoint's ``state_dict``. Without ``ckpt`` the freshly initialised model is returned (with a warning).
    """
    import torch
    from lightning.pytorch import LightningModule
    from torch import nn

    cls = import_object(class_path, "model")
    init_args = dict(init_args or {})
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise CLIError(f"model class path {class_path!r} is not an nn.Module class; e.g. {_EXAMPLES['model']}.")
    if ckpt is None:
        warnings.warn(f"no --ckpt given: analysing a freshly initialised {cls.__name__}.", UserWarning, stacklevel=2)
        return cls(**init_args)
    path = Path(ckpt)
    if not path.is_file():
        raise CLIError(
            f"checkpoint {str(path)!r} not found; pass an existing file to --ckpt (train one with "
            "`lightning-topo fit --config configs/digits_cnn.yaml`)."
        )
    try:
        if issubclass(cls, LightningModule):
            return cls.load_from_checkpoint(str(path), map_location="cpu", **init_args)
        model = cls(**init_args)
        state = torch.load(str(path), map_location="cpu", weights_only=True)
        model.load_state_dict(state.get("state_dict", state) if isinstance(state, dict) else state)
        return model
    except (RuntimeError, KeyError, TypeError, ValueError) as err:
        raise CLIError(
            f"cannot load checkpoint {str(path)!r} into {class_path}: {_one_line(err)}; check that the checkpoint "
            "was written for this class (and its init_args)."
        ) from err


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text if len(text) <= 600 else text[:597] + "..."


def _model_spec(spec: Any, ckpt: str | None) -> tuple[str, str | None, dict[str, Any]]:
    if isinstance(spec, str):
        return spec, ckpt, {}
    if isinstance(spec, dict) and "class_path" in spec:
        unknown = set(spec) - {"class_path", "init_args", "ckpt", "name"}
        if unknown:
            raise CLIError(
                f"model entry has unknown keys {sorted(unknown)}; allowed: class_path, init_args, ckpt, name."
            )
        return spec["class_path"], spec.get("ckpt", ckpt), dict(spec.get("init_args") or {})
    raise CLIError(
        f"--model must be a class path or a mapping with class_path (and init_args, ckpt), got {spec!r}; "
        f"e.g. --model {_EXAMPLES['model']} --ckpt model.ckpt."
    )


def _analysis_kwargs(cfg: Any) -> dict[str, Any]:
    kwargs = dict(vars(cfg.analysis)) if cfg.get("analysis") is not None else {}
    return {k: v for k, v in kwargs.items() if not k.startswith("__")}


def _base_parser(prog: str, description: str) -> Any:
    from jsonargparse import ActionConfigFile, ArgumentParser
    from lightning.pytorch import LightningDataModule

    from lightning_topo.analysis import analyse

    parser = ArgumentParser(prog=prog, description=description, exit_on_error=False, env_prefix="LIGHTNING_TOPO")
    parser.add_argument("--config", action=ActionConfigFile, help="YAML file with any of the options below.")
    parser.add_subclass_arguments(LightningDataModule, "data", required=True, help="Data module (validation split).")
    parser.add_function_arguments(
        analyse,
        "analysis",
        skip={"model", "data", "device", "progress", "name", "input_fn", "target_fn", "output_fn", "forward_fn"},
    )
    parser.add_argument("--device", type=str | None, default=None, help="Device (default: CUDA when present).")
    parser.add_argument("--output_dir", type=str, default=f"outputs/{prog.split()[-1]}", help="Where files go.")
    parser.add_argument("--progress", type=bool, default=True, help="Show a progress bar.")
    return parser


def _explain(err: BaseException, command: str) -> str:
    """One line from a jsonargparse error: the core problem and the fix."""
    import re

    text = _one_line(err)
    match = re.search(r"Problem with given class_path '([^']+)': ([^-]+?)(?: - |$)", text)
    if match:
        key = re.search(r'Parser key "([^"]+)"', text)
        where = f"--{key.group(1)}: " if key else ""
        problem = match.group(2).strip()
        if "attribute" in problem or "module" in problem.lower():
            example = _EXAMPLES.get(key.group(1) if key else "", "lightning_topo.data.DigitsDataModule")
            fix = f"check the spelling, e.g. {example}"
        else:
            fix = f"check the init_args against `lightning-topo {command} --help`"
        return f"{where}class path {match.group(1)!r}: {problem}; {fix}."
    if "Problems parsing config" in text or "while parsing" in text or "while scanning" in text:
        return f"malformed YAML in --config: {text.split('Problems parsing config:')[-1].strip()}; fix its syntax."
    return f"{text} (see `lightning-topo {command} --help`)"


def _parse(parser: Any, args: Sequence[str]) -> Any:
    from jsonargparse import ArgumentError

    try:
        return parser.parse_args(list(args))
    except ArgumentError as err:
        raise CLIError(_explain(err, parser.prog.split()[-1])) from err


def _instantiate_data(parser: Any, cfg: Any) -> Any:
    try:
        instantiate = getattr(parser, "instantiate", None) or parser.instantiate_classes
        return instantiate(cfg).data
    except Exception as err:  # the data module's own validation errors
        raise CLIError(f"cannot build the data module: {_one_line(err)}") from err


# ---------------------------------------------------------------------------------------------- commands
def run_fit(args: Sequence[str]) -> int:
    """``lightning-topo fit``: ``LightningCLI`` with any LightningModule / LightningDataModule by class path."""
    from jsonargparse import ArgumentError
    from lightning.pytorch import LightningDataModule, LightningModule
    from lightning.pytorch.cli import LightningCLI

    warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
    try:
        LightningCLI(
            LightningModule,
            LightningDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            args=["fit", *args],
            parser_kwargs={"exit_on_error": False},
            save_config_kwargs={"overwrite": True},
        )
    except ArgumentError as err:
        raise CLIError(_explain(err, "fit")) from err
    return 0


def run_analyse(args: Sequence[str]) -> int:
    """``lightning-topo analyse``: one checkpoint -> report.json, report.png, a printed table."""
    from lightning_topo.analysis import analyse

    parser = _base_parser("lightning-topo analyse", "Layerwise topology of one model checkpoint.")
    parser.add_argument("--model", type=str | dict, required=True, help="Model class path (or class_path/init_args).")
    parser.add_argument("--ckpt", type=str | None, default=None, help="Checkpoint to load.")
    cfg = _parse(parser, args)
    class_path, ckpt, init_args = _model_spec(cfg.model, cfg.ckpt)
    model = load_model(class_path, ckpt, init_args)
    data = _instantiate_data(parser, cfg)
    report = analyse(
        model, data, device=cfg.device, progress=cfg.progress, name=ckpt or class_path, **_analysis_kwargs(cfg)
    )
    out = Path(cfg.output_dir)
    json_path = report.to_json(out / "report.json")
    png_path = _save_figure(report.plot(), out / "report.png")
    print(report.table())
    print(f"wrote {json_path}" + (f" and {png_path}" if png_path else ""))
    return 0


def run_rank(args: Sequence[str]) -> int:
    """``lightning-topo rank``: several checkpoints ranked by theta; correlations with ``--scores``."""
    from lightning_topo.analysis import rank_models

    parser = _base_parser("lightning-topo rank", "Rank model checkpoints by the decay of their topology.")
    parser.add_argument(
        "--models", type=list[dict], required=True, help="List of {name, class_path, ckpt, init_args} entries."
    )
    parser.add_argument("--scores", type=dict[str, float] | None, default=None, help="name -> score (higher = better).")
    parser.add_argument("--by", type=Literal["theta", "decay_rate"], default="theta", help="What ranks the models.")
    cfg = _parse(parser, args)
    if not cfg.models:
        raise CLIError("--models is empty; list at least one {name, class_path, ckpt} entry.")
    data = _instantiate_data(parser, cfg)
    models: dict[str, Any] = {}
    for i, entry in enumerate(cfg.models):
        if not isinstance(entry, dict) or "name" not in entry:
            raise CLIError(f"--models entry {i} must be a mapping with name, class_path and ckpt, got {entry!r}.")
        class_path, ckpt, init_args = _model_spec(entry, None)
        if entry["name"] in models:
            raise CLIError(f"--models has the name {entry['name']!r} twice; give each model its own name.")
        models[entry["name"]] = load_model(class_path, ckpt, init_args)
    try:
        kwargs = _analysis_kwargs(cfg)
        ranking = rank_models(
            models, data, scores=cfg.scores, by=cfg.by, device=cfg.device, progress=cfg.progress, **kwargs
        )
    except ValueError as err:
        if "scores" in str(err) or "correlations" in str(err):
            raise CLIError(_one_line(err)) from err
        raise
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    import json

    (out / "ranking.json").write_text(json.dumps(ranking.to_dict(), indent=1))
    for name, report in ranking.reports.items():
        report.to_json(out / "reports" / f"{name}.json")
    png = _save_figure(ranking.plot(), out / "ranking.png")
    print(ranking.table())
    print(f"wrote {out / 'ranking.json'}" + (f" and {png}" if png else ""))
    return 0


def _save_figure(fig: Any, path: Path) -> Path | None:
    try:
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - figures are optional
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lightning-topo`` console script; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    args = [a for a in args if a != "--debug"]
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command == "analyze":
        command = "analyse"
    if command not in COMMANDS:
        print(f"lightning-topo: error: unknown command {command!r}; use one of {', '.join(COMMANDS)}.", file=sys.stderr)
        return 2
    try:
        import matplotlib

        matplotlib.use("Agg")
    except ImportError:  # pragma: no cover
        pass
    runner = {"fit": run_fit, "analyse": run_analyse, "rank": run_rank}[command]
    try:
        return runner(rest)
    except SystemExit as exc:  # --help, --print_config
        return int(exc.code or 0) if not isinstance(exc.code, str) else 2
    except Exception as err:
        from lightning.pytorch.utilities.exceptions import MisconfigurationException

        user_errors = (CLIError, MisconfigurationException, FileNotFoundError, ValueError, TypeError)
        if debug or not isinstance(err, user_errors):
            if debug:
                raise
            print(
                f"lightning-topo {command}: error: {type(err).__name__}: {_one_line(err)} (rerun with --debug for the "
                "traceback)",
                file=sys.stderr,
            )
            return 1
        print(f"lightning-topo {command}: error: {_one_line(err)}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
