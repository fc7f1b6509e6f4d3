"""Layer selection, the fixed sample and the one-pass capture."""

from __future__ import annotations

import pytest
import torch
from models import densenet, resnet18, resnet50, vgg
from torch import nn
from torch.utils.data import DataLoader, IterableDataset, TensorDataset

from lightning_topo.capture import (
    ActivationCapture,
    ForwardError,
    SampleError,
    TokenLayout,
    UnknownLayerError,
    run_on_sample,
)
from lightning_topo.capture.layers import resolve_layers
from lightning_topo.capture.sampling import build_sample, shard
from lightning_topo.models import Classifier, digits_cnn, mlp


def test_resnet_auto_layers_follow_the_paper() -> None:
    names18 = resolve_layers(resnet18())
    assert names18 == ["conv1", "bn1", "relu"] + [f"layer{i}.{j}" for i in range(1, 5) for j in range(2)]
    assert len(names18) == 11
    names50 = resolve_layers(resnet50())
    assert len(names50) == 19 and names50[3:6] == ["layer1.0", "layer1.1", "layer1.2"] and names50[-1] == "layer4.2"


def test_other_families() -> None:
    assert resolve_layers(vgg()) == ["features.1", "features.4"]
    assert resolve_layers(densenet()) == ["features.denseblock1", "features.transition1", "features.denseblock2"]
    assert resolve_layers(Classifier(mlp(depth=3))) == ["net.2", "net.4", "net.6"]
    # Every top-level child but the Flatten (net.7), which would repeat the pooled layer's numbers.
    assert resolve_layers(Classifier(digits_cnn())) == [f"net.{i}" for i in (0, 1, 2, 3, 4, 5, 6, 8)]
    assert resolve_layers(resnet50(), max_layers=5) == ["conv1", "layer1.1", "layer2.3", "layer3.4", "layer4.2"]


def test_mobilenet_and_efficientnet_layouts_watch_their_blocks() -> None:
    """torchvision's MobileNetV3 blocks hold a Sequential of conv-norm-acts (a list of blocks of one class), which
    was taken for the network's block list: the layers inside each block were watched (features.1.block.0 ...),
    the blocks with squeeze-excitation and the last conv not at all. EfficientNet's stages of one block (its first
    and last) and its last conv were left out (auto stopped at features.6.3)."""
    from models import efficientnet, mobilenet_v2, mobilenet_v3

    v3 = mobilenet_v3()
    assert resolve_layers(v3) == [f"features.{i}" for i in range(len(v3.features))]
    v2 = mobilenet_v2()
    assert resolve_layers(v2) == [f"features.{i}" for i in range(len(v2.features))]  # the classifier is not a block
    stages = [f"features.{i}.{j}" for i, n in zip(range(2, 7), (2, 2, 3, 3, 4), strict=True) for j in range(n)]
    assert resolve_layers(efficientnet(), max_layers=30) == [
        "features.0",
        "features.1",
        *stages,
        "features.7",
        "features.8",
    ]
    # Every watched layer runs and gives a conv map.
    for net in (v3, v2, efficientnet()):
        net.eval()
        names = resolve_layers(net, max_layers=30)
        with ActivationCapture(net, names, lambda name, t: t.ndim) as capture:
            run_on_sample(net, torch.randn(2, 3, 32, 32), batch_size=2)
        assert all(capture.results[n] == [4] for n in names), capture.results


def test_names_globs_predicates_and_wrappers() -> None:
    net = resnet18()
    globbed = resolve_layers(net, ["layer2.**"])  # `**` crosses dots
    assert globbed == [n for n, _ in net.named_modules() if n.startswith("layer2.")]  # depth order
    assert {"layer2.0", "layer2.1", "layer2.0.conv1"} <= set(globbed)
    assert resolve_layers(net, ["layer2.*"]) == ["layer2.0", "layer2.1"]  # `*` stays within one dotted part
    assert resolve_layers(net, ["layer?.0.conv[12]"])[:2] == ["layer1.0.conv1", "layer1.0.conv2"]
    assert resolve_layers(net, ["fc", "conv1"]) == ["fc", "conv1"]
    assert resolve_layers(net, lambda n, m: isinstance(m, nn.Linear)) == ["fc"]
    wrapper = nn.Module()
    wrapper.module = net  # the DDP layout
    assert resolve_layers(wrapper, ["layer1.0"]) == ["layer1.0"]
    compiled = torch.compile(net)
    assert resolve_layers(compiled) == resolve_layers(net)


