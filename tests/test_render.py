"""The background renderer: latest job wins, throttled, errors kept, nothing waits on the training thread."""

from __future__ import annotations

import threading

import pytest

from lightning_topo.loggers.render import BackgroundRenderer


def test_latest_job_wins_and_wait_drains() -> None:
    renderer = BackgroundRenderer(first_delay_s=0.0, duty_cycle=1.0)
    release, started, ran = threading.Event(), threading.Event(), []

    def first() -> None:
        started.set()
        release.wait()
        ran.append("first")

    renderer.submit(first)
    assert started.wait(60)
    renderer.submit(lambda: ran.append("second"))  # replaced by the third before it starts
    renderer.submit(lambda: ran.append("third"))
    assert not renderer.idle
    release.set()
    assert renderer.wait(60)
    assert ran == ["first", "third"]
    assert (renderer.done, renderer.skipped) == (2, 1)
    assert renderer.idle


def test_submit_returns_before_the_job_runs() -> None:
    renderer = BackgroundRenderer(first_delay_s=3600.0)
    ran: list[str] = []
    renderer.submit(lambda: ran.append("job"))
    assert ran == [] and not renderer.idle  # held back by the throttle: the caller did not wait
    renderer.flush()
    assert renderer.wait(60) and ran == ["job"]


def test_a_failing_job_is_kept_and_the_next_one_runs() -> None:
    errors: list[BaseException] = []
    renderer = BackgroundRenderer(on_error=errors.append, first_delay_s=0.0, duty_cycle=1.0)

    def boom() -> None:
        raise RuntimeError("boom")

    renderer.submit(boom)
    assert renderer.wait(60)
    ran: list[str] = []
    renderer.submit(lambda: ran.append("after"))
    assert renderer.wait(60)
    assert ran == ["after"] and [str(e) for e in errors] == ["boom"] and renderer.errors == errors


def test_duty_cycle_is_checked() -> None:
    with pytest.raises(ValueError, match="duty_cycle"):
        BackgroundRenderer(duty_cycle=0.0)


def test_pickled_renderer_starts_empty() -> None:
    import pickle

    renderer = BackgroundRenderer(first_delay_s=3600.0)
    renderer.submit(lambda: None)
    copy = pickle.loads(pickle.dumps(renderer))  # ddp_spawn sends callbacks to new processes
    assert copy.idle and copy.first_delay_s == 3600.0
    renderer.flush()
    assert renderer.wait(60)


def test_on_idle_runs_before_wait_returns() -> None:
    calls: list[str] = []
    renderer = BackgroundRenderer(on_idle=lambda: calls.append("idle"), first_delay_s=0.0, duty_cycle=1.0)
    renderer.submit(lambda: calls.append("job"))
    assert renderer.wait(60)
    assert calls == ["job", "idle"] and not renderer.running
