"""A real multi-process run for the DDP tests: `python tests/ddp_run.py --devices N --out DIR [--uneven]`.

Lightning's "ddp" strategy relaunches this script once per extra rank (gloo on CPU). Every rank writes
`rank{R}.json` with the topology values it logged for: validation with the cubical view, validation with
the point-cloud view, and a fit with EarlyStopping on `topology/decay_rate`.

With `--data` it validates the data splits of `data_run` only. With `--fail-rank R` the script instead
validates with an `output_fn` that raises on rank R only (fault injection through the public config), records
what each rank raised, then validates once more with the same processes (the process group must still be in
step) and records those values; in between it checks `ranks_fail_together` on its own, plain and nested.
"""

from __future__ import annotations

import argparse
import json
import os
import warnings
from pathlib import Path

import torch
from lightning.pytorch import Trainer, seed_everything
from lightning.pytorch.callbacks import EarlyStopping
from torch.utils.data import DataLoader, TensorDataset

from lightning_topo import TopologyCallback, TopologyReport, analyse
from lightning_topo.analysis import TopologyEvaluationError, ranks_fail_together
from lightning_topo.capture import first_tensor
from lightning_topo.datasets import load_digits_tensors
from lightning_topo.models import Classifier, digits_cnn

FAIL_RANK: int | None = None


class InjectedFailure(RuntimeError):
    """The failure `--fail-rank` injects into one rank's capture."""


def output_fn(output: object) -> torch.Tensor | None:
    """The default choice of tensor, except on rank FAIL_RANK, where it raises during the evaluation's capture
    (not on the two-input pass that orders the layers: the failure must come while the metric's states wait)."""
    tensor = first_tensor(output)
    failing = FAIL_RANK is not None and torch.distributed.is_initialized() and torch.distributed.get_rank() == FAIL_RANK
    if failing and tensor is not None and tensor.shape[0] > 2:
        raise InjectedFailure(f"injected failure on rank {FAIL_RANK}")
    return tensor


def loaders(uneven: bool) -> tuple[DataLoader, DataLoader]:
    x, y = load_digits_tensors()
    if uneven:
        # 21 validation inputs (< 2 ranks x batch 16); class 9 has a single input, so one rank holds it.
        per_class = [3, 3] + [2] * 7 + [1]  # 21 inputs; class 9 has one
        val_idx = torch.cat([torch.nonzero(y == c).flatten()[-n:] for c, n in enumerate(per_class)])
    else:
        val_idx = torch.arange(1280, 1797)
    train_idx = torch.arange(0, 1280)  # disjoint from every validation index above
    train = DataLoader(TensorDataset(x[train_idx], y[train_idx]), batch_size=32, shuffle=False)
    val = DataLoader(TensorDataset(x[val_idx], y[val_idx]), batch_size=16, shuffle=False)
    return train, val


def topology_values(trainer: Trainer) -> dict[str, float]:
    return {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("topology/")}


def report_values(report: TopologyReport) -> dict[str, float]:
    """The report's numbers under the keys the callback logs them with."""
    values = {"topology/theta": report.theta, "topology/decay_rate": report.decay_rate}
    means = report.mean_betti()
    for i, name in enumerate(report.layers):
        for k in range(means.shape[1]):
            values[f"topology/{name}/b{k}"] = float(means[i, k])
        values[f"topology/{name}/omega"] = float(report.omega[i])
    values["topology/omega_last"] = float(report.omega[-1])
    for key, means in report.mean_persistence().items():
        for i, name in enumerate(report.layers):
            values[f"topology/{name}/{key}"] = float(means[i])
    return values


def failure_run(common: dict, val: DataLoader) -> dict[str, object]:
    """Validation with a capture that raises on rank FAIL_RANK, then a normal validation in the same processes."""
    out: dict[str, object] = {}
    seed_everything(0)
    model = Classifier(digits_cnn())
    topo = TopologyCallback(samples_per_class=4, output_fn=output_fn)
    try:
        Trainer(callbacks=[topo], **common).validate(model, val, verbose=False)
        out["raised"] = None
    except Exception as err:  # every rank records what it raised
        cause = err.__cause__
        out["raised"] = type(err).__name__
        out["message"] = str(err)
        out["failed_ranks"] = list(err.failed_ranks) if isinstance(err, TopologyEvaluationError) else None
        out["cause"] = type(cause).__name__ if cause is not None else None
        out["root_cause"] = type(cause.__cause__).__name__ if cause is not None and cause.__cause__ else None
    # The helper on its own (what a caller wraps around per-rank work before a collective), plain and nested:
    # rank FAIL_RANK fails outside the inner block, the others leave through the inner block's exchange.
    for nested in (False, True):
        try:
            with ranks_fail_together():
                if torch.distributed.get_rank() == FAIL_RANK:
                    raise InjectedFailure("direct")
                if nested:
                    with ranks_fail_together():
                        pass
            out[f"direct_nested={nested}"] = None
        except TopologyEvaluationError as err:
            out[f"direct_nested={nested}"] = list(err.failed_ranks)
    topo = TopologyCallback(samples_per_class=4)
    trainer = Trainer(callbacks=[topo], **common)
    trainer.validate(model, val, verbose=False)
    out["after"] = topology_values(trainer)
    return out