def test_unknown_name_lists_close_matches() -> None:
    with pytest.raises(UnknownLayerError, match=r"'layer1\.5'.*Close matches: \[.*'layer1\.1'") as err:
        resolve_layers(resnet18(), ["layer1.5"])
    assert "'layer1.0'" in str(err.value) and "named_modules()" in str(err.value)
    with pytest.raises(UnknownLayerError, match="does not match"):
        resolve_layers(resnet18(), ["nothing*"])
    # Several bad names: all of them in one error, each with its close matches.
    with pytest.raises(UnknownLayerError, match=r"2 `layers` entries match no module: \['layer1\.5', 'fcc'\]") as err:
        resolve_layers(resnet18(), ["layer1.5", "conv1", "fcc"])
    assert "'layer1.1'" in str(err.value) and "Layer 'fcc' does not match" in str(err.value)


def _dataset(n: int = 90, classes: int = 3) -> TensorDataset:
    return TensorDataset(torch.arange(n, dtype=torch.float32)[:, None], torch.arange(n) % classes)


def test_sample_is_fixed_stratified_and_bounded() -> None:
    ds = _dataset()
    a = build_sample(DataLoader(ds, batch_size=7, shuffle=True), samples_per_class=5, max_samples=100, seed=3)
    b = build_sample(DataLoader(ds, batch_size=30), samples_per_class=5, max_samples=100, seed=3)
    assert torch.equal(a.indices, b.indices) and torch.equal(a.inputs, b.inputs)
    assert a.counts_per_class() == {0: 5, 1: 5, 2: 5}
    assert torch.equal(a.inputs[:, 0].long(), a.indices)  # the inputs are the items at those indices
    assert torch.equal(a.labels, a.indices % 3)
    capped = build_sample(ds, samples_per_class=20, max_samples=10, seed=0)
    assert len(capped.labels) == 10 and set(capped.counts_per_class().values()) <= {3, 4}
    assert not torch.equal(build_sample(ds, samples_per_class=5, max_samples=100, seed=4).indices, a.indices)


def test_a_loader_whose_sampler_picks_a_split_is_sampled_from_that_split() -> None:
    """A validation split made by the loader's sampler (one dataset, `SubsetRandomSampler(val_idx)`) was ignored:
    the sample was drawn from the whole dataset, mostly training inputs, without a word."""
    from torch.utils.data import BatchSampler, SequentialSampler, Subset, SubsetRandomSampler

    x, y = torch.randn(300, 4), torch.arange(300) % 3
    full = TensorDataset(x, y)
    split = list(range(200, 300))
    expected = build_sample(Subset(full, split), samples_per_class=5, max_samples=15, seed=1)
    from lightning.fabric.utilities.distributed import DistributedSamplerWrapper

    for loader in (
        DataLoader(full, batch_size=16, sampler=SubsetRandomSampler(split)),
        # under DDP, Lightning wraps the user's sampler so (each rank: the same sample, then its share)
        DataLoader(full, batch_size=16, sampler=DistributedSamplerWrapper(SubsetRandomSampler(split), 2, rank=1)),
        DataLoader(full, batch_size=16, sampler=split),  # a list of indices is a sampler too
        DataLoader(full, batch_sampler=BatchSampler(split, batch_size=8, drop_last=False)),
    ):
        sample = build_sample(loader, samples_per_class=5, max_samples=15, seed=1)
        assert sample.indices.tolist() == [200 + i for i in expected.indices.tolist()]
        assert torch.equal(sample.inputs, x[sample.indices]) and torch.equal(sample.labels, y[sample.indices])
    said = build_sample(DataLoader(full, sampler=split), samples_per_class=5, max_samples=15).notes
    assert any("drawn from the 100 of 300 dataset items the validation loader's list yielded" in n for n in said)
    # A sampler over every item (the usual validation loader, shuffled or not) leaves the sample as it was.
    whole = build_sample(full, samples_per_class=5, max_samples=15, seed=1)
    for loader in (DataLoader(full, shuffle=True), DataLoader(full, sampler=SequentialSampler(full))):
        sample = build_sample(loader, samples_per_class=5, max_samples=15, seed=1)
        assert torch.equal(sample.indices, whole.indices) and not sample.notes


