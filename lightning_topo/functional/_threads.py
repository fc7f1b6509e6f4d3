"""Threads for the compiled CPU kernels (numba, ``nogil``): how many, one shared pool, and a batch split into
chunks of consecutive volumes across it. Used by the CPU union-find (:mod:`._cpu_unionfind`), the persistence
kernels (:mod:`.persistence`) and the H1 reduction (:mod:`._h1_reduction`)."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

import numpy as np
import torch

T = TypeVar("T")

_POOL: list = []  # [ThreadPoolExecutor, workers], created at the first batch run on more than one thread
_LOCAL = threading.local()  # `workers`: this thread's own count (see `thread_workers`)
_POOL_LOCK = threading.Lock()  # held while the pool is replaced or given work: a replaced pool takes no more


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


def run_chunks(fn: Callable[[int, int], T], batch: int, workers: int, chunks: int | None = None) -> list[T]:
    """``fn(lo, hi)`` over consecutive chunks ``[lo, hi)`` of ``range(batch)``, in order: one call on this thread
    when ``workers <= 1`` (or ``batch <= 1``), else ``chunks`` (default ``workers``; at most ``batch``) calls on a
    shared pool of ``workers`` threads. ``fn`` must release the GIL to gain from the threads."""
    workers = min(workers, batch)
    if workers <= 1:
        return [fn(0, batch)]
    parts = min(batch, chunks if chunks is not None else workers)
    bounds = np.unique(np.linspace(0, batch, parts + 1).astype(np.int64)).tolist()
    with _POOL_LOCK:
        pool = _pool(workers)
        futures = [pool.submit(fn, lo, hi) for lo, hi in itertools.pairwise(bounds)]
    return [future.result() for future in futures]
