"""The stages of the GPU check (`benchmarks/gpu/run.sh` runs them; see README.md there for the fields).

    python benchmarks/gpu/bench_gpu.py STAGE --out OUTDIR [--dry]

Stages: ``init`` (results.json with every fixed field empty), ``env`` (device, versions, CPU),
``ccl`` (per-volume times of every connected-component backend, and whether all give the same Betti
numbers), ``sizes`` (both CUDA labellers per call at the batch sizes the callback buffers, and the size rule
those measurements suggest), ``eval`` (one TopologyCallback evaluation of ResNet18 on 2000 inputs, at 32x32
and 224x224), ``fit`` (fit time with and without the callback), ``persistence`` (persistence diagrams of a
ResNet18 sample, issue 23), ``cpu_threads`` (the CPU engine on 1, 2, 4, ... host cores against cripser, issues
22 and 23) and ``summary`` (CUDA test result, goals, a table).

Every stage merges its fields into ``OUTDIR/results.json`` as soon as it has them (atomic writes), so a
stage killed by its time cap keeps what it measured. ``--dry`` runs the same steps at tiny sizes on the
CPU (no CUDA): the "device" timings are then the torch backend on the CPU. A stage reads its time
budget in seconds from ``$STAGE_BUDGET`` and drops optional work (repeats, full-size runs) to fit it.

Only the public API is imported: ``lightning_topo.functional``, ``TopologyCallback``, ``analyse`` and
``lightning_topo.functional.components.count_components`` (whose module also names the backends).

Each stage lives in ``benchmarks/gpu/stages/`` (one module a job); helpers shared with the other benchmarks in
``benchmarks/_common.py``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
for _path in (HERE.parent, HERE):  # benchmarks/ (_common.py) and benchmarks/gpu/ (stages/), whoever imports this
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from stages.cpu_threads import stage_cpu_threads  # noqa: E402
from stages.environment import stage_env  # noqa: E402
from stages.evaluation import stage_eval  # noqa: E402
from stages.fit import stage_fit  # noqa: E402
from stages.labelling import stage_ccl, stage_sizes  # noqa: E402
from stages.persistence import stage_persistence  # noqa: E402
from stages.results import stage_init  # noqa: E402
from stages.summary import stage_summary  # noqa: E402

STAGES: dict[str, Callable[[argparse.Namespace], None]] = {
    "init": stage_init,
    "env": stage_env,
    "ccl": stage_ccl,
    "sizes": stage_sizes,
    "eval": stage_eval,
    "fit": stage_fit,
    "persistence": stage_persistence,
    "cpu_threads": stage_cpu_threads,
    "summary": stage_summary,
}


def main(argv: list[str] | None = None) -> None:
    """Run one stage."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=sorted(STAGES))
    parser.add_argument("--out", type=Path, required=True, help="output folder (results.json lives there)")
    parser.add_argument("--dry", action="store_true", help="tiny sizes on the CPU")
    parser.add_argument("--stages-file", type=Path, default=None, help="summary: run.sh's stage status file")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.stage not in ("init", "summary"):
        import torch

        torch.manual_seed(0)
    STAGES[args.stage](args)


if __name__ == "__main__":
    main()