def test_negative_labels_are_left_out_of_the_sample() -> None:
    """-1 ("ignore", cross_entropy's ignore_index) was a class of its own: a mixture of every class, weighing
    1/(C+1) of every mean."""
    y = torch.arange(60) % 3
    y[::5] = -1
    sample = build_sample(TensorDataset(torch.randn(60, 4), y), samples_per_class=10, max_samples=40)
    assert sample.classes == [0, 1, 2] and bool((sample.labels >= 0).all())
    assert any("12 inputs with a negative label [-1]" in note for note in sample.notes)
    with pytest.raises(SampleError, match=r"every label of the validation data is negative \(\[-100\]\)"):
        build_sample(TensorDataset(torch.randn(6, 4), torch.full((6,), -100)))


def test_tensor_dataset_sample_equals_collated_items() -> None:
    """A TensorDataset's inputs are indexed at once; they equal the collated items (the general path)."""
    ds = TensorDataset(torch.randn(90, 2, 5, 5), torch.arange(90) % 4)
    fast = build_sample(DataLoader(ds, batch_size=8), samples_per_class=7, max_samples=25, seed=1)
    items = build_sample(
        DataLoader(ds, batch_size=8), samples_per_class=7, max_samples=25, seed=1, input_fn=lambda b: b[0]
    )
    assert torch.equal(fast.indices, items.indices) and torch.equal(fast.labels, items.labels)
    assert fast.inputs.dtype == items.inputs.dtype and fast.inputs.stride() == items.inputs.stride()
    assert torch.equal(fast.inputs, items.inputs) and torch.equal(fast.inputs, ds.tensors[0][fast.indices])


def test_small_dataset_notes_and_uses_all() -> None:
    sample = build_sample(_dataset(6), samples_per_class=10, max_samples=100, seed=0)
    assert len(sample.labels) == 6
    assert len(sample.notes) == 1 and "6 inputs instead of 30: the data set has 6 inputs" in sample.notes[0]
    # Enough inputs in all, but some classes short of samples_per_class: the note says so.
    labels = torch.tensor([0] * 10 + [1] * 3 + [2] * 10)
    uneven = build_sample(TensorDataset(torch.randn(23, 2), labels), samples_per_class=5, max_samples=100, seed=0)
    assert len(uneven.labels) == 13
    assert "13 inputs instead of 15: 1 of the 3 classes have fewer than samples_per_class=5" in uneven.notes[0]


