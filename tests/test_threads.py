"""The shared thread pool of the compiled CPU kernels (`functional/_threads.py`): several jobs' chunks in one queue,
at most `workers` threads at once, errors raised, no deadlock when a pool thread itself splits its work."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

from lightning_topo.functional import _threads, cubical_persistence


class _Counter:
    """The most chunks running at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = 0
        self.most = 0

    def chunk(self, lo: int, hi: int) -> int:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
        time.sleep(0.002)
        with self.lock:
            self.now -= 1
        return hi - lo


def test_chunks_of_two_jobs_run_at_once() -> None:
    """A thread done with (or waiting on) one job takes the other's chunks: job A's only chunk waits for job B's,
    which would never run if the jobs ran one after the other."""
    b_ran = threading.Event()

    def job_a(lo: int, hi: int) -> str:
        return "a" if b_ran.wait(timeout=20) else "timed out"

    def job_b(lo: int, hi: int) -> str:
        b_ran.set()
        return "b"

    results = _threads.start_jobs([(job_a, 1, 1), (job_b, 1, 1)], workers=2).results()
    assert results == [["a"], ["b"]]


def test_at_most_workers_threads_even_in_a_larger_pool() -> None:
    _threads.run_chunks(lambda lo, hi: hi - lo, 64, 8, chunks=64)  # the shared pool has 8 threads or more now
    for workers in (1, 2, 3):
        counter = _Counter()
        parts = _threads.start_jobs([(counter.chunk, 40, 40), (counter.chunk, 24, 12)], workers).results()
        assert [sum(p) for p in parts] == [40, 24]  # every index once, each job's chunks in order
        assert [len(p) for p in parts] == [40, 12]
        assert counter.most <= workers
        if workers == 1:
            assert counter.most == 1


def test_a_failing_chunk_raises_and_stops_the_queue() -> None:
    ran: list[int] = []

    def chunk(lo: int, hi: int) -> int:
        ran.append(lo)
        if lo == 3:
            raise ZeroDivisionError("chunk 3")
        time.sleep(0.001)
        return lo

    with pytest.raises(ZeroDivisionError, match="chunk 3"):
        _threads.start_jobs([(chunk, 200, 200)], workers=2).results()
    assert len(ran) < 200  # the other thread stopped taking chunks


def test_a_pool_thread_that_splits_its_own_work_does_not_deadlock() -> None:
    """Chunks that call `run_chunks` themselves fill the pool's threads; each waits for helpers queued behind the
    others. The waiting thread runs its own chunks and cancels the helpers that never started."""

    def inner(lo: int, hi: int) -> int:
        return hi - lo

    def outer(lo: int, hi: int) -> int:
        return sum(_threads.run_chunks(inner, 16, 2, chunks=16))

    done: list[int] = []
    t = threading.Thread(target=lambda: done.append(sum(_threads.run_chunks(outer, 8, 2, chunks=8))))
    t.start()
    t.join(timeout=60)
    assert not t.is_alive(), "deadlock: the outer chunks wait on helpers nobody runs"
    assert done == [8 * 16]


def test_h1_and_the_top_dimension_of_one_volume_share_two_threads() -> None:
    """`dims=(0, 1, 2)` on one volume with two threads: its H1 reduction and its top dimension are one queue; the
    diagrams are those of one thread."""
    volumes = torch.relu(torch.randn(1, 6, 9, 9, generator=torch.Generator().manual_seed(3)))
    one = cubical_persistence(volumes, workers=1)
    two = cubical_persistence(volumes, workers=2)
    assert one == two
    assert np.array_equal(one.dims.numpy(), np.sort(one.dims.numpy()))  # by dimension within the volume
    assert set(one.dims.tolist()) == {0, 1, 2}
