"""torchmetrics classes: equal to the functional core, mergeable like DDP, plottable, validated."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pytest
import torch

from lightning_topo.config import TopologyConfig
from lightning_topo.functional import cubical_betti, normalised_decay, omega, theta
from lightning_topo.metrics import BettiNumbers, DecayRate, TopologicalComplexity


def _data(seed: int, n: int = 12, classes: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.relu(torch.randn(n, 3, 6, 7, generator=gen)), torch.randint(0, classes, (n,), generator=gen)


def _drawn_fraction(fig: Any) -> float:
    """Fraction of pixels that are not (near) white after drawing the figure."""
    fig.canvas.draw()
    pixels = np.asarray(fig.canvas.buffer_rgba())[..., :3]
    return float((pixels < 250).any(axis=-1).mean())


def test_betti_numbers_equal_functional_with_and_without_labels() -> None:
    x, y = _data(0)
    metric = BettiNumbers(num_classes=3, threshold=0.3)
    metric.update(x[:5], y[:5])
    metric.update(x[5:], y[5:])
    betti = cubical_betti(x, 0.3).double()
    expected = torch.stack([betti[y == c].mean(0) for c in range(3)])
    assert metric.compute().shape == (3, 3) and torch.allclose(metric.compute(), expected)
    single = BettiNumbers(threshold=0.3)
    single.update(x)
    assert single.compute().shape == (3,) and torch.allclose(single.compute(), betti.mean(0))
    pre = BettiNumbers(num_classes=3)
    pre.update(betti=cubical_betti(x, 0.3), labels=y)
    assert torch.equal(pre.compute(), metric.compute())


@pytest.mark.parametrize("classes", [1, 3])
def test_topological_complexity_equals_omega(classes: int) -> None:
    x, y = _data(1, n=20, classes=classes)
    metric = TopologicalComplexity(num_classes=classes, threshold=0.2)
    metric.update(x[:9], y[:9] if classes > 1 else None)
    metric.update(x[9:], y[9:] if classes > 1 else None)
    betti = cubical_betti(x, 0.2)
    expected = omega(betti, y) if classes > 1 else omega(betti)
    assert metric.compute().item() == pytest.approx(expected.item(), rel=1e-12)


def test_omega_over_classes_present_only() -> None:
    metric = TopologicalComplexity(num_classes=4)
    betti = torch.tensor([[1, 0, 0], [3, 1, 0], [2, 0, 0]])
    labels = torch.tensor([0, 0, 3])  # classes 1 and 2 never seen
    metric.update(betti=betti, labels=labels)
    assert metric.compute().item() == pytest.approx(omega(betti, labels).item()) == 2.25
    assert math.isnan(TopologicalComplexity().compute().item())


@pytest.mark.parametrize("cls", [BettiNumbers, TopologicalComplexity])
def test_merging_states_equals_one_metric_over_all_data(cls: type) -> None:
    x, y = _data(2, n=20)
    whole = cls(num_classes=3)
    whole.update(x, y)
    rank0, rank1 = cls(num_classes=3), cls(num_classes=3)
    rank0.update(x[:7], y[:7])
    rank1.update(x[7:], y[7:])
    # States summed by hand, as DDP's `all_reduce(SUM)` of `dist_reduce_fx="sum"` states would.
    summed = {name: getattr(rank0, name) + getattr(rank1, name) for name in ("betti_sum", "count")}
    rank0.merge_state(rank1)
    assert torch.equal(rank0.compute(), whole.compute())
    by_hand = cls(num_classes=3)
    by_hand.merge_state(summed)
    assert torch.equal(by_hand.compute(), whole.compute())


def test_decay_rate_both_kinds_equal_functional() -> None:
    layers = [_data(s, n=10) for s in range(4)]
    labels = layers[0][1]
    betti = torch.stack([cubical_betti(x * (4 - i), 0.5) for i, (x, _) in enumerate(layers)])  # (L, B, 3)
    curve = omega(betti, labels)
    for kind, fn, hib in (("theta", theta, False), ("normalised", normalised_decay, True)):
        metric = DecayRate(num_layers=4, num_classes=3, kind=kind)
        assert metric.higher_is_better is hib
        metric.update(betti[:, :6], labels[:6])
        metric.update(betti[:, 6:], labels[6:])
        assert torch.allclose(metric.omega_per_layer(), curve)
        assert metric.compute().item() == pytest.approx(fn(curve).item(), abs=1e-12)
    per_layer = DecayRate(num_layers=4, num_classes=3, threshold=0.5)
    for i, (x, _) in enumerate(layers):
        per_layer.update(volumes=x * (4 - i), labels=labels, layer=i)
    assert per_layer.compute().item() == pytest.approx(normalised_decay(curve).item(), abs=1e-12)
    one_class = DecayRate(num_layers=4)
    for i in range(4):
        one_class.update(betti[i], layer=i)
    assert one_class.compute().item() == pytest.approx(normalised_decay(omega(betti)).item(), abs=1e-12)


def test_decay_rate_merges_like_ddp() -> None:
    gen = torch.Generator().manual_seed(3)
    betti = torch.randint(0, 6, (5, 16, 3), generator=gen)
    labels = torch.randint(0, 2, (16,), generator=gen)
    whole, a, b = (DecayRate(num_layers=5, num_classes=2, kind="theta") for _ in range(3))
    whole.update(betti, labels)
    a.update(betti[:, :5], labels[:5])
    b.update(betti[:, 5:], labels[5:])
    a.merge_state(b)
    assert a.compute().item() == pytest.approx(whole.compute().item(), abs=1e-12)


def test_plots_have_content() -> None:
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    omega_metric, betti_metric = TopologicalComplexity(), BettiNumbers(num_classes=3)
    omegas, bettis = [], []
    for s in range(4):
        x, y = _data(s)
        omega_metric.reset()
        omega_metric.update(x)
        omegas.append(omega_metric.compute())
        betti_metric.reset()
        betti_metric.update(x, y)
        bettis.append(betti_metric.compute())
    decay = DecayRate(num_layers=3)
    decay.update(torch.tensor([[[5, 2, 0]], [[3, 1, 0]], [[1, 0, 0]]]))
    plots = [
        omega_metric.plot(omegas),  # a series over steps
        omega_metric.plot(),  # the current value
        betti_metric.plot(bettis),
        betti_metric.plot(),
        decay.plot(),
    ]
    for fig, ax in plots:
        assert _drawn_fraction(fig) > 0.01 and len(ax.get_lines()) >= 1
        plt.close(fig)
    _, ax = plt.subplots()
    fig, ax2 = BettiNumbers().plot(torch.tensor([2.0, 1.0, 0.0]), ax=ax)
    assert fig is None and ax2 is ax and len(ax.get_lines()) == 3
    plt.close("all")


def test_empty_class_is_nan() -> None:
    metric = BettiNumbers(num_classes=2)
    metric.update(torch.rand(3, 4, 4), torch.zeros(3, dtype=torch.long))
    out = metric.compute()
    assert not out[0].isnan().any() and out[1].isnan().all()


def test_label_errors() -> None:
    metric = BettiNumbers(num_classes=2)
    with pytest.raises(ValueError, match=r"label 5 is out of range for num_classes=2; labels must be .* \[0, 1\]"):
        metric.update(torch.rand(2, 4, 4), torch.tensor([0, 5]))
    with pytest.raises(ValueError, match="label -1 is out of range"):
        metric.update(torch.rand(2, 4, 4), torch.tensor([-1, 0]))
    with pytest.raises(ValueError, match="`labels` are required when num_classes=2"):
        metric.update(torch.rand(2, 4, 4))
    with pytest.raises(ValueError, match=r"label 0\.5 in `labels` is not a whole number"):
        metric.update(torch.rand(2, 4, 4), torch.tensor([0.5, 1.0]))
    with pytest.raises(ValueError, match=r"label nan in `labels` is not a whole number"):
        metric.update(torch.rand(2, 4, 4), torch.tensor([float("nan"), 1.0]))
    with pytest.raises(ValueError, match="3 entries for 2 samples"):
        metric.update(torch.rand(2, 4, 4), torch.tensor([0, 1, 1]))
    with pytest.raises(ValueError, match="label 3 is out of range for num_classes=3"):
        DecayRate(num_layers=2, num_classes=3).update(torch.zeros(2, 2, 3, dtype=torch.long), torch.tensor([0, 3]))
    assert int(metric.count.sum()) == 0  # nothing was added by the failed updates


def test_input_errors() -> None:
    metric = TopologicalComplexity()
    with pytest.raises(ValueError, match="exactly one of `volumes` and `betti=`"):
        metric.update()
    with pytest.raises(ValueError, match=r"shape \(B, 3\)"):
        metric.update(betti=torch.zeros(4, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="integer Betti numbers"):
        metric.update(betti=torch.full((2, 3), 0.5))
    with pytest.raises(ValueError, match="non-negative"):
        metric.update(betti=torch.tensor([[1, -1, 0]]))
    decay = DecayRate(num_layers=3)
    with pytest.raises(ValueError, match=r"shape \(L, B, 3\) = \(3, B, 3\)"):
        decay.update(torch.zeros(2, 4, 3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"`layer` must be an integer in \[0, 2\], got 3"):
        decay.update(torch.zeros(4, 3, dtype=torch.long), layer=3)
    with pytest.raises(ValueError, match="pass `layer=` too"):
        decay.update(volumes=torch.rand(2, 4, 4))
    decay.update(torch.ones(4, 3, dtype=torch.long), layer=0)
    with pytest.raises(ValueError, match=r"layer\(s\) \[1, 2\] of 3 have no samples"):
        decay.compute()


@pytest.mark.parametrize(
    ("factory", "match"),
    [
        (lambda: BettiNumbers(num_classes=0), "`num_classes` must be an integer >= 1, got 0"),
        (lambda: BettiNumbers(num_classes=2.0), "`num_classes` must be an integer >= 1"),
        (lambda: TopologicalComplexity(threshold=math.nan), "`threshold` is NaN"),
        (lambda: TopologicalComplexity(threshold="max"), "`threshold` must be one of"),
        (lambda: DecayRate(num_layers=3, kind="slope"), "`kind` must be one of 'normalised', 'theta', got 'slope'"),
        (lambda: DecayRate(num_layers=1), "`num_layers` must be an integer >= 2"),
        (lambda: DecayRate(num_layers=3, num_classes=0), "`num_classes` must be an integer >= 1"),
    ],
)
def test_constructor_errors(factory: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        factory()


def test_constants() -> None:
    for m in (BettiNumbers(), TopologicalComplexity(), DecayRate(num_layers=2)):
        assert m.is_differentiable is False and m.full_state_update is False
    assert BettiNumbers.higher_is_better is False and TopologicalComplexity.higher_is_better is False
    assert DecayRate(num_layers=2).higher_is_better is True
    assert DecayRate(num_layers=2, kind="theta").higher_is_better is False


def test_metric_classes_equal_the_callback_at_defaults(tmp_path) -> None:
    """Issue 21: BettiNumbers(), TopologicalComplexity() and TopologyCallback() at their defaults give the same
    numbers on the same volumes (the one per-class reduction, and the same default threshold rule)."""
    from lightning.pytorch import Trainer
    from torch.utils.data import DataLoader, TensorDataset

    from lightning_topo import BettiNumbers, TopologicalComplexity, TopologyCallback
    from lightning_topo.capture import ActivationCapture, run_on_sample
    from lightning_topo.datasets import load_digits_tensors
    from lightning_topo.models import Classifier, digits_cnn

    torch.manual_seed(0)
    x, y = load_digits_tensors()
    model = Classifier(digits_cnn())
    topo = TopologyCallback(layers=["net.1"], charts=False)
    trainer = Trainer(callbacks=[topo], logger=False, enable_progress_bar=False, enable_model_summary=False,
                      accelerator="cpu", default_root_dir=tmp_path)  # fmt: skip
    trainer.validate(model, DataLoader(TensorDataset(x[:400], y[:400]), batch_size=64), verbose=False)
    sample = topo.sample
    betti, omega_metric = BettiNumbers(num_classes=10), TopologicalComplexity(num_classes=10)
    with ActivationCapture(
        model, ["net.1"], lambda name, out: (betti.update(out, sample.labels), omega_metric.update(out, sample.labels))
    ):
        run_on_sample(model, sample.inputs, batch_size=len(sample.inputs))
    layer = topo.last_result.layers[0]
    torch.testing.assert_close(betti.compute(), layer.betti, rtol=0, atol=1e-12)
    assert float(omega_metric.compute()) == pytest.approx(layer.omega, abs=1e-12)
    assert float(trainer.callback_metrics["topology/net.1/omega"]) == pytest.approx(layer.omega, rel=1e-6)


def test_layer_problem_reasons_are_metric_states() -> None:
    from lightning_topo.metrics import LayerwiseTopology

    a, b = LayerwiseTopology(["x", "y"], classes=[0]), LayerwiseTopology(["x", "y"], classes=[0])
    a.update("x", torch.tensor([[1, 0, 0]]), torch.tensor([0]))
    b.update("x", problem="NaN or Inf in its activations")
    a.update("y", torch.tensor([[1, 0, 0]]), torch.tensor([0]))
    b.update("y", torch.tensor([[2, 0, 0]]), torch.tensor([0]))
    a.merge_state(b)  # as a DDP sync would combine them
    result = a.compute()
    assert result.layers[0].problem == "NaN or Inf in its activations"  # the other process's reason, not a stub
    assert a.problems == {"x": "NaN or Inf in its activations"}
    a.reset()
    assert a.problems == {}


# ---------------------------------------------------------------------------------------------- a user's audit
def test_a_constant_float64_volume_has_its_one_component_at_the_mean() -> None:
    """The float64 mean of a constant volume can round below its value: the sublevel set was empty (b0 = 0)."""
    from oracles import gudhi_betti

    from lightning_topo.functional import sublevel_thresholds

    value = -1.1860696539864874
    v = torch.full((1, 13, 22, 5), value, dtype=torch.float64)
    t = sublevel_thresholds(v, "mean")
    assert float(t[0]) == value  # kept inside the volume's range
    m = BettiNumbers()
    m.update(v)
    assert m.compute().tolist() == [1.0, 0.0, 0.0] == [float(b) for b in gudhi_betti(v[0].numpy(), [value])[0]]
    # Random constants: never outside the range (99 of 300 were, before).
    gen = torch.Generator().manual_seed(0)
    for c in torch.randn(300, generator=gen, dtype=torch.float64).tolist():
        vol = torch.full((1, 13, 22, 5), c, dtype=torch.float64)
        assert float(sublevel_thresholds(vol, "mean")[0]) == c


def test_metric_collection_keeps_metrics_of_other_settings_apart() -> None:
    """Compute groups: two metrics whose first batch gave equal states were grouped and only one was updated, so
    threshold 0.5 reported threshold 0's value."""
    from torchmetrics import MetricCollection

    col = MetricCollection({"t0": TopologicalComplexity(threshold=0.0), "t05": TopologicalComplexity(threshold=0.5)})
    first, second = torch.tensor([[[-1.0, 1.0, -1.0]]]), torch.tensor([[[0.2, 1.0, 0.2, 1.0, 0.2]]])
    col.update(first)
    col.update(second)
    out = col.compute()
    for name, t in (("t0", 0.0), ("t05", 0.5)):
        expected = (cubical_betti(first, t).sum() + cubical_betti(second, t).sum()) / 2
        assert float(out[name]) == float(expected), name
    same = MetricCollection({"a": TopologicalComplexity(threshold=0.5), "b": TopologicalComplexity(threshold=0.5)})
    same.update(torch.rand(2, 4, 4))
    assert list(same.compute_groups.values()) == [["a", "b"]]  # equal settings still share one


