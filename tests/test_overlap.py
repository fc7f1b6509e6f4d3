"""`TopologyConfig.overlap`: on the CPU the Betti numbers of each batch are computed on a background thread while the
forward pass (and, in the callback, Lightning's validation loop) goes on. The numbers must be exactly those computed
inside the hooks, also when an in-place op overwrites the watched output and with persistence diagrams."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch
from lightning.pytorch import seed_everything
from models import quiet_trainer
from torch import nn

from lightning_topo import TopologyCallback
from lightning_topo.analysis.evaluate import evaluate_topology, start_evaluation
from lightning_topo.capture import ForwardError, capture_layers, start_capture
from lightning_topo.config import ConfigError, TopologyConfig
from lightning_topo.datasets import DigitsDataModule
from lightning_topo.functional import cubical_betti, sublevel_thresholds
from lightning_topo.models import Classifier, digits_cnn


def _inplace_net() -> nn.Module:
    # The watched convolutions are overwritten by the in-place ReLU after them: a job that read the hook's tensor
    # later (on the background thread) would see the ReLU's output, not the convolution's.
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(inplace=True)
    )


def test_config_overlap_is_a_bool_and_not_a_numeric_setting() -> None:
    assert TopologyConfig().overlap is True
    with pytest.raises(ConfigError, match="`overlap` must be True or False, got 'yes'"):
        TopologyConfig(overlap="yes")  # type: ignore[arg-type]
    assert TopologyConfig(overlap=False).numeric_settings() == TopologyConfig().numeric_settings()


@pytest.mark.parametrize("persistence", [None, ("total_persistence", "persistent_betti")])
def test_capture_with_overlap_equals_inside_the_hooks(persistence) -> None:
    net = _inplace_net()
    x = torch.randn(23, 1, 9, 9, generator=torch.Generator().manual_seed(1))
    cfg = TopologyConfig(batch_size=5, persistence=persistence)  # 5 batches per layer, the last one short
    inside = capture_layers(net, x, ["0", "2"], cfg.replace(overlap=False))
    pending = start_capture(net, x, ["0", "2"], cfg)
    overlapped = pending.result()
    assert pending.result() is overlapped  # read once
    assert inside.problems == overlapped.problems == {}
    for name in ("0", "2"):
        assert torch.equal(inside.values[name], overlapped.values[name])
        if persistence is not None:
            assert torch.equal(inside.persistence[name], overlapped.persistence[name])
            a, b = inside.diagrams[name], overlapped.diagrams[name]
            assert torch.equal(a.pairs, b.pairs) and torch.equal(a.index, b.index) and torch.equal(a.dims, b.dims)
    # ... and they are the convolution's Betti numbers, not those of the ReLU that overwrote it in place.
    with torch.no_grad():
        conv = net[0](x)
    assert torch.equal(overlapped.values["0"], cubical_betti(conv, sublevel_thresholds(conv, "mean")))
    relu = conv.clamp_min(0)
    assert not torch.equal(overlapped.values["0"], cubical_betti(relu, sublevel_thresholds(relu, "mean")))


def test_overlap_computes_on_the_background_thread() -> None:
    seen: set[str] = set()

    def threshold(volumes: torch.Tensor) -> torch.Tensor:  # runs in the hook, on the calling thread
        seen.add(threading.current_thread().name)
        return volumes.flatten(1).mean(1)

    net = _inplace_net()
    x = torch.randn(8, 1, 9, 9)
    cfg = TopologyConfig(threshold=threshold, batch_size=4)
    pending = start_capture(net, x, ["2"], cfg)
    jobs = [r for r in pending._capture.results["2"] if r is not None]
    assert len(jobs) == 2 and not any(isinstance(job, torch.Tensor) for job in jobs)  # jobs, not values yet
    assert seen == {threading.current_thread().name}
    assert torch.equal(
        pending.result().values["2"], capture_layers(net, x, ["2"], cfg.replace(overlap=False)).values["2"]
    )


def test_overlap_reports_non_finite_activations_as_a_problem() -> None:
    class Bad(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x / 0.0  # inf (and nan where x == 0)

    net = nn.Sequential(nn.Conv2d(1, 3, 3), Bad())
    x = torch.randn(6, 1, 8, 8)
    for overlap in (True, False):
        got = capture_layers(net, x, ["0", "1"], TopologyConfig(overlap=overlap, batch_size=2))
        assert got.problems == {"1": "NaN or Inf in its activations"}
        assert set(got.values) == {"0"}


def test_start_evaluation_equals_evaluate_topology() -> None:
    net = _inplace_net()
    x, y = torch.randn(30, 1, 9, 9), torch.arange(30) % 3
    cfg = TopologyConfig(batch_size=7)
    pending = start_evaluation(net, x, y, ["0", "2"], cfg)
    a = pending.result()
    b = evaluate_topology(net, x, y, ["0", "2"], cfg.replace(overlap=False))
    for la, lb in zip(a.layers, b.layers, strict=True):
        assert la.name == lb.name and torch.equal(la.betti, lb.betti) and torch.equal(la.per_input, lb.per_input)
        assert la.omega == lb.omega


def test_a_forward_error_raises_at_start_in_one_process() -> None:
    def broken(model: nn.Module, inputs: torch.Tensor) -> None:
        raise RuntimeError("forward_fn broke")

    with pytest.raises(ForwardError, match="raised RuntimeError: forward_fn broke") as err:
        start_evaluation(
            _inplace_net(), torch.randn(4, 1, 9, 9), torch.zeros(4), ["0"], TopologyConfig(forward_fn=broken)
        )
    assert isinstance(err.value.__cause__, RuntimeError)


def test_callback_overlap_logs_the_numbers_of_the_synchronous_path(tmp_path: Path) -> None:
    # Two callbacks on one fit (so one training trajectory): one overlaps Lightning's validation loop, one computes
    # at the end of validation. The layer lists differ only in order, so their state keys differ and their
    # numbers must not.
    seed_everything(0, workers=True)
    overlapped = TopologyCallback(layers=["net.1", "net.4"], charts=False)
    synchronous = TopologyCallback(layers=["net.4", "net.1"], charts=False, overlap=False, prefix="sync")
    trainer = quiet_trainer(tmp_path, [overlapped, synchronous], max_epochs=2, limit_train_batches=3)
    trainer.fit(Classifier(digits_cnn(channels=(8, 8))), datamodule=DigitsDataModule(batch_size=64))
    assert len(overlapped.history) == len(synchronous.history) == 2
    assert overlapped.history == synchronous.history
    for a, b in zip(overlapped.last_result.layers, synchronous.last_result.layers, strict=True):
        assert a.name == b.name and torch.equal(a.per_input, b.per_input)
    assert overlapped._pending is None  # read at the end of validation, nothing left running
    logged = trainer.callback_metrics
    assert float(logged["topology/net.1/omega"]) == pytest.approx(overlapped.history[-1]["layers"]["net.1"]["omega"])
    assert float(logged["sync/net.1/omega"]) == float(logged["topology/net.1/omega"])


def test_background_kernels_follow_the_thread_count_set_later_on_the_calling_thread() -> None:
    # torch's thread count as another thread sees it is the one that held when that thread first ran torch; the
    # background job must run the kernels on the count of the thread that captured, read when it captured.
    from lightning_topo.capture.reduce import _background, _Reducer
    from lightning_topo.functional import _threads

    before = torch.get_num_threads()
    _background().submit(torch.get_num_threads).result()  # the background thread has run torch now
    reducer = _Reducer(TopologyConfig(), torch.device("cpu"), overlap=True)
    seen: list[int] = []

    def record(volumes: torch.Tensor, thresholds: object) -> tuple[torch.Tensor, None]:
        seen.append(_threads.cpu_workers())  # what the kernels would split the batch over
        return torch.zeros(len(volumes), 3, dtype=torch.long), None

    reducer._reduce = record  # type: ignore[method-assign]
    try:
        for count in (1, 2, 1):
            torch.set_num_threads(count)
            job = reducer._submit(torch.rand(2, 3, 4, 4), 0.5)
            reducer.release()
            reducer.resolve("x", job)
    finally:
        torch.set_num_threads(before)
    assert seen == [1, 2, 1]


def _one_then_the_rest(model: nn.Module, batch: torch.Tensor) -> None:
    model(batch[:1])  # each call of the model is a forward pass of its own: the hooks see 1, then 4 inputs
    model(batch[1:])


@pytest.mark.parametrize("budget", [1, 3000, 40_000])
def test_overlap_budget_keeps_values_and_diagram_order(monkeypatch: pytest.MonkeyPatch, budget: int) -> None:
    # An input of layer "0" is 4 * 9 * 9 * 4 = 1296 bytes, of layer "2" 1944. Budget 1: every part is computed in
    # its hook; 3000: the 1-input part goes to the background thread and the 4-input part after it is computed in
    # the hook, so values and diagrams must still come out in capture order; 40_000: several parts wait, and the
    # hook waits for the oldest.
    from lightning_topo.capture import reduce as reduce_module

    monkeypatch.setattr(reduce_module, "OVERLAP_BYTES", budget)
    net = _inplace_net()
    x = torch.randn(25, 1, 9, 9, generator=torch.Generator().manual_seed(3))
    cfg = TopologyConfig(batch_size=5, persistence=("total_persistence",), forward_fn=_one_then_the_rest)
    inside = capture_layers(net, x, ["0", "2"], cfg.replace(overlap=False))
    overlapped = capture_layers(net, x, ["0", "2"], cfg)
    for name in ("0", "2"):
        assert torch.equal(inside.values[name], overlapped.values[name])
        assert torch.equal(inside.persistence[name], overlapped.persistence[name])
        assert torch.equal(inside.diagrams[name].index, overlapped.diagrams[name].index)
        assert torch.equal(inside.diagrams[name].pairs, overlapped.diagrams[name].pairs)


def test_callback_measures_the_model_validation_sees_under_weight_averaging(tmp_path: Path) -> None:
    # Lightning's WeightAveraging swaps the averaged weights in at the start of each validation epoch and out at
    # its end (listed first, before the topology callback's end-of-validation hook). The evaluation starts at the
    # first validation batch, so it measures the averaged model, the one validation measures; after the fit the
    # module holds the final average, which the last validation used. (With overlap=False the forward pass runs at
    # the end of validation, after the swap back: that measures the raw weights, and this test fails.)
    from lightning.pytorch.callbacks import WeightAveraging

    from lightning_topo.analysis import evaluate_topology

    seed_everything(0, workers=True)
    topology = TopologyCallback(layers=["net.1", "net.4"], charts=False)
    trainer = quiet_trainer(tmp_path, [WeightAveraging(), topology], max_epochs=2, limit_train_batches=4)
    model = Classifier(digits_cnn(channels=(8, 8)))
    trainer.fit(model, datamodule=DigitsDataModule(batch_size=32))
    sample = topology.sample
    again = evaluate_topology(model, sample.inputs, sample.labels, topology.layer_names, topology.config)
    for a, b in zip(topology.last_result.layers, again.layers, strict=True):
        assert torch.equal(a.per_input, b.per_input)
