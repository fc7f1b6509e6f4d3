"""Where an example's numbers came from: versions, CPU, threads, date (recorded in every ``results.json``).

Findings depend on rounding, and rounding depends on the CPU, the BLAS build and the thread count, so each
example writes ``environment()`` next to its numbers; ``examples/make_findings.py`` prints it under each
finding.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import os
import platform
from typing import Any

PACKAGES = (
    "lightning-topo",
    "torch",
    "numpy",
    "scipy",
    "lightning",
    "torchmetrics",
    "giotto-ph",
    "connected-components-3d",
)


def source_commit() -> str | None:
    """The git commit of the ``lightning_topo`` checkout the example ran (``+dirty`` with uncommitted changes to
    tracked files), or ``None`` outside a git checkout (an installed wheel)."""
    import subprocess

    import lightning_topo

    where = os.path.dirname(os.path.dirname(os.path.abspath(lightning_topo.__file__)))
    try:
        commit = subprocess.run(
            ["git", "-C", where, "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "-C", where, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{commit}+dirty" if changed else commit or None


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else ``platform.processor()``), or ``"unknown"``."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def environment(packages: tuple[str, ...] = (), **extra: Any) -> dict[str, Any]:
    """Versions of lightning-topo (and its git commit) and the numeric stack, CPU model and count, torch threads,
    platform and UTC date.

    Args:
        packages: more distributions whose versions to record (e.g. ``("transformers",)``).
        extra: more fields to record (e.g. ``dtype="float32"``).

    Example:
        >>> env = environment(dtype="float32")
        >>> sorted(env)[:4], env["dtype"]
        (['cpu_count', 'cpu_model', 'date_utc', 'dtype'], 'float32')
    """
    import torch

    versions = {}
    for name in (*PACKAGES, *packages):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "versions": versions,
        "commit": source_commit(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        **extra,
    }


def describe(env: dict[str, Any] | None) -> str:
    """One line for a findings section: ``torch 2.13.0, numpy ..., on AMD EPYC (2 CPUs, 1 thread), 2026-11-26``."""
    if not env:
        return "environment not recorded"
    v = env.get("versions", {})
    stack = ", ".join(f"{k} {v[k]}" for k in ("lightning-topo", "torch", "numpy", "scipy", "lightning") if v.get(k))
    if env.get("commit"):
        stack = f"{stack} (commit {env['commit']})"
    threads = env.get("torch_threads")
    return (
        f"{stack}; {env.get('cpu_model', '?')} ({env.get('cpu_count', '?')} CPUs, {threads} torch "
        f"thread{'s' if threads != 1 else ''}); {str(env.get('date_utc', '?'))[:10]}"
    )


def add_perturbation_args(parser: Any, threads: int = 1) -> None:
    """The flags that perturb an example's rounding and data, to check that its findings do not hang on them.

    ``--threads`` (torch threads), ``--precision`` (32 or 64: the Trainer's ``"32-true"`` / ``"64-true"``) and
    ``--first-seed`` (the first of the example's seeds: another data split and initialisation).
    """
    parser.add_argument("--threads", type=int, default=threads, help=f"torch threads (default {threads})")
    parser.add_argument("--precision", choices=("32", "64"), default="32", help="training precision in bits")
    parser.add_argument("--first-seed", type=int, default=0, help="first seed (another data split and init)")


def apply_perturbation(args: Any) -> str:
    """Set the torch thread count from ``args.threads``; return the Trainer ``precision`` for ``args.precision``."""
    import torch

    torch.set_num_threads(args.threads)
    return f"{args.precision}-true"
