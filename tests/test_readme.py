"""The README's command lines run top to bottom, as a new user would type them in a fresh clone.

What runs: every fenced ```` ```bash ```` block of README.md that mentions ``lightning-topo``, line by line, in the
README's order (a trailing ``\\`` joins a line to the next; ``#`` comments are dropped, as a shell drops them). Each
command must be ``lightning-topo <subcommand> ...`` with a subcommand this test knows (``fit``, ``validate``,
``test``, ``predict``, ``analyse``, ``analyze``, ``rank``); any other line in such a block (a new subcommand,
``cd``, a pipe, ``python -m ...``) fails the test until it is taught here how to run it. Each command runs as
``python -m lightning_topo <args>`` with its working directory a temporary folder holding a copy of ``configs/``
(so ``outputs/`` is written there, not in the checkout) and must exit 0. Commands read what earlier ones wrote, so
a README that uses a checkpoint before the command that trains it fails here.

How commands are shortened (the only change made to them; jsonargparse lets the last value of an option win, so
the README's own values are overridden):

* ``fit``: ``--trainer.max_epochs 1 --trainer.limit_train_batches 3`` appended; a ``fit`` that resumes
  (``--ckpt_path``) gets ``--trainer.max_epochs 2`` instead: one epoch more than the shortened run that wrote its
  checkpoint, so it really trains.
* ``analyse`` / ``rank``: ``--progress false`` appended (no progress bar in the log); nothing else.
* ``validate`` / ``test`` / ``predict``: run as they are (one pass over the data).

The README's Python blocks run in ``test_readme_python_blocks_run`` (``max_epochs=20`` shortened to 2), with the
ranking warnings (``DepthMismatchWarning``, ``SettingsMismatchWarning``) turned into errors.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_cli import run_cli_here

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

SHORT_FIT = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "3"]
"""Appended to a README ``fit``: one epoch of 3 batches."""
SHORT_RESUME = ["--trainer.max_epochs", "2", "--trainer.limit_train_batches", "3"]
"""Appended to a README ``fit --ckpt_path``: one epoch after the shortened run it resumes."""
QUIET = ["--progress", "false"]
"""Appended to ``analyse`` / ``rank``."""
SUBCOMMANDS = {"fit", "validate", "test", "predict", "analyse", "analyze", "rank"}


class UnknownCommand(AssertionError):
    """A README command line this test does not know how to run (teach ``shortened`` about it)."""


def readme_commands(text: str) -> list[list[str]]:
    """The command lines of the README's bash blocks that mention ``lightning-topo``, in order, split as a shell
    would (continuation lines joined, comments dropped)."""
    commands = []
    for block in re.findall(r"^```bash\n(.*?)^```", text, flags=re.M | re.S):
        if "lightning-topo" not in block:
            continue
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words:
                commands.append(words)
    return commands


def shortened(words: list[str]) -> list[str]:
    """The arguments for ``python -m lightning_topo`` that run a README command, shortened (module docstring).

    Raises:
        UnknownCommand: not a ``lightning-topo`` command with a known subcommand, or shell syntax in it.
    """
    if not words or words[0] != "lightning-topo" or len(words) < 2 or words[1] not in SUBCOMMANDS:
        raise UnknownCommand(f"the README command {shlex.join(words)!r} is not one this test knows how to run")
    if any(word in {"|", "&&", "||", ";", ">", "<"} for word in words):
        raise UnknownCommand(f"shell syntax in the README command {shlex.join(words)!r}")
    args = words[1:]
    if "--help" in args or "-h" in args:
        return args
    if args[0] in {"validate", "test", "predict"}:
        return args
    if args[0] == "fit":
        resumes = any(arg == "--ckpt_path" or arg.startswith("--ckpt_path=") for arg in args)
        return [*args, *(SHORT_RESUME if resumes else SHORT_FIT)]
    return [*args, *QUIET]


def test_shortening_rules() -> None:
    assert shortened(["lightning-topo", "fit", "--config", "c.yaml"]) == ["fit", "--config", "c.yaml", *SHORT_FIT]
    resume = ["lightning-topo", "fit", "--config", "c.yaml", "--ckpt_path", "last.ckpt", "--trainer.max_epochs", "20"]
    assert shortened(resume)[-len(SHORT_RESUME) :] == SHORT_RESUME
    assert shortened(["lightning-topo", "rank", "--config", "r.yaml"]) == ["rank", "--config", "r.yaml", *QUIET]
    assert shortened(["lightning-topo", "validate", "--ckpt_path", "x.ckpt"]) == ["validate", "--ckpt_path", "x.ckpt"]
    for words in (["pip", "install", "x"], ["python", "-m", "lightning_topo", "fit"], ["lightning-topo", "nope"]):
        with pytest.raises(UnknownCommand):
            shortened(words)
    block = (
        "```bash\nlightning-topo analyse --model a.B \\\n    --data c.D   # comment\n```\n```bash\npip install x\n```\n"
    )
    assert readme_commands(block) == [["lightning-topo", "analyse", "--model", "a.B", "--data", "c.D"]]


def test_readme_commands_run_in_order(tmp_path: Path) -> None:
    """The README's commands, shortened, one after the other in one folder. The first runs as a user types it
    (``python -m lightning_topo``, a new process); the others call ``cli.main`` in this process
    (`test_cli.run_cli_here`: the same parsing and code, without a ~10 s Lightning import each)."""
    commands = readme_commands(README.read_text())
    runs = [shortened(words) for words in commands]  # every command is understood before any runs
    subcommands = [args[0] for args in runs]
    assert {"fit", "analyse", "rank"} <= set(subcommands), subcommands
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    env = dict(os.environ, PYTHONWARNINGS="ignore", MPLBACKEND="Agg", COLUMNS="120")
    for i, (words, args) in enumerate(zip(commands, runs, strict=True)):
        if i:
            proc = run_cli_here(*args, cwd=tmp_path)
        else:
            proc = subprocess.run(
                [sys.executable, "-m", "lightning_topo", *args],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )
        assert proc.returncode == 0, (
            f"README command failed (exit {proc.returncode}): {shlex.join(words)}\n"
            f"run as: python -m lightning_topo {shlex.join(args)}\nstdout:\n{proc.stdout[-2000:]}\n"
            f"stderr:\n{proc.stderr[-3000:]}"
        )
        if args[0] == "fit" and "--help" not in args:
            assert "lightning-topo fit: finished" in proc.stdout and "  resume:     lightning-topo fit" in proc.stdout
    assert (tmp_path / "outputs/analyse_digits/report.png").is_file()
    assert (tmp_path / "outputs/rank_digits/ranking.json").is_file()


def python_blocks(text: str) -> list[str]:
    """The README's ```` ```python ```` blocks, in order."""
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.M | re.S)


