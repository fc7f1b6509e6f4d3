"""Usability of the `lightning-topo` command line found by a new-user audit, through real subprocesses: a run that
reached its end does not print a command that stops at once, earlier checkpoints are kept, bad values are one-line
usage errors, `predict` says what it did and `--help` documents every argument."""

from __future__ import annotations

import subprocess
from pathlib import Path

from test_cli import CONFIGS, SHORT, _ok, run_cli

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


def test_fast_dev_run_leaves_the_checkpoints_as_they_were(tmp_path: Path) -> None:
    """fast_dev_run is a trial: it leaves a real run's checkpoints as they were (Lightning 2.6 wrote last.ckpt at
    its end)."""
    _ok(run_cli("fit", *MLP, *SHORT, cwd=tmp_path))
    before = _files(tmp_path / CHECKPOINTS)
    assert set(before) == {"digits_mlp.ckpt", "last.ckpt"}
    _ok(run_cli("fit", *MLP, "--trainer.fast_dev_run", "true", cwd=tmp_path))
    assert _files(tmp_path / CHECKPOINTS) == before


def test_a_new_fit_refuses_to_overwrite_an_earlier_runs_checkpoints(tmp_path: Path) -> None:
    """The configs write fixed names (enable_version_counter: false): running `fit` again stops with one line naming
    the files, how to resume and `--overwrite_checkpoints true`, which replaces them."""
    _ok(run_cli("fit", *MLP, *SHORT, cwd=tmp_path))
    before = _files(tmp_path / CHECKPOINTS)
    line = _error_line(run_cli("fit", *MLP, *SHORT, cwd=tmp_path))
    assert f"{CHECKPOINTS}/digits_mlp.ckpt" in line and f"{CHECKPOINTS}/last.ckpt" in line, line
    assert f"--ckpt_path {CHECKPOINTS}/last.ckpt" in line and "--overwrite_checkpoints true" in line, line
    assert _files(tmp_path / CHECKPOINTS) == before

    _ok(run_cli("fit", *MLP, *SHORT, "--seed_everything", "1", "--overwrite_checkpoints", "true", cwd=tmp_path))
    after = _files(tmp_path / CHECKPOINTS)
    assert set(after) == set(before) and all(after[name] != before[name] for name in before)
