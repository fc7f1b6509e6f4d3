"""The chart worker thread and process-wide state: figures drawn on a thread never touch ``matplotlib.rcParams``
(a user's own ``rc_context`` on the main thread stays in force, and nothing is left behind), and ``finish()``
racing the worker's going idle always ends with our TensorBoard writers closed. Interleavings are forced with
events, never sleeps."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from lightning.pytorch import Trainer
from lightning.pytorch.loggers import TensorBoardLogger

from lightning_topo.loggers.charts import ChartWriter
from lightning_topo.loggers.figures import figures_of, png_bytes

matplotlib = pytest.importorskip("matplotlib")

TIMEOUT = 60.0


class PausingLayers(dict):
    """A record's ``layers`` whose first ``items()`` (read while the figure is being built) runs ``pause``."""

    def __init__(self, *args: Any, pause: Any) -> None:
        super().__init__(*args)
        self.pause = pause
        self.paused = False

    def items(self) -> Any:
        if not self.paused:
            self.paused = True
            self.pause()
        return super().items()


def _history(layers: dict | None = None) -> list[dict]:
    names = ["net.0", "net.2", "net.4"]
    plain = {
        n: {"betti": [[3.0 - i, 1.0, 0.0], [2.0, 0.0, 0.0]], "omega": 3.0 - i, "module": "Conv2d"}
        for i, n in enumerate(names)
    }
    first = {"epoch": 0, "global_step": 2, "step": 1, "theta": -0.1, "decay_rate": 0.2, "layers": plain}
    last = {**first, "epoch": 1, "global_step": 4, "step": 3, "layers": plain if layers is None else layers}
    return [first, last]


def _layers_pausing(pause: Any) -> PausingLayers:
    return PausingLayers(_history()[-1]["layers"], pause=pause)


def test_a_figure_drawn_on_a_thread_leaves_rcparams_untouched() -> None:
    before = matplotlib.rcParams.copy()
    drawing, user_inside = threading.Event(), threading.Event()
    seen_while_drawing: list[Any] = []

    def pause() -> None:  # on the drawing thread, in the middle of building a figure
        seen_while_drawing.append(matplotlib.rcParams.copy())
        drawing.set()
        assert user_inside.wait(TIMEOUT)

    errors: list[BaseException] = []

    def draw() -> None:
        try:
            for fig in figures_of(_history(_layers_pausing(pause))).values():
                png_bytes(fig)
        except BaseException as err:  # reported on the main thread
            errors.append(err)

    thread = threading.Thread(target=draw)
    thread.start()
    assert drawing.wait(TIMEOUT)
    with matplotlib.rc_context({"font.size": 7.0, "lines.linewidth": 5.0, "axes.titlesize": 30.0}):
        mine = matplotlib.rcParams.copy()
        user_inside.set()  # the figure is finished while the user's context is in force
        thread.join(TIMEOUT)
        assert not thread.is_alive() and not errors, errors
        assert matplotlib.rcParams.copy() == mine, "the drawing thread changed the user's rcParams"
    assert matplotlib.rcParams.copy() == before, "rcParams differ after both exited"
    assert seen_while_drawing and seen_while_drawing[0] == before, "the drawing changed rcParams while it ran"


def test_figures_keep_their_own_font_sizes_under_a_users_rc_context() -> None:
    """The sizes are set per artist: a user's small default font does not shrink our thumbnails' text."""

    def sizes() -> dict[str, float]:
        fig = figures_of(_history())["betti_vs_depth"]
        ax = fig.axes[0]
        return {
            "title": ax.title.get_fontsize(),
            "ylabel": ax.yaxis.label.get_fontsize(),
            "ytick": ax.get_yticklabels()[0].get_fontsize(),
            "legend": ax.get_legend().get_texts()[0].get_fontsize(),
        }

    default = sizes()
    with matplotlib.rc_context({"font.size": 5.0, "axes.titlesize": 5.0, "ytick.labelsize": 5.0}):
        assert sizes() == default
    assert default == {"title": 13.0, "ylabel": 12.0, "ytick": 11.0, "legend": 11.0}


def _tensorboard_trainer(tmp_path: Path) -> Trainer:
    return Trainer(logger=TensorBoardLogger(tmp_path), accelerator="cpu", enable_progress_bar=False)


def test_finish_racing_the_workers_idle_still_closes_the_writers(tmp_path: Path) -> None:
    """The worker has just gone idle (fitting not finished yet, so it keeps the writers) but not yet stopped when
    ``finish()`` runs: one of the two must close them."""
    writer = ChartWriter(kinds=["tensorboard"])
    went_idle, finish_returned = threading.Event(), threading.Event()
    on_idle = writer.renderer.on_idle

    def idle_then_pause() -> None:
        on_idle()
        went_idle.set()
        assert finish_returned.wait(TIMEOUT)

    writer.renderer.on_idle = idle_then_pause
    writer.send(_tensorboard_trainer(tmp_path), _history())
    writer.renderer.flush()
    assert went_idle.wait(TIMEOUT)
    (summary,) = writer._figure_writers.values()
    assert summary.all_writers is not None  # open: fitting has not finished
    writer.finish()
    finish_returned.set()
    assert writer.wait(TIMEOUT)
    assert writer._figure_writers == {} and summary.all_writers is None


def test_finish_while_a_figure_is_drawn_closes_the_writers_after_it(tmp_path: Path) -> None:
    writer = ChartWriter(kinds=["tensorboard"])
    drawing, finish_returned = threading.Event(), threading.Event()

    def pause() -> None:
        drawing.set()
        assert finish_returned.wait(TIMEOUT)

    writer.send(_tensorboard_trainer(tmp_path), _history(_layers_pausing(pause)))
    writer.renderer.flush()
    assert drawing.wait(TIMEOUT)
    writer.finish()
    finish_returned.set()
    assert writer.wait(TIMEOUT)
    assert writer._figure_writers == {} and not writer.renderer.errors
    events = list(tmp_path.rglob("*.topology_figures"))
    assert len(events) == 1 and events[0].stat().st_size > 0