class ShardedStream(torch.utils.data.IterableDataset):
    """A validation stream that each process reads its own part of (contiguous, by rank): a common pattern."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __iter__(self):  # type: ignore[no-untyped-def]
        rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
        part = torch.arange(len(self.y)).tensor_split(world)[rank]
        for i in part.tolist():
            yield self.x[i], self.y[i]


def data_run(common: dict) -> dict[str, object]:
    """Validation data as users split it: an IterableDataset streamed in parts by rank (refused on every rank,
    naming the cause), and one dataset whose validation split is the loader's `SubsetRandomSampler` (sampled from
    the split, through Lightning's sampler wrapper, on every rank alike)."""
    out: dict[str, object] = {}
    x, y = load_digits_tensors()
    order = y[1000:1400].argsort()  # sorted by class: each rank's part holds other classes
    stream = DataLoader(ShardedStream(x[1000:1400][order], y[1000:1400][order]), batch_size=64)
    seed_everything(0)
    model = Classifier(digits_cnn())
    try:
        Trainer(callbacks=[TopologyCallback(charts=False)], **common).validate(model, stream, verbose=False)
        out["stream_raised"] = None
    except Exception as err:
        out["stream_raised"], out["stream_message"] = type(err).__name__, str(err)
    full = TensorDataset(x, y)
    split = list(range(1400, 1797))
    loader = DataLoader(full, batch_size=32, sampler=torch.utils.data.SubsetRandomSampler(split))
    topo = TopologyCallback(charts=False, samples_per_class=6)
    trainer = Trainer(callbacks=[topo], **common)
    trainer.validate(model, loader, verbose=False)
    out["split_indices"] = topo.sample.indices.tolist()
    out["split_values"] = topology_values(trainer)
    report = analyse(model, torch.utils.data.Subset(full, split), topo.config, progress=False)
    out["split_analyse"] = report_values(report)
    return out


def main() -> None:
    global FAIL_RANK
    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", type=int, default=1)
    parser.add_argument("--out", required=True)
    parser.add_argument("--uneven", action="store_true")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--fail-rank", type=int, default=None)
    parser.add_argument("--data", action="store_true", help="only the validation-data cases of `data_run`")
    args = parser.parse_args()
    FAIL_RANK = args.fail_rank
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    common = dict(
        accelerator="cpu",
        devices=args.devices,
        strategy="ddp" if args.devices > 1 else "auto",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    train, val = loaders(args.uneven)
    out: dict[str, object] = {}
    if args.data:
        out = data_run(common)
        args.uneven = True  # nothing else below
        complexes: tuple[str, ...] = ()
    elif FAIL_RANK is not None:
        out = failure_run(common, val)
        complexes: tuple[str, ...] = ()
    else:
        complexes = ("cubical", "rips")
    for complex_ in complexes:
        seed_everything(0)
        model = Classifier(digits_cnn())
        topo = TopologyCallback(complex=complex_, samples_per_class=8, k=5)
        trainer = Trainer(callbacks=[topo], **common)
        trainer.validate(model, val, verbose=False)
        out[f"validate_{complex_}"] = topology_values(trainer)
        out[f"timings_{complex_}"] = topo.timings
        # The same weights and sample in this one process (no sync even though a process group exists).
        report = analyse(model, val.dataset, topo.config, progress=False)
        out[f"analyse_{complex_}"] = report_values(report)
    if FAIL_RANK is None and not args.data:  # persistence summaries (all three, every dimension): reduced across ranks
        seed_everything(0)
        model = Classifier(digits_cnn())
        topo = TopologyCallback(samples_per_class=4, persistence=["total_persistence", "entropy", "persistent_betti"])
        trainer = Trainer(callbacks=[topo], **common)
        trainer.validate(model, val, verbose=False)
        out["validate_persistence"] = topology_values(trainer)
        report = analyse(model, val.dataset, topo.config, progress=False)
        out["analyse_persistence"] = report_values(report)
    if not args.uneven and FAIL_RANK is None:
        seed_everything(0)
        model = Classifier(digits_cnn())
        topo = TopologyCallback(samples_per_class=8)
        stopper = EarlyStopping(monitor="topology/decay_rate", mode="max", patience=2, min_delta=5.0)
        trainer = Trainer(callbacks=[topo, stopper], max_epochs=args.epochs, **common)
        trainer.fit(model, train, val)
        out["fit_stopped_epoch"] = stopper.stopped_epoch
        out["fit_history_epochs"] = [h["epoch"] for h in topo.history]
        out["fit_values"] = topology_values(trainer)
    rank = int(os.environ.get("LOCAL_RANK", 0))
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / f"rank{rank}.json").write_text(json.dumps(out))


if __name__ == "__main__":
    main()