def test_states_stay_exact_and_refuse_other_shapes_on_load() -> None:
    m = BettiNumbers()
    m.set_dtype(torch.float16)  # a b0 of 2049 was 2048 in float16, 70,000 inf
    m.update(betti=torch.tensor([[2049, 0, 0]]))
    assert m.betti_sum.dtype == torch.int64 and m.compute().tolist() == [2049.0, 0.0, 0.0]
    saved = TopologicalComplexity(num_classes=3)
    saved.persistent(True)
    saved.update(betti=torch.ones(3, 3, dtype=torch.long), labels=torch.tensor([0, 1, 2]))
    assert sorted(saved.state_dict()) == ["betti_sum", "count"]  # the settings state is never saved
    with pytest.raises(ValueError, match=r"cannot load state `betti_sum` of shape \(3, 3\) .* of shape \(2, 3\)"):
        TopologicalComplexity(num_classes=2).load_state_dict(saved.state_dict())
    same = TopologicalComplexity(num_classes=3)
    same.load_state_dict(saved.state_dict())
    assert float(same.compute()) == float(saved.compute()) == 3.0


def test_float64_sums_survive_a_cast_of_the_module() -> None:
    """`.to(torch.bfloat16)` (what Lightning's "bf16-true" / "16-true" do to a LightningModule's metrics) cast the
    float64 persistence sums (total persistence 32.8 for 34.07 over 200 batches), and their defaults with them."""
    from lightning_topo.functional import cubical_persistence, total_persistence
    from lightning_topo.metrics import LayerwiseTopology, PersistenceSummaries

    torch.manual_seed(0)
    batches = [torch.relu(torch.randn(8, 2, 6, 6)) * 10 for _ in range(20)]
    metrics = [
        PersistenceSummaries(summaries=["total_persistence"], dims=(0,)).to(dtype) for dtype in (None, torch.bfloat16)
    ]
    metrics.append(PersistenceSummaries(summaries=["total_persistence"], dims=(0,)).half())
    for m in metrics:
        assert m.summary_sum.dtype == torch.float64
        for x in batches:
            m.update(x)
    expected = sum(float(total_persistence(cubical_persistence(x, dims=(0,))).sum()) for x in batches) / 160
    values = [m.compute()["total_persistence_0"] for m in metrics]
    assert all(v.dtype == torch.float64 for v in values)
    assert [float(v) for v in values] == pytest.approx([expected] * 3, rel=1e-12)
    m.reset()
    assert m.summary_sum.dtype == torch.float64 and float(m.summary_sum.abs().sum()) == 0.0
    layerwise = LayerwiseTopology(["x"], classes=[0], config=TopologyConfig(persistence=["entropy"])).to(torch.float16)
    assert layerwise.persistence_sum.dtype == torch.float64


