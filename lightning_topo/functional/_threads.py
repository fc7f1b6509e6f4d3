"""Threads for the compiled CPU kernels (numba, ``nogil``): how many, one shared pool, and a batch split into
chunks of consecutive volumes across it. Used by the CPU union-find (:mod:`._cpu_unionfind`), the persistence
kernels (:mod:`.persistence`) and the H1 reduction (:mod:`._h1_reduction`)."""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

import numpy as np
import torch

T = TypeVar("T")

_POOL: list = []  # [ThreadPoolExecutor, workers], created at the first batch run on more than one thread
_LOCAL = threading.local()  # `workers`: this thread's own count (see `thread_workers`)
_POOL_LOCK = threading.Lock()  # held while the pool is replaced or given work: a replaced pool takes no more


def _forget_pool_after_fork() -> None:
    """In a process made by ``fork`` (Lightning's ``ddp_fork`` / ``ddp_notebook``): the parent's pool has no thread
    here (and its lock may be held by one that is not here), so the child starts its own."""
    global _POOL_LOCK
    _POOL.clear()
    _POOL_LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_after_fork)


def cpu_workers() -> int:
    """Threads for the compiled CPU kernels: torch's intra-op thread count, :func:`torch.get_num_threads` (set it
    with :func:`torch.set_num_threads`). Not :func:`numba.get_num_threads`: asking numba starts its threading layer,
    which resets OpenMP's thread count and so torch's (a process-wide change no library call may make). Inside
    :func:`thread_workers`, the count given there."""
    workers = getattr(_LOCAL, "workers", None)
    return workers if workers is not None else max(1, torch.get_num_threads())


@contextmanager
def thread_workers(workers: int) -> Iterator[None]:
    """On the calling thread only, :func:`cpu_workers` is ``workers``: a background thread runs the kernels on the
    count read on the thread that handed it the work (torch's count, as another thread sees it, is the one that
    held when it first ran torch: a later :func:`torch.set_num_threads` does not reach it)."""
    before = getattr(_LOCAL, "workers", None)
    _LOCAL.workers = max(1, int(workers))
    try:
        yield
    finally:
        _LOCAL.workers = before


def _pool(workers: int) -> ThreadPoolExecutor:
    """The shared pool, grown to ``workers`` threads (the old one finishes the work it has). Call under
    ``_POOL_LOCK``: another thread's growth would otherwise shut a pool down between this one's submissions."""
    if not _POOL or _POOL[1] < workers:
        if _POOL:
            _POOL[0].shutdown(wait=False)
        _POOL[:] = [ThreadPoolExecutor(workers, thread_name_prefix="lightning-topo"), workers]
    return _POOL[0]


class Jobs:
    """Chunks of several jobs run by a fixed number of threads, queued together (:func:`start_jobs`)."""

    def __init__(self, jobs: Sequence[tuple[Callable[[int, int], Any], int, int]], workers: int) -> None:
        tasks = []
        self._out: list[list[Any]] = []
        for job, (fn, batch, chunks) in enumerate(jobs):
            parts = max(1, min(batch, chunks))
            bounds = np.unique(np.linspace(0, batch, parts + 1).astype(np.int64)).tolist()
            tasks += [(job, k, fn, lo, hi) for k, (lo, hi) in enumerate(itertools.pairwise(bounds))]
            self._out.append([None] * (len(bounds) - 1))
        self._tasks = iter(tasks)
        self._lock = threading.Lock()
        self._failed = False
        self._helpers: list[Future] = []
        helpers = min(workers, len(tasks)) - 1  # the thread that collects the results is the last worker
        if helpers > 0:
            with _POOL_LOCK:
                pool = _pool(helpers)
                self._helpers = [pool.submit(self._work) for _ in range(helpers)]

    def _work(self) -> None:
        """Take the next chunk until none is left (or one failed)."""
        while True:
            with self._lock:
                task = None if self._failed else next(self._tasks, None)
            if task is None:
                return
            job, k, fn, lo, hi = task
            try:
                self._out[job][k] = fn(lo, hi)
            except BaseException:
                self._failed = True
                raise

    def abandon(self) -> None:
        """Take no more chunks (the results are not wanted: an error elsewhere); running ones finish."""
        self._failed = True

    def results(self) -> list[list[Any]]:
        """Each job's results in chunk order, once every chunk ran; this thread runs chunks too meanwhile. A helper
        that never started (its pool busy, maybe with this thread) is cancelled, not waited for."""
        try:
            self._work()
        finally:
            for helper in self._helpers:
                if not helper.cancel():
                    helper.result()  # re-raises a helper's error
        return self._out


def start_jobs(jobs: Sequence[tuple[Callable[[int, int], Any], int, int]], workers: int) -> Jobs:
    """Several :func:`run_chunks` at once: job ``(fn, batch, chunks)`` calls ``fn(lo, hi)`` over ``chunks`` (at most
    ``batch``) consecutive chunks ``[lo, hi)`` of ``range(batch)``. All the jobs' chunks form one queue, in the order
    given (put the costliest job first), taken by ``workers - 1`` threads of the shared pool from now on and by this
    thread when it asks for the results (:meth:`Jobs.results`): at most ``workers`` at once, and a thread done with
    one job's chunks takes the next job's instead of waiting for the slowest chunk. With ``workers <= 1`` (or one
    chunk) this thread runs every chunk, in order, when it asks for the results. ``fn`` must release the GIL to gain
    from the threads."""
    return Jobs(jobs, workers)


def run_chunks(fn: Callable[[int, int], T], batch: int, workers: int, chunks: int | None = None) -> list[T]:
    """``fn(lo, hi)`` over consecutive chunks ``[lo, hi)`` of ``range(batch)``, in order: one call on this thread
    when ``workers <= 1`` (or ``batch <= 1``), else ``chunks`` (default ``workers``; at most ``batch``) calls run by
    at most ``workers`` threads (this one and the shared pool's). ``fn`` must release the GIL to gain from the
    threads."""
    workers = min(workers, batch)
    if workers <= 1:
        return [fn(0, batch)]
    return start_jobs([(fn, batch, chunks if chunks is not None else workers)], workers).results()[0]
