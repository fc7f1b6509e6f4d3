"""What several benchmarks repeat: provenance (CPU model, package versions), a median timer, ReLU-like volumes,
cripser's Betti numbers at a threshold, the tests' torchvision-layout ResNet18, and the README sections generated
from committed outputs (:func:`sync_readme_section`).

A benchmark run as ``python benchmarks/NAME.py`` has this folder on ``sys.path`` and imports it as ``_common``
(``benchmarks/gpu/bench_gpu.py`` puts the folder there itself). The CPU model comes from the examples' provenance
(``examples/_provenance.py``), so the examples and the benchmarks describe a machine the same way.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import importlib.util
import multiprocessing as mp
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def _load(name: str, path: Path) -> ModuleType:
    """The module at ``path``, imported as ``name`` (by its file: the examples and the tests are not packages)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


_provenance = _load("_provenance", REPO / "examples" / "_provenance.py")

cpu_model: Callable[[], str] = _provenance.cpu_model
"""The CPU's model name (``/proc/cpuinfo`` on Linux, else ``platform.processor()``): ``examples/_provenance.py``."""


def package_versions(names: Iterable[str]) -> dict[str, str]:
    """The installed version of each of ``names`` (distribution names); those not installed are left out."""
    found: dict[str, str] = {}
    for name in names:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def provenance(names: Iterable[str], threads: str) -> str:
    """Two comment lines for a benchmark's output: the time, Python and the versions of ``names``; the CPU, its
    cores and load averages, and ``threads`` (which thread counts the run used)."""
    names = tuple(names)
    found = package_versions(names)
    versions = [f"{name} {found.get(name, '-')}" for name in names]
    return (
        f"# {datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}, python "
        f"{platform.python_version()}, {', '.join(versions)}\n# CPU: {cpu_model()}, {os.cpu_count()} cores "
        f"(load average {load_averages()} at the start; shared machine, timings are noisy), {threads}"
    )


def load_averages() -> str:
    """The 1, 5 and 15 minute load averages, as ``0.6, 0.7, 1.1`` (``?`` where the OS has none)."""
    return ", ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"


def median_time(
    fn: Callable[[], Any], repeats: int, *, warmup: bool = False, sync: Callable[[], None] | None = None
) -> tuple[float, Any]:
    """Median wall time (s) of ``fn()`` over ``repeats`` runs (at least one), after one untimed run when ``warmup``;
    and the last result. ``sync`` (e.g. ``torch.cuda.synchronize``) runs before and after each timed run."""
    wait = sync or (lambda: None)
    result = None
    if warmup:
        result = fn()
        wait()
    times = []
    for _ in range(max(1, repeats)):
        wait()
        start = time.perf_counter()
        result = fn()
        wait()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MiB (``ru_maxrss``)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def in_subprocess(target: Callable[..., None], *args: Any) -> Any:
    """``target(*args, queue)`` in a fresh (spawned) process; what it put on ``queue``."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def relu_like(batch: int, shape: tuple[int, int, int], device: Any, seed: int) -> Any:
    """ReLU-like volumes ``(batch, *shape)`` on ``device``: max(N(0, 1), 0) after a light 3x3 box blur over H and
    W (as conv maps are)."""
    import torch

    gen = torch.Generator(device=device).manual_seed(seed)
    noise = torch.randn(batch, *shape, generator=gen, device=device)
    return torch.relu(torch.nn.functional.avg_pool2d(noise, 3, stride=1, padding=1))


def cripser_betti(volume: Any, threshold: float) -> list[int]:
    """Betti numbers (b0, b1, b2) of {v <= t} from ``cripser.computePH(maxdim=2)``: the bars with birth <= t < death
    (an essential bar's death is DBL_MAX)."""
    import cripser
    import numpy as np

    bars = cripser.computePH(np.asarray(volume, dtype=np.float64), maxdim=2)
    dims, births, deaths = bars[:, 0], bars[:, 1], bars[:, 2]
    alive = (births <= threshold) & ((threshold < deaths) | (deaths >= np.finfo(np.float64).max))
    return [int(n) for n in np.bincount(dims[alive].astype(np.int64), minlength=3)[:3]]


def tests_resnet18(width: int) -> Any:
    """``tests/models.py``'s ``resnet18(width=width)``: torchvision's layout (width 64 = torchvision's), 10 classes,
    without torchvision."""
    return _load("lightning_topo_tests_models", REPO / "tests" / "models.py").resnet18(width=width)


def sync_readme_section(start: str, end: str, text: str, check: bool, what: str, fix: str) -> int:
    """Write ``text`` between the markers ``start`` and ``end`` of the repository's README.md, or with ``check`` only
    compare; 0 when it is (now) up to date, 1 when ``check`` finds it out of date (printing ``fix``: the command that
    regenerates it) or a marker is missing. ``what`` names the section in the messages."""
    path = REPO / "README.md"
    readme = path.read_text()
    if start not in readme or end not in readme:
        print(f"README.md has no {start} ... {end} markers", file=sys.stderr)
        return 1
    before, rest = readme.split(start, 1)
    _, after = rest.split(end, 1)
    wanted = f"{before}{start}\n{text}{end}{after}"
    if check:
        if wanted != readme:
            print(f"README.md's {what} is out of date: run {fix}")
            return 1
        print(f"README.md's {what} is up to date")
        return 0
    path.write_text(wanted)
    print(f"updated the {what} of {path}")
    return 0