def test_dict_items_unlabeled_and_iterable() -> None:
    class Dicts(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return 12

        def __getitem__(self, i: int) -> dict:
            return {"image": torch.full((2,), float(i)), "label": i % 2}

    s = build_sample(Dicts(), samples_per_class=3, max_samples=50, seed=0)
    assert s.counts_per_class() == {0: 3, 1: 3} and s.inputs.shape == (6, 2)
    # Hugging Face's keys: pixel_values (images) or input_ids (text) and labels.
    for key in ("pixel_values", "input_ids"):
        items = [{key: torch.full((2,), float(i)), "labels": i % 2} for i in range(12)]
        hf = build_sample(items, samples_per_class=3, max_samples=50, seed=0)
        assert hf.counts_per_class() == {0: 3, 1: 3} and sorted(hf.inputs[:, 0].tolist()) == sorted(
            float(i) for i in hf.indices.tolist()
        )
    unlabeled = build_sample(TensorDataset(torch.randn(10, 3)), samples_per_class=4, max_samples=50, seed=0)
    assert unlabeled.classes == [0] and len(unlabeled.labels) == 4

    class Stream(IterableDataset):
        def __iter__(self):
            for i in range(40):
                yield torch.tensor([float(i)]), i % 4

    streamed = build_sample(DataLoader(Stream(), batch_size=5), samples_per_class=2, max_samples=100, seed=0)
    assert streamed.counts_per_class() == {0: 2, 1: 2, 2: 2, 3: 2}
    assert (streamed.indices == -1).all()

    # An endless stream whose classes fill up before max_samples: reading stops (it spun forever), with a note.
    class Endless(IterableDataset):
        def __init__(self) -> None:
            self.read = 0

        def __iter__(self):
            while True:
                self.read += 1
                yield torch.tensor([float(self.read)]), self.read % 3

    endless = Endless()
    sample = build_sample(DataLoader(endless, batch_size=8), samples_per_class=20, max_samples=200, seed=0)
    assert sample.counts_per_class() == {0: 20, 1: 20, 2: 20}
    assert endless.read < 60 + 200 + 2 * 8  # the 60 taken, then max_samples of full classes (and one batch ahead)
    assert any("stopped reading the stream after" in note for note in sample.notes)


def test_shards_cover_the_sample_once() -> None:
    s = build_sample(_dataset(), samples_per_class=7, max_samples=100, seed=0)
    parts = [shard(s, r, 4) for r in range(4)]
    assert sorted(torch.cat([p.indices for p in parts]).tolist()) == sorted(s.indices.tolist())


def test_capture_hooks_live_for_one_pass_only() -> None:
    net = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 2))
    net.train()
    stats = net[1].running_mean.clone()
    x = torch.randn(10, 4)
    with ActivationCapture(net, ["1", "2"], lambda name, t: (t.requires_grad, t.shape, t.clone())) as cap:
        run_on_sample(net, x, batch_size=4)
    assert all(len(m._forward_hooks) == 0 for m in net.modules())
    assert [r[1] for r in cap.results["2"]] == [torch.Size([4, 6]), torch.Size([4, 6]), torch.Size([2, 6])]
    assert not any(r[0] for r in cap.results["2"])
    net.eval()
    expected = net[2](net[1](net[0](x)))
    assert torch.allclose(torch.cat([r[2] for r in cap.results["2"]]), expected)
    assert net[1].training is False and torch.equal(net[1].running_mean, stats)  # eval inside: stats untouched
    net.train()

    def boom(model: nn.Module, batch: torch.Tensor) -> None:
        model(batch)
        raise RuntimeError("boom")

    pattern = r"`forward_fn` \(.*boom\) raised RuntimeError: boom"
    with pytest.raises(ForwardError, match=pattern) as err, ActivationCapture(net, ["2"], lambda n, t: None):
        run_on_sample(net, x, batch_size=4, forward_fn=boom)
    assert isinstance(err.value.__cause__, RuntimeError)
    assert all(len(m._forward_hooks) == 0 for m in net.modules())
    assert net.training  # restored after the exception


def test_capture_tuple_dict_and_non_tensor_outputs() -> None:
    class Multi(nn.Module):
        def __init__(self, kind: str) -> None:
            super().__init__()
            self.kind = kind

        def forward(self, x: torch.Tensor) -> object:
            if self.kind == "tuple":
                return (x * 2, x)
            if self.kind == "dict":
                return {"a": "label", "b": x * 3}
            return "not a tensor"

    net = nn.Sequential(Multi("tuple"), nn.Identity())
    parts = {"t": Multi("tuple"), "d": Multi("dict"), "n": Multi("none")}
    holder = nn.ModuleDict(parts)
    x = torch.ones(2, 3)
    with (
        pytest.warns(UserWarning, match="layer 'n' skipped.*output_fn") as record,
        ActivationCapture(holder, ["t", "d", "n"], lambda name, t: t.clone()) as cap,
    ):
        for m in parts.values():
            m(x)
    texts = [str(w.message) for w in record]
    # Several tensors: which one is analysed is said (once per layer); one tensor in a dict says nothing.
    assert [t for t in texts if "tensors" in t] == [
        "layer 't' returns a tuple of 2 tensors ([0]: (B, 3), [1]: (B, 3)); the first, [0], is analysed. Pass "
        "`output_fn=` to pick another."
    ]
    assert list(cap.ran) == ["t", "d", "n"]  # 'n' ran, though its output holds no tensor
    assert torch.equal(cap.results["t"][0], x * 2)
    assert torch.equal(cap.results["d"][0], x * 3)
    assert cap.results["n"] == [] and "output_fn" in cap.skipped["n"]
    with ActivationCapture(net, ["0"], lambda name, t: t.clone(), output_fn=lambda out: out[1]) as cap2:
        net(x)
    assert torch.equal(cap2.results["0"][0], x)