def test_empty_batches_numpy_input_and_grad_activations() -> None:
    for metric in (BettiNumbers(), TopologicalComplexity()):
        metric.update(torch.zeros(0, 4, 4))  # adds nothing (it was a raw RuntimeError)
        metric.update(torch.ones(2, 4, 4))
        assert metric.count.tolist() == [2]
        with pytest.raises(TypeError, match=r"`volumes` must be a torch\.Tensor, got ndarray"):
            metric.update(np.zeros((2, 3, 3)))  # type: ignore[arg-type]
    # forward() runs with grad enabled: the mean threshold of a tensor that requires grad crashed in NumPy, and the
    # numba backend was blamed (and dropped from "auto" for the process).
    x = torch.randn(2, 4, 4, requires_grad=True) * 1
    value = TopologicalComplexity()(x)
    assert float(value) == float(cubical_betti(x.detach(), x.detach().flatten(1).mean(1)).sum(1).double().mean())
    from lightning_topo.functional.components import _BROKEN_AUTO

    assert "numba" not in _BROKEN_AUTO


@pytest.mark.parametrize("dtype", [torch.int8, torch.int16, torch.int32, torch.uint8, torch.uint64])
def test_integer_volumes_and_thresholds_of_every_width(dtype: torch.dtype) -> None:
    """A median threshold of an int8/16/32 or uint8 volume is of that dtype: its check for values beyond 2**53
    wrapped around (every nonzero value "beyond"); uint64 had no `abs`."""
    from oracles import gudhi_betti

    gen = torch.Generator().manual_seed(1)
    v = torch.randint(0, 5, (3, 4, 5, 5), generator=gen).to(dtype)
    m = BettiNumbers(threshold="median")
    m.update(v)
    t = v.to(torch.int64).flatten(1).median(1).values
    expected = np.mean([gudhi_betti(v[i].to(torch.int64).numpy(), [float(t[i])])[0] for i in range(3)], axis=0)
    assert m.compute().tolist() == expected.tolist()
    assert cubical_betti(v.to(torch.float32), t.to(dtype)).tolist() == cubical_betti(v, t).tolist()


