"""Betti curves: spanning forests (`method="forest"`) against T batched direct computations (`method="direct"`).

    python benchmarks/bench_curves.py > benchmarks/bench_curves.out.txt     # about 7 minutes on 2 cores
    python benchmarks/bench_curves.py --quick                               # a smoke run
    python benchmarks/bench_curves.py --readme             # the README's "Betti curves" paragraph from the .out.txt
    python benchmarks/bench_curves.py --readme --check     # exit 1 if that paragraph is out of date (tests)

For T = 8 ... 256 thresholds on three kinds of volumes (i.i.d. ReLU noise, blurred ReLU noise as conv maps are, both
2x64x56x56, and i.i.d. 8x16x28x28): the median wall time of the forests, of the direct computation with the fused
numba kernel (the CPU default when numba is installed) on 1 and on torch's default number of threads, and of the
direct computation with the cc3d labelling (the CPU path without numba: what `method="direct"` runs there). Every
method must give the same curves. The first call of each method runs untimed (numba compiles or loads its cache);
the timed runs are interleaved (each method once, then again), so that a change in a shared machine's load hits
every method alike.
The last lines give, per direct column, the largest T up to which the direct computation beat the forests in every
case; they set `lightning_topo.functional.curves.DIRECT_MAX_THRESHOLDS_NUMBA` (the smaller of the numba columns) and
`DIRECT_MAX_THRESHOLDS` (cc3d), the most thresholds at which `method="auto"` computes directly. The output, with
versions, CPU, threads and load averages, is committed as `benchmarks/bench_curves.out.txt`; `--readme` writes the
README's "Betti curves" paragraph (between `<!-- bench_curves:start -->` and `<!-- bench_curves:end -->`) from it,
and refuses when the constants in the code differ from what the output says.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import statistics
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import torch
from _common import cpu_model, package_versions, relu_like, sync_readme_section

from lightning_topo.functional import betti_curves, cubical_betti

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "benchmarks" / "bench_curves.out.txt"
START, END = "<!-- bench_curves:start -->", "<!-- bench_curves:end -->"


def direct_cc3d(x: torch.Tensor, ts: torch.Tensor) -> torch.Tensor:
    """What `betti_curves(x, ts, method="direct")` computes without numba: one batched `cubical_betti` over all
    B x T (volume, threshold) pairs with the cc3d labelling."""
    batch, t = x.shape[0], ts.numel()
    return cubical_betti(x.repeat_interleave(t, dim=0), ts.repeat(batch), backend="cc3d").reshape(batch, t, 3)


def _on_threads(n: int, fn: Callable[[], torch.Tensor]) -> torch.Tensor:
    """``fn()`` with torch (and so the numba kernel) on ``n`` threads; the thread count is restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        return fn()
    finally:
        torch.set_num_threads(before)