def test_a_target_transform_gives_the_items_classes() -> None:
    """A torchvision-style dataset: `targets` holds the raw labels, items return `target_transform(target)`. The
    sample was stratified over the raw classes (ten digits for an even/odd task), silently."""

    class VisionStyle(torch.utils.data.Dataset):
        def __init__(self, target_transform=None, shift: int = 0) -> None:
            self.data = torch.randn(40, 3)
            self.targets = [i % 10 for i in range(40)]
            self.target_transform, self.shift = target_transform, shift

        def __len__(self) -> int:
            return 40

        def __getitem__(self, i: int):
            y = self.targets[i] + self.shift
            return self.data[i], self.target_transform(y) if self.target_transform else y

    even_odd = build_sample(VisionStyle(lambda y: y % 2), samples_per_class=3, max_samples=100, seed=0)
    assert even_odd.classes == [0, 1] and even_odd.counts_per_class() == {0: 3, 1: 3}
    # The same without the attribute's name: items that disagree with `targets` are read one by one.
    shifted = build_sample(VisionStyle(shift=100), samples_per_class=2, max_samples=100, seed=0)
    assert shifted.classes == list(range(100, 110))
    plain = build_sample(VisionStyle(), samples_per_class=2, max_samples=100, seed=0)
    assert plain.classes == list(range(10))


class _SequenceFirst(nn.Module):
    """Token ids (B, T) -> an embedding (B, T, D) -> nn.LSTM at its default batch_first=False, fed (T, B, D)."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(50, 8)
        self.enc = nn.LSTM(8, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        hidden = self.enc(self.emb(ids).transpose(0, 1))[0]  # (T, B, D)
        return self.head(hidden.mean(0))


def test_sequence_first_layer_is_not_measured_when_its_length_equals_the_sample() -> None:
    """A sequence-first layer's output (T, B, D) with T equal to the sample's size passed the count check at the
    evaluation: its "inputs" were the sequence positions, each a slice across the batch, and its Betti numbers,
    Omega and theta were silently wrong. The ordering pass (two inputs) sees a first axis of T and drops it with a
    note; watched alone, it is an error naming batch_first."""
    from lightning_topo.analysis import analyse

    torch.manual_seed(0)
    n = 12  # the whole data set is the sample: T = n
    data = TensorDataset(torch.randint(0, 50, (n, n)), torch.arange(n) % 3)
    with pytest.warns(UserWarning, match=r"\['enc'\] do not have the inputs on their first axis.*batch_first=True"):
        report = analyse(_SequenceFirst(), data, layers=["emb", "enc", "head"], progress=False)
    assert len(report.labels) == n and report.layers == ["emb", "head"]
    # The saved report says so too, as it says the sample was smaller than asked (it kept neither warning).
    assert [w for w in report.warnings if "['enc'] do not have the inputs on their first axis" in w]
    assert [w for w in report.warnings if "12 inputs instead of 60" in w]
    with pytest.raises(UnknownLayerError, match=r"'enc' 12\).*sequence-first"):
        analyse(_SequenceFirst(), data, layers=["enc"], progress=False)


def test_input_fn_returning_several_tensors_names_the_fix() -> None:
    """`input_fn=lambda b: b` for a model that takes a dict (`model(**batch)`) was refused with "got dict" alone;
    the error now says how to pass several tensors (one stacked tensor, unpacked in `forward_fn`)."""
    from lightning_topo.capture import SampleError

    items = [{"input_ids": torch.arange(4) + i, "attention_mask": torch.ones(4, dtype=torch.long)} for i in range(6)]
    with pytest.raises(SampleError, match=r"got dict: the sample keeps one tensor per input.*forward_fn=lambda m, x"):
        build_sample(items, samples_per_class=2, input_fn=lambda b: b)
    sample = build_sample(
        items, samples_per_class=2, input_fn=lambda b: torch.stack([b["input_ids"], b["attention_mask"]], dim=1)
    )
    assert sample.inputs.shape == (2, 2, 4)


def test_a_head_of_two_values_is_said_to_have_b0_one_by_construction() -> None:
    """A binary (or regression) head's output holds at most 2 values per input: at the mean or median threshold
    exactly one run lies below it, so its Omega is 1 whatever the weights; as the deepest watched layer it made
    ``topology/omega_last`` sit at the Betti floor and TopologyEarlyStopping's floor rule stop a net at chance."""
    from lightning_topo.capture.hooks import flat_volume_note, watched_layers
    from lightning_topo.functional import cubical_betti, sublevel_thresholds

    heads = torch.randn(500, 2, generator=torch.Generator().manual_seed(0))
    for rule in ("mean", "median"):
        assert cubical_betti(heads, sublevel_thresholds(heads, rule))[:, 0].eq(1).all()
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    _, notes = watched_layers(net, torch.randn(2, 3, 8, 8), ["0", "1", "4"], cubical=True)
    flat = dict(notes)["flat"]
    assert "Layers ['4'] hold at most 2 values per input" in flat and "topology/omega_last" in flat
    note = flat_volume_note({"conv": (8, 6, 6), "fc": (10,)}, TokenLayout())
    assert note is not None and "at most 2 values" not in note


