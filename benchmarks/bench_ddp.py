"""Topology time per validation epoch with 1 and 2 DDP processes (gloo, CPU), and their ratio.

    python benchmarks/bench_ddp.py            # cubical and Rips views, 400 sampled inputs, 5 evaluations
    python benchmarks/bench_ddp.py --quick

Each configuration runs `trainer.validate` repeatedly on the digits CNN with `TopologyCallback` and reads
`callback.timings` on every rank (capture + Betti numbers + cross-rank reduction); the figure is the
median over evaluations of the slowest rank. One torch thread per process, so 2 processes use both cores.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def worker(args: argparse.Namespace) -> None:
    import warnings

    import torch
    from lightning.pytorch import Trainer, seed_everything
    from torch.utils.data import DataLoader, TensorDataset

    from lightning_topo import TopologyCallback
    from lightning_topo.datasets import load_digits_tensors
    from lightning_topo.models import Classifier, digits_cnn

    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    x, y = load_digits_tensors(size=16)
    val = DataLoader(TensorDataset(x, y), batch_size=64)
    seed_everything(0)
    model = Classifier(digits_cnn(channels=(32, 64)))
    topo = TopologyCallback(complex=args.view, samples_per_class=40, max_samples=400, k=10)
    trainer = Trainer(
        accelerator="cpu",
        devices=args.devices,
        strategy="ddp" if args.devices > 1 else "auto",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[topo],
    )
    for _ in range(args.repeats):
        trainer.validate(model, val, verbose=False)
    rank = int(os.environ.get("LOCAL_RANK", 0))
    Path(args.out, f"rank{rank}.json").write_text(json.dumps(topo.timings))


def launch(view: str, devices: int, repeats: int) -> float:
    with tempfile.TemporaryDirectory() as out, socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(s.getsockname()[1]))
        s.close()
        cmd = [
            sys.executable,
            __file__,
            "--worker",
            "--view",
            view,
            "--devices",
            str(devices),
            "--repeats",
            str(repeats),
            "--out",
            out,
        ]
        subprocess.run(cmd, env=env, check=True, timeout=900, capture_output=True)
        per_rank = [json.loads(Path(out, f"rank{r}.json").read_text()) for r in range(devices)]
    slowest = [max(t[i] for t in per_rank) for i in range(repeats)]
    return statistics.median(slowest[1:] if repeats > 1 else slowest)  # the first includes warm-up


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--view", default="cubical")
    parser.add_argument("--devices", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=".")
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    repeats = 2 if args.quick else 5
    print("# topology per validation epoch: digits CNN (32, 64 channels) on 16x16 digits, 400 sampled inputs")
    print(f"{'view':<8} {'1 process':>10} {'2 processes':>12} {'speed-up':>9}")
    for view in ("cubical", "rips"):
        one = launch(view, 1, repeats)
        two = launch(view, 2, repeats)
        print(f"{view:<8} {one * 1e3:>8.0f}ms {two * 1e3:>10.0f}ms {one / two:>8.2f}x")


if __name__ == "__main__":
    main()