def load() -> str:
    """The load averages over 1, 5 and 15 minutes."""
    return ", ".join(f"{v:.1f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "?"


def readme_paragraph(output: str) -> str:
    """The README's "Betti curves" paragraph from this benchmark's output (the committed ``.out.txt``). Raises
    ``SystemExit`` when the limits in ``lightning_topo.functional.curves`` are not the ones the output measured."""
    from lightning_topo.functional import curves

    lines = output.splitlines()
    versions = lines[0].split(": ", 1)[1]
    date = lines[0].split()[2][:10]
    cpu = re.match(r"# CPU: (.*?) \(load average ([^)]*) at the start.*torch threads (\d+)", lines[1])
    assert cpu is not None, lines[1]
    end_load = lines[-1].rsplit(": ", 1)[1]
    header = next(i for i, line in enumerate(lines) if line.startswith("volumes"))
    columns = lines[header].split()[2:-1]  # forest, numba, 1t, numba, 2t, cc3d -> re-joined below
    names = ["forest"] + [f"{a} {b}" for a, b in zip(columns[1::2], columns[2::2], strict=False) if a == "numba"]
    names.append("cc3d")
    rows = []
    for line in lines[header + 1 :]:
        if line.startswith("#"):
            break
        *label, t, rest = re.match(r"(\w+) (\S+)\s+(\d+)\s+(.*)", line).groups()
        times = re.findall(r"\d+\.\d+s", rest)
        best = min(range(len(times)), key=lambda i: float(times[i][:-1]))
        cells = [f"**{v}**" if i == best else v for i, v in enumerate(times)]
        rows.append(f"| {' '.join(label)} | {t} | " + " | ".join(cells) + " |")
    limits = {}
    for line in lines[lines.index(next(x for x in lines if x.startswith("## the largest T"))) + 1 : -1]:
        m = re.match(r"(numba \dt|cc3d)\s+(\d+|none)", line)
        assert m is not None, line
        limits[m.group(1)] = int(m.group(2)) if m.group(2) != "none" else 0
    numba = min(v for k, v in limits.items() if k.startswith("numba"))
    wanted = {"DIRECT_MAX_THRESHOLDS_NUMBA": numba, "DIRECT_MAX_THRESHOLDS": limits["cc3d"]}
    found = {name: getattr(curves, name) for name in wanted}
    if found != wanted:
        raise SystemExit(f"lightning_topo.functional.curves has {found}; bench_curves.out.txt measured {wanted}")
    heads = ["forest"] + [f"direct, numba {n[-2]} thread{'s' if n[-2] != '1' else ''}" for n in names[1:-1]]
    heads.append("direct, cc3d (without numba)")
    threads = ", ".join(f"{k} {v}" for k, v in limits.items())
    intro = (
        "**Betti curves** (`python benchmarks/bench_curves.py`, output in `benchmarks/bench_curves.out.txt`; this "
        "paragraph is written from it by `python benchmarks/bench_curves.py --readme`): `betti_curves` by one pair of "
        'spanning forests per volume (`method="forest"`, CPU, one thread) against `cubical_betti` on all B x T '
        '(volume, threshold) pairs (`method="direct"`), median wall time per call, identical curves everywhere; '
        "volumes of i.i.d. ReLU noise (`iid`) and of blurred ReLU noise as conv maps are (`smooth`), thresholds "
        f"`linspace(-0.1, 2.0, T)`; {cpu.group(1)}, {versions}; load average {cpu.group(2)} at the start and "
        f"{end_load} at the end (a shared machine: single cells move between runs); {date}. Fastest in bold."
    )
    outro = (
        "The forests' time hardly depends on T; the direct computation's grows in proportion to T. "
        "The largest T up to which the direct computation beat the forests in "
        f'every case: {threads}. So `method="auto"` computes directly up to `DIRECT_MAX_THRESHOLDS_NUMBA` = {numba} '
        "thresholds where `cubical_betti` runs the numba kernel (CPU tensors, numba installed: "
        f"`pip install 'lightning-topo[fast]'`), up to `DIRECT_MAX_THRESHOLDS` = {limits['cc3d']} elsewhere (the cc3d "
        "path; accelerators use the same limit, not measured here), and with the forests above. The direct "
        "computation holds at most `DIRECT_CHUNK_VOXELS` (2^25) repeated voxels at a time, so many thresholds do not "
        "multiply a large batch's memory."
    )
    wrap = {"width": 115, "break_long_words": False, "break_on_hyphens": False}
    table = ["| volumes | T | " + " | ".join(heads) + " |", "|---|---|" + "---|" * len(heads), *rows]
    return "\n".join([textwrap.fill(intro, **wrap), "", *table, "", textwrap.fill(outro, **wrap), ""]) + "\n"


def update_readme(check: bool) -> int:
    """Write (or with ``check``, compare) the README's paragraph between the markers; 0 when it is up to date."""
    paragraph = readme_paragraph(OUTPUT.read_text())
    fix = "python benchmarks/bench_curves.py --readme"
    return sync_readme_section(START, END, paragraph, check, "Betti curves paragraph", fix)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="T = 8 and 64 only, one run each, small volumes only")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved timed runs per cell (median); default 5")
    parser.add_argument("--readme", action="store_true", help="write the README's paragraph from the committed output")
    parser.add_argument("--check", action="store_true", help="with --readme: only check that it is up to date")
    args = parser.parse_args()
    if args.readme:
        sys.exit(update_readme(args.check))
    repeats = 1 if args.quick else args.repeats
    default_threads = torch.get_num_threads()
    versions = package_versions(["torch", "numpy", "scipy", "numba", "connected-components-3d"])
    print(
        f"# bench_curves {datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}: "
        f"python {platform.python_version()}, " + ", ".join(f"{k} {v}" for k, v in versions.items())
    )
    print(
        f"# CPU: {cpu_model()}, {os.cpu_count()} cores (load average {load()} at the start; shared machine), "
        f"torch threads {default_threads} by default; the forests run on one thread (scipy)"
    )
    print(
        f"# median wall time of {repeats} interleaved run(s) per cell (forest, numba 1t, ..., cc3d, then again), "
        "thresholds torch.linspace(-0.1, 2.0, T)"
    )
    cases = [("iid", (8, 16, 28, 28))]
    if not args.quick:
        cases = [("iid", (2, 64, 56, 56)), ("smooth", (2, 64, 56, 56)), *cases]
    t_values = (8, 64) if args.quick else (8, 16, 32, 64, 128, 256)
    thread_counts = sorted({1, default_threads})
    header = (
        f"{'volumes':<22} {'T':>4} {'forest':>9}"
        + "".join(f" {f'numba {n}t':>9}" for n in thread_counts)
        + f" {'cc3d':>9}  fastest"
    )
    print(header)
    wins: dict[str, dict[int, bool]] = {}  # direct column -> T -> faster than the forests in every case
    for kind, (batch, *shape) in cases:
        if kind == "iid":
            x = torch.relu(torch.randn(batch, *shape, generator=torch.Generator().manual_seed(0)))
        else:
            x = relu_like(batch, tuple(shape), "cpu", seed=0)
        warm = torch.tensor([0.0, 1.0])
        betti_curves(x[:1], warm, method="forest")
        betti_curves(x[:1], warm, method="direct")
        direct_cc3d(x[:1], warm)
        label = f"{kind} {batch}x" + "x".join(map(str, shape))
        for t in t_values:
            ts = torch.linspace(-0.1, 2.0, t)
            runs: dict[str, Callable[[], torch.Tensor]] = {
                "forest": lambda x=x, ts=ts: betti_curves(x, ts, method="forest"),
                **{
                    f"numba {n}t": lambda x=x, ts=ts, n=n: _on_threads(n, lambda: betti_curves(x, ts, method="direct"))
                    for n in thread_counts
                },
                "cc3d": lambda x=x, ts=ts: direct_cc3d(x, ts),
            }
            samples: dict[str, list[float]] = {name: [] for name in runs}
            for _ in range(repeats):  # interleaved: a change in the machine's load hits every method alike
                for name, run in runs.items():
                    start = time.perf_counter()
                    curves = run()
                    samples[name].append(time.perf_counter() - start)
                    if name == "forest":
                        forest = curves
                    assert torch.equal(curves, forest), (label, t, name)
            times = {name: statistics.median(values) for name, values in samples.items()}
            for column, seconds in times.items():
                if column != "forest":
                    wins.setdefault(column, {}).setdefault(t, True)
                    wins[column][t] &= seconds < times["forest"]
            best = min(times, key=times.__getitem__)
            print(f"{label:<22} {t:>4}" + "".join(f" {s:>8.3f}s" for s in times.values()) + f"  {best}")
    print("## the largest T up to which the direct computation beat the forests in every case and at every T")
    for column, by_t in wins.items():
        ts = sorted(by_t)
        upto = max([t for t in ts if all(by_t[s] for s in ts if s <= t)], default=None)
        first_loss = min([t for t in ts if not by_t[t]], default=None)
        print(
            f"{column:<9} {'none' if upto is None else upto}"
            + (f" (the forests won somewhere at T = {first_loss})" if first_loss else " (won at every T measured)")
        )
    print(f"# load average at the end: {load()}")


if __name__ == "__main__":
    main()
