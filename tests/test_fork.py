"""A process made by ``fork`` after an evaluation (Lightning's ``ddp_fork`` / ``ddp_notebook`` after an ``analyse`` or
a fit in a notebook): the parent's worker threads are not in the child. The child's evaluation hung for ever in
``future.result()`` (its background executor counted the parent's thread); it runs and gives the parent's values.
"""

from __future__ import annotations

import multiprocessing as mp
import sys

import pytest
import torch
from torch.utils.data import TensorDataset

from lightning_topo.analysis import analyse
from lightning_topo.functional import cubical_persistence
from lightning_topo.functional._threads import thread_workers
from lightning_topo.loggers.render import BackgroundRenderer

pytestmark = pytest.mark.skipif(sys.platform == "win32" or "fork" not in mp.get_all_start_methods(), reason="fork")


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(4, 4, 3, padding=1), torch.nn.ReLU()
    )


def _data() -> TensorDataset:
    gen = torch.Generator().manual_seed(1)
    return TensorDataset(torch.rand(24, 1, 10, 10, generator=gen), torch.arange(24) % 3)


def _work(threads: int) -> tuple[list[float], int]:
    # Our kernels on `threads` threads (the shared pool), torch's own ops on one: torch's OpenMP threads do not
    # survive a fork either (a forked child's parallel conv hangs in libgomp), which is why Lightning gives each
    # forked process its share of the cores, one here.
    with thread_workers(threads):
        report = analyse(_model(), _data(), samples_per_class=8, overlap=True, progress=False)
        diagrams = cubical_persistence(torch.rand(4, 3, 6, 6, generator=torch.Generator().manual_seed(2)))
    return report.omega.tolist(), len(diagrams.pairs)


def _child(queue: mp.Queue, threads: int) -> None:
    torch.set_num_threads(1)
    renderer = _RENDERER
    drawn: list[int] = []
    renderer.submit(lambda: drawn.append(1))
    renderer.flush()
    ok = renderer.wait(timeout=30)
    queue.put((_work(threads), ok and drawn == [1]))


_RENDERER = BackgroundRenderer(first_delay_s=0.0)


@pytest.mark.parametrize("threads", [1, 2])
def test_an_evaluation_in_a_forked_process_runs(threads: int) -> None:
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        expected = _work(threads)  # the parent's background thread (and pool, on 2 threads) exist now
        # A renderer whose worker thread is alive in the parent at the fork
        _RENDERER.submit(lambda: __import__("time").sleep(2.0))
        _RENDERER.flush()
        ctx = mp.get_context("fork")
        queue = ctx.Queue()
        child = ctx.Process(target=_child, args=(queue, threads))
        child.start()
        child.join(60)
        if child.is_alive():
            child.kill()
            pytest.fail("the evaluation in the forked process hung")
        assert child.exitcode == 0
        got, drawn = queue.get(timeout=10)
        assert got == expected and drawn
        assert _RENDERER.wait(timeout=30)
    finally:
        torch.set_num_threads(before)


_DDP_FORK = r"""
import json, os, sys, warnings
import torch
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from lightning_topo import TopologyCallback, analyse
from lightning_topo.datasets import DigitsDataModule
from lightning_topo.models import Classifier, digits_cnn

torch.set_num_threads(1)
data = DigitsDataModule(classes=[0, 1, 2])
data.setup("fit")
analyse(Classifier(digits_cnn((4, 8))), data.val_dataloader(), samples_per_class=4, progress=False)  # as in a notebook
callback = TopologyCallback(samples_per_class=4, charts=False)
checkpoints = ModelCheckpoint(dirpath=sys.argv[1], save_last=True)
trainer = Trainer(
    accelerator="cpu", devices=2, strategy="ddp_fork", max_epochs=1, limit_train_batches=2,
    logger=CSVLogger(sys.argv[1]), callbacks=[callback, checkpoints], enable_progress_bar=False,
    enable_model_summary=False, num_sanity_val_steps=0,
)
trainer.fit(Classifier(digits_cnn((4, 8))), datamodule=DigitsDataModule(classes=[0, 1, 2]))
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    figures = callback.plot()
saved = torch.load(os.path.join(sys.argv[1], "last.ckpt"), weights_only=False)["callbacks"][callback.state_key]
print("RESULT " + json.dumps({
    "history": len(callback.history), "saved": len(saved["history"]), "figures": len(figures),
    "logged": "topology/decay_rate" in trainer.callback_metrics,
    "plot_warning": [str(w.message) for w in caught],
}), flush=True)
"""


def test_a_ddp_fork_fit_after_an_analyse_runs_and_says_where_its_history_is(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The auditor's case: ``analyse`` in a notebook, then a ``ddp_fork`` fit (hung at its first validation). The
    fit's processes work on copies of the callback: the one the user holds stays empty, and both the worker's
    closing line and ``plot()`` say where the history is (the checkpoint holds it)."""
    import subprocess

    env = {**__import__("os").environ, "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        [sys.executable, "-c", _DDP_FORK, str(tmp_path)], capture_output=True, text=True, timeout=150, env=env
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = __import__("json").loads(run.stdout.split("RESULT ", 1)[1])
    assert result["history"] == 0 and result["saved"] == 1 and result["logged"] and result["figures"] == 0
    assert any("no evaluation recorded by this object" in w for w in result["plot_warning"])
    said = run.stdout + run.stderr
    assert said.count("each on a copy of the callback") == 1  # rank zero only