def test_labels_that_are_no_tensor_get_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"`labels` must be integer class labels \(B,\), got 'a'"):
        BettiNumbers(num_classes=2).update(torch.rand(2, 3, 3), labels="a")  # type: ignore[arg-type]


def test_omega_refuses_negative_betti_numbers() -> None:
    with pytest.raises(ValueError, match="must hold Betti numbers"):
        omega(torch.tensor([[-1, 0, 0]]))


def test_whole_float_labels_are_classes_everywhere() -> None:
    """One label rule for every entry point: BettiNumbers and omega refused the float labels [0.0, 1.0] that
    LayerwiseTopology and the sampler accepted; whole floats now give the integer labels' values everywhere."""
    from lightning_topo.functional import omega
    from lightning_topo.metrics import LayerwiseTopology

    betti = torch.tensor([[3, 1, 0], [1, 0, 0], [2, 0, 0]])
    ints, floats = torch.tensor([0, 0, 1]), torch.tensor([0.0, 0.0, 1.0])
    assert omega(betti, floats).item() == omega(betti, ints).item() == 2.25
    by_int, by_float = BettiNumbers(num_classes=2), BettiNumbers(num_classes=2)
    by_int.update(betti=betti, labels=ints)
    by_float.update(betti=betti, labels=floats)
    assert by_float.compute().tolist() == by_int.compute().tolist() == [[2.0, 0.5, 0.0], [2.0, 0.0, 0.0]]
    layerwise = LayerwiseTopology(["l"], [0, 1])
    layerwise.update("l", betti, floats)
    assert layerwise.compute().layers[0].betti.tolist() == [[2.0, 0.5, 0.0], [2.0, 0.0, 0.0]]
    for entry in (lambda: omega(betti, floats + 0.5), lambda: by_float.update(betti=betti, labels=floats + 0.5)):
        with pytest.raises(ValueError, match=r"label 0\.5 in `labels` is not a whole number"):
            entry()


def test_betti_numbers_passed_positionally_are_flagged() -> None:
    """`BettiNumbers().update(betti_tensor)` read the (B, 3) Betti numbers as 1-D volumes of 3 voxels and gave a
    silently wrong mean; it now warns with the keyword fix. Float volumes of that shape stay quiet."""
    betti = torch.tensor([[4, 2, 0], [2, 1, 0]])
    metric = BettiNumbers()
    with pytest.warns(UserWarning, match=r"shape \(2, 3\) as `volumes`.*update\(betti=\.\.\., labels=\.\.\.\)"):
        metric.update(betti)
    metric.reset()
    metric.update(betti=betti)
    assert metric.compute().tolist() == [3.0, 1.5, 0.0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        BettiNumbers().update(torch.rand(2, 3))