def test_a_long_read_of_every_item_s_label_is_said_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """A dataset without a `targets` attribute has every item read for its label, in the main process (minutes for
    a validation set of decoded images), with no word; a `targets` attribute skips the read."""
    import time
    import warnings

    from lightning_topo.capture import sampling

    class Slow(torch.utils.data.Dataset):
        def __init__(self) -> None:
            self.reads = 0

        def __len__(self) -> int:
            return 300

        def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
            self.reads += 1
            time.sleep(0.002)
            return torch.full((4,), float(i)), i % 3

    monkeypatch.setattr(sampling, "SLOW_LABELS_SECONDS", 0.1)  # 300 items x 2 ms: 0.6 s here
    slow = Slow()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sample = build_sample(slow, samples_per_class=5, max_samples=15)
    said = [str(w.message) for w in caught if "one by one" in str(w.message)]
    assert len(said) == 1 and "reading the labels of the 300 validation items of Slow" in said[0], said
    assert "give the dataset a `targets` attribute" in said[0]
    assert slow.reads >= 300 and sample.counts_per_class() == {0: 5, 1: 5, 2: 5}
    labelled = Slow()
    labelled.targets = [i % 3 for i in range(300)]  # type: ignore[attr-defined]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = build_sample(labelled, samples_per_class=5, max_samples=15)
    assert not [w for w in caught if "one by one" in str(w.message)]
    assert labelled.reads < 30 and torch.equal(again.inputs, sample.inputs)


def test_an_output_shared_by_the_batch_is_not_blamed_on_batch_first() -> None:
    """GPT-2's position embeddings (``wpe``) give one (1, T, D) output added to every input: it was left out with a
    note about sequence-first LSTMs and ``batch_first=True``, which the model has nothing to do with."""
    from lightning_topo.capture.hooks import watched_layers

    class Positions(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.table = nn.Embedding(6, 8)

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            return self.table(torch.arange(ids.shape[1])).unsqueeze(0)

    class Tiny(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.wte, self.wpe, self.fc = nn.Embedding(10, 8), Positions(), nn.Linear(8, 8)

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            return self.fc(self.wte(ids) + self.wpe(ids))

    order, notes = watched_layers(Tiny(), torch.randint(0, 10, (3, 6)), ["wte", "wpe", "fc"])
    assert order == ["wte", "fc"]
    note = dict(notes)["not-batch-first"]
    assert "['wpe'] give one output for the whole batch" in note and "batch_first" not in note
    # Chosen by `layers="auto"` (GPT-2's wte, wpe, h.N): left out without a word the user could not act on
    order, notes = watched_layers(Tiny(), torch.randint(0, 10, (3, 6)), ["wte", "wpe", "fc"], auto=True)
    assert order == ["wte", "fc"] and "not-batch-first" not in dict(notes)