FRAGMENTS = {
    'self.log("val_omega"': "a fragment of a LightningModule's validation_step",
    'accelerator="gpu", devices=8': "needs 16 GPUs",
}
"""README Python blocks that are shown, not run: a marker in the block, and why."""
PYTHON_SHORTENING = {"max_epochs=20": "max_epochs=2"}
"""Replacements made before a README Python block runs (with STRICT_WARNINGS, the only change made to it)."""
STRICT_WARNINGS = (
    "import warnings\n"
    "from lightning_topo.analysis import DepthMismatchWarning, SettingsMismatchWarning\n"
    "warnings.simplefilter('error', DepthMismatchWarning)\n"
    "warnings.simplefilter('error', SettingsMismatchWarning)\n"
)
"""Put before every README Python block: a ranking the README shows must compare like with like, so a block that
ranks models watched on different numbers of layers, or with different settings, fails instead of warning (other
warnings stay ignored, as in the command lines' runs)."""


def _run_python(block: str, cwd: Path) -> None:
    for old, new in PYTHON_SHORTENING.items():
        block = block.replace(old, new)
    block = STRICT_WARNINGS + block
    env = dict(os.environ, PYTHONWARNINGS="ignore", MPLBACKEND="Agg")
    proc = subprocess.run([sys.executable, "-c", block], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"README Python block failed:\n{block}\nstderr:\n{proc.stderr[-3000:]}"


def test_readme_python_blocks_run(tmp_path: Path) -> None:
    """Every README Python block runs, except the fragments listed in FRAGMENTS; the one that loads the checkpoint
    the README's command lines train runs after them, in the same folder (as a reader following the README would)."""
    blocks = python_blocks(README.read_text())
    runnable = [b for b in blocks if not any(marker in b for marker in FRAGMENTS)]
    assert len(blocks) - len(runnable) == len(FRAGMENTS)  # each fragment marker still names a block
    needs_checkpoint = [b for b in runnable if "outputs/digits_cnn/checkpoints/digits_cnn.ckpt" in b]
    assert len(needs_checkpoint) == 1
    for block in runnable:
        if block in needs_checkpoint:
            fit = shortened(["lightning-topo", "fit", "--config", "configs/digits_cnn.yaml"])
            shutil.copytree(ROOT / "configs", tmp_path / "configs")
            trained = run_cli_here(*fit, cwd=tmp_path)  # in this process: the fit is not what is tested here
            assert trained.returncode == 0, trained.stderr[-3000:]
        _run_python(block, tmp_path)
    assert (tmp_path / "report.json").is_file()  # written by the analyse block
