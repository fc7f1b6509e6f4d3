"""Drawing figures off the training thread.

Matplotlib needs 0.1-0.3 s for a set of figures, as long as several epochs of a small model, and it holds
Python's GIL while it draws. :class:`BackgroundRenderer` runs such jobs on one worker thread so training never
waits for them, and keeps the drawing to a small share of the time:

* the latest job wins: a job submitted while another waits replaces it (it would draw the same figures with
  older data), so the queue never grows however fast training outpaces drawing;
* throttled: after a job that took ``d`` seconds the next one starts no sooner than ``d * (1 - duty_cycle) /
  duty_cycle`` seconds later (0.9 s after a 0.1 s job at the default ``duty_cycle=0.1``), and the first one
  ``first_delay_s`` after the first submission, so a short fit draws only once, after its last evaluation;
* :meth:`~BackgroundRenderer.flush` lets the pending job start at once (the callback calls it when fitting
  ends, without waiting); :meth:`~BackgroundRenderer.wait` also blocks until it is done; the worker is not a
  daemon thread, so the interpreter waits for the last figures before it exits;
* a job that raises does not stop training: the error is kept (``errors``) and handed to ``on_error``.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Callable

__all__ = ["BackgroundRenderer"]

Job = Callable[[], None]

_RENDERERS: weakref.WeakSet[BackgroundRenderer] = weakref.WeakSet()


def _reset_after_fork() -> None:
    """In a process made by ``fork``: no renderer's worker thread is here (the parent draws its own jobs)."""
    for renderer in list(_RENDERERS):
        renderer._forget_worker()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


class BackgroundRenderer:
    """A worker thread running the latest submitted job; the thread exists only while there is work.

    Args:
        on_error: called (on the worker thread) with the exception of a job that failed.
        on_idle: called on the worker thread when it runs out of jobs, before it stops (:meth:`wait` returns
            after it).
        duty_cycle: the largest share of wall time spent drawing while jobs keep coming (0 < duty_cycle <= 1;
            1 draws back to back).
        first_delay_s: seconds from the first submission to the first job (unless flushed first).
        name: the thread's name.
    """

    def __init__(
        self,
        on_error: Callable[[BaseException], None] | None = None,
        on_idle: Callable[[], None] | None = None,
        duty_cycle: float = 0.1,
        first_delay_s: float = 2.0,
        name: str = "lightning-topo-charts",
    ) -> None:
        if not 0.0 < duty_cycle <= 1.0:
            raise ValueError(f"duty_cycle must be in (0, 1], got {duty_cycle!r}")
        self.on_error = on_error
        self.on_idle = on_idle
        self.duty_cycle = duty_cycle
        self.first_delay_s = first_delay_s
        self.name = name
        self.errors: list[BaseException] = []
        #: Jobs replaced by a newer one before they started.
        self.skipped = 0
        #: Jobs run to completion (or failure).
        self.done = 0
        #: Seconds each job took.
        self.durations: list[float] = []
        self._cond = threading.Condition()
        self._job: Job | None = None
        self._urgent = False
        self._busy = False
        self._worker_running = False
        self._not_before: float | None = None
        _RENDERERS.add(self)

    def _forget_worker(self) -> None:
        """No job and no worker thread (a copy made by ``fork`` or pickling: the thread is the original's)."""
        self._cond = threading.Condition()
        self._job, self._busy, self._urgent, self._worker_running = None, False, False, False

    def submit(self, job: Job) -> None:
        """Run ``job`` on the worker thread when the throttle allows; replaces a job that has not started yet."""
        with self._cond:
            if self._job is not None:
                self.skipped += 1
            self._job = job
            if self._not_before is None:
                self._not_before = time.monotonic() + self.first_delay_s
            if not self._worker_running:
                self._worker_running = True
                threading.Thread(target=self._loop, name=self.name, daemon=False).start()
            self._cond.notify_all()

    def flush(self) -> None:
        """Let the pending job (if any) start now, without waiting for it."""
        with self._cond:
            if self._job is not None:
                self._urgent = True
                self._cond.notify_all()

    def _take(self) -> Job | None:
        with self._cond:
            while True:
                if self._job is None:
                    return None
                delay = (self._not_before or 0.0) - time.monotonic()
                if self._urgent or delay <= 0:
                    job, self._job, self._urgent, self._busy = self._job, None, False, True
                    return job
                self._cond.wait(delay)

    def _loop(self) -> None:
        while True:
            self._run_jobs()
            if self.on_idle is not None:
                try:
                    self.on_idle()
                except Exception as err:
                    self._failed(err)
            with self._cond:
                if self._job is None:  # else a job came in meanwhile: go on with it
                    self._worker_running = False
                    self._cond.notify_all()
                    return

    def _failed(self, err: BaseException) -> None:
        self.errors.append(err)
        if self.on_error is not None:
            self.on_error(err)

    def _run_jobs(self) -> None:
        while (job := self._take()) is not None:
            start = time.monotonic()
            try:
                job()
            except Exception as err:  # a failed figure must not end training
                self._failed(err)
            finally:
                end = time.monotonic()
                with self._cond:
                    self.durations.append(end - start)
                    self._not_before = end + (end - start) * (1.0 - self.duty_cycle) / self.duty_cycle
                    self._busy = False
                    self.done += 1
                    self._cond.notify_all()

    def __getstate__(self) -> dict:
        # Picklable (``ddp_spawn`` sends callbacks to its processes): a copy starts with no job and no thread.
        state = self.__dict__.copy()
        del state["_cond"]
        state.update(_job=None, _busy=False, _urgent=False, _worker_running=False)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._forget_worker()

    @property
    def running(self) -> bool:
        """The worker thread exists (it has a job, or is about to stop)."""
        with self._cond:
            return self._worker_running

    @property
    def idle(self) -> bool:
        """No job waiting or running."""
        with self._cond:
            return self._job is None and not self._busy

    def wait(self, timeout: float | None = None) -> bool:
        """Start the pending job now and block until no job waits or runs and the worker has stopped; ``False`` if
        ``timeout`` seconds passed first."""
        self.flush()
        with self._cond:
            return self._cond.wait_for(
                lambda: self._job is None and not self._busy and not self._worker_running, timeout=timeout
            )
