"""Padded token inputs: the padded positions of a text sequence are left out of its volume and its token mean.

The mask is the items' ``attention_mask`` (a dict batch). With it, the values do not depend on the length the
sentences are padded to (before, Omega of a tiny BERT went 23 -> 34 -> 57 for pads to 8 / 16 / 32 with identical
logits), and equal those of the sentences cut to their real tokens.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from lightning.pytorch import LightningModule
from models import quiet_trainer
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from lightning_topo import TopologyCallback
from lightning_topo.analysis import analyse
from lightning_topo.capture import SampleError, build_sample
from lightning_topo.capture.tokens import TokenLayout, masked_sequence_volumes, pool_tokens
from lightning_topo.functional import cubical_betti, cubical_persistence, sublevel_thresholds

VOCAB, WIDTH, CLASSES = 40, 8, 3


class TokenWise(nn.Module):
    """A text model whose token outputs do not depend on the other tokens (so padding changes nothing of the real
    positions' values, bit for bit)."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, WIDTH)
        self.block1 = nn.Sequential(nn.Linear(WIDTH, WIDTH), nn.ReLU())
        self.block2 = nn.Sequential(nn.Linear(WIDTH, WIDTH), nn.Tanh())

    def forward(self, ids: Tensor) -> Tensor:
        return self.block2(self.block1(self.embed(ids)))


class Sentences(Dataset):
    """Dict items as Hugging Face datasets give them: ``input_ids``, ``attention_mask``, ``labels``."""

    def __init__(self, sentences: list[Tensor], length: int, left: bool = False) -> None:
        self.items = []
        for i, s in enumerate(sentences):
            ids = torch.zeros(length, dtype=torch.long)
            mask = torch.zeros(length, dtype=torch.long)
            where = slice(length - len(s), length) if left else slice(0, len(s))
            ids[where], mask[where] = s, 1
            self.items.append({"input_ids": ids, "attention_mask": mask, "labels": torch.tensor(i % CLASSES)})

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        return self.items[i]


def sentences(n: int, low: int, high: int, seed: int = 0) -> list[Tensor]:
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(low, high + 1, (n,), generator=gen)
    return [torch.randint(1, VOCAB, (int(k),), generator=gen) for k in lengths]


def _analyse(model: nn.Module, data: Dataset, **kwargs: object):  # type: ignore[no-untyped-def]
    kwargs.setdefault("layers", ["embed", "block1", "block2"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the sample-size note
        return analyse(model, data, progress=False, **kwargs)


@pytest.mark.parametrize("complex_", ["cubical", "rips"])
def test_padding_length_and_side_change_nothing(complex_: str) -> None:
    torch.manual_seed(0)
    model = TokenWise()
    sents = sentences(45, 3, 9)
    kwargs = {"complex": complex_}
    if complex_ == "cubical":
        kwargs["persistence"] = ["total_persistence", "entropy"]
    pads = ((9, False), (20, False), (20, True))
    reports = [_analyse(model, Sentences(sents, length, left), **kwargs) for length, left in pads]
    first = reports[0]
    assert len(first.labels) == 45
    for other in reports[1:]:
        assert torch.equal(other.betti, first.betti)
        assert torch.equal(other.omega, first.omega)
        if complex_ == "cubical":
            assert other.persistence is not None and torch.allclose(other.persistence, first.persistence, rtol=1e-12)
    # ... and they are not the values of the padded volumes (what was measured before)
    assert not torch.equal(first.betti, _unmasked(model, Sentences(sents, 20), complex_).betti)


def _unmasked(model: nn.Module, data: Sentences, complex_: str):  # type: ignore[no-untyped-def]
    ids = torch.stack([item["input_ids"] for item in data.items])
    labels = torch.stack([item["labels"] for item in data.items])
    return _analyse(model, TensorDataset(ids, labels), complex=complex_)


def test_padded_sentences_give_the_values_of_the_cut_ones() -> None:
    """Every sentence of one length L, padded to 12: the values of the unpadded (N, L) sentences, exactly."""
    torch.manual_seed(1)
    model = TokenWise()
    sents = sentences(30, 6, 6)
    padded = _analyse(model, Sentences(sents, 12), persistence=["total_persistence", "persistent_betti"])
    cut = torch.stack(sents)
    labels = torch.arange(len(sents)) % CLASSES
    plain = _analyse(model, TensorDataset(cut, labels), persistence=["total_persistence", "persistent_betti"])
    assert torch.equal(padded.betti, plain.betti) and torch.equal(padded.omega, plain.omega)
    assert padded.per_input is not None and torch.equal(padded.per_input, plain.per_input)
    assert torch.allclose(padded.persistence, plain.persistence, rtol=1e-12)
    rips_padded = _analyse(model, Sentences(sents, 12), complex="rips")
    rips_plain = _analyse(model, TensorDataset(cut, labels), complex="rips")
    assert torch.equal(rips_padded.betti, rips_plain.betti)


def test_masked_volumes_keep_the_cut_volumes_diagrams_and_thresholds() -> None:
    torch.manual_seed(2)
    cut = torch.randn(4, 5, 7)  # (B, D, T) of real tokens
    for left in (False, True):
        padded = torch.randn(4, 5, 11) * 10  # padding values far outside the real ones
        mask = torch.zeros(4, 11, dtype=torch.bool)
        where = slice(4, 11) if left else slice(0, 7)
        padded[:, :, where], mask[:, where] = cut, True
        for rule in ("mean", "median", 0.3, lambda v: v.flatten(1).amax(dim=1) - 1.0):
            filled, thresholds = masked_sequence_volumes(padded, mask, rule)
            expected = sublevel_thresholds(cut, rule)
            if isinstance(expected, Tensor):
                assert torch.equal(torch.as_tensor(thresholds, dtype=torch.float64), expected.double())
            else:
                assert thresholds == expected
            assert torch.equal(cubical_betti(filled, thresholds), cubical_betti(cut, expected))
            assert torch.equal(padded[:, :, where], cut)  # the input is not written to
        diagrams, reference = cubical_persistence(filled), cubical_persistence(cut)
        for b in range(4):
            for dim in (0, 1, 2):
                got = sorted(map(tuple, diagrams.diagram(volume=b, dim=dim).tolist()))
                assert got == sorted(map(tuple, reference.diagram(volume=b, dim=dim).tolist()))


def test_token_mean_leaves_padding_out() -> None:
    layout = TokenLayout("text", widths=frozenset({3}))
    out = torch.tensor([[[1.0, 2.0, 3.0], [3.0, 4.0, 5.0], [100.0, 100.0, 100.0]]])
    assert pool_tokens(out, layout, torch.tensor([[True, True, False]])).tolist() == [[2.0, 3.0, 4.0]]
    assert pool_tokens(out, layout).tolist() != [[2.0, 3.0, 4.0]]
    # A sequence of another length than the mask's (a pooled or cut layer output) is not masked
    assert pool_tokens(out[:, :2], layout, torch.tensor([[True, True, False]])).tolist() == [[2.0, 3.0, 4.0]]


def test_the_sample_keeps_the_mask_and_a_collate_failure_is_named() -> None:
    sents = sentences(12, 2, 5)
    sample = build_sample(Sentences(sents, 6), samples_per_class=3, max_samples=9, seed=0)
    assert sample.token_mask is not None and sample.token_mask.shape == (9, 6)
    lengths = torch.tensor([len(sents[int(i)]) for i in sample.indices])
    assert torch.equal(sample.token_mask.sum(dim=1), lengths)
    # Without padding (every mask 1) there is nothing to leave out
    full = build_sample(Sentences(sentences(12, 6, 6), 6), samples_per_class=3, max_samples=9, seed=0)
    assert full.token_mask is None

    class Ragged(Dataset):
        def __len__(self) -> int:
            return len(sents)

        def __getitem__(self, i: int) -> dict[str, Tensor]:
            return {"input_ids": sents[i], "labels": torch.tensor(i % CLASSES)}

    with pytest.raises(SampleError, match=r"collate_fn cannot batch the 9 sampled items .*padding") as err:
        build_sample(Ragged(), samples_per_class=3, max_samples=9, seed=0)
    assert isinstance(err.value.__cause__, RuntimeError)


class Module(LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = TokenWise()
        self.head = nn.Linear(WIDTH, CLASSES)

    def forward(self, ids: Tensor) -> Tensor:
        return self.head(self.net(ids).mean(dim=1))

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        return nn.functional.cross_entropy(self(batch["input_ids"]), batch["labels"])

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self.log("val_loss", nn.functional.cross_entropy(self(batch["input_ids"]), batch["labels"]))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.0)


def test_callback_values_do_not_depend_on_the_padding(tmp_path) -> None:  # type: ignore[no-untyped-def]
    sents = sentences(30, 3, 8)
    omegas = []
    for length in (8, 16):
        torch.manual_seed(3)
        callback = TopologyCallback(layers=["net.embed", "net.block1", "net.block2"], samples_per_class=10)
        trainer = quiet_trainer(tmp_path / str(length), [callback], max_epochs=1, limit_train_batches=1)
        data = DataLoader(Sentences(sents, length), batch_size=10)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trainer.fit(Module(), data, DataLoader(Sentences(sents, length), batch_size=10))
        omegas.append([layer["omega"] for layer in callback.history[-1]["layers"].values()])
    assert omegas[0] == omegas[1]


def test_tiny_bert_with_its_mask_does_not_depend_on_the_pad_length() -> None:
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=VOCAB, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=40, num_labels=CLASSES, pad_token_id=0,
    )  # fmt: skip
    bert = transformers.BertForSequenceClassification(config).eval()
    sents = sentences(45, 3, 10)
    omegas = []
    for length in (10, 32):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            report = analyse(
                bert,
                Sentences(sents, length),
                progress=False,
                input_fn=lambda b: torch.stack([b["input_ids"], b["attention_mask"]], dim=1),
                forward_fn=lambda m, x: m(input_ids=x[:, 0], attention_mask=x[:, 1]),
            )
        omegas.append(report.omega)
    # Attention over 10 or 32 keys rounds differently: a voxel at its volume's mean may flip (1/15 of a class mean);
    # the padded volumes gave Omega 50 % higher at 32 than at 10.
    assert len(omegas[0]) >= 3 and torch.allclose(omegas[0], omegas[1], atol=0.2)


def test_a_forward_fn_error_quoting_the_model_is_cut() -> None:
    """``forward_fn=lambda m, b: m(**b)`` (the Hugging Face idiom) on the sample's tensor: Python's TypeError quotes
    the model's whole repr; the message quotes its start and says the rest is chained."""
    from lightning_topo.capture import ForwardError

    big = nn.Sequential(*[nn.Linear(WIDTH, WIDTH) for _ in range(60)])
    data = TensorDataset(torch.rand(9, WIDTH), torch.arange(9) % CLASSES)
    with pytest.raises(ForwardError, match=r"(?s)forward_fn.*characters cut.*must be a mapping") as err:
        analyse(big, data, forward_fn=lambda m, b: m(**b), progress=False)
    assert len(str(err.value.__cause__)) > 3000
    assert len(str(err.value)) < 1200 and "the whole error is chained below" in str(err.value)


def test_flat_note_calls_token_sequences_so() -> None:
    from lightning_topo.capture.hooks import flat_volume_note

    text = TokenLayout("text", widths=frozenset({8}))
    note = flat_volume_note({"enc": (6, 8), "map": (1, 5, 5)}, text)
    assert note is not None and "['enc'] are token sequences, 2-D volumes (D, T)" in note
    assert "['map'] are images" in note


class Stream(torch.utils.data.IterableDataset):
    def __init__(self, data: Sentences) -> None:
        self.data = data

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.data.items)


def test_a_stream_of_padded_sentences_keeps_its_mask() -> None:
    torch.manual_seed(4)
    model = TokenWise()
    sents = sentences(30, 3, 8)
    reports = [_analyse(model, DataLoader(Stream(Sentences(sents, n)), batch_size=8)) for n in (8, 16)]
    assert torch.equal(reports[0].betti, reports[1].betti) and torch.equal(reports[0].omega, reports[1].omega)
    sample = build_sample(
        DataLoader(Stream(Sentences(sents, 16)), batch_size=8), samples_per_class=None, max_samples=12, seed=0
    )
    assert sample.token_mask is not None and sample.token_mask.shape == (12, 16)
    lengths = torch.tensor([len(s) for s in sents])
    assert sorted(sample.token_mask.sum(dim=1).tolist()) != [16] * 12
    assert set(sample.token_mask.sum(dim=1).tolist()) <= set(lengths.tolist())

    def ragged(items):  # type: ignore[no-untyped-def]  # dynamic padding: each batch to its own longest
        longest = max(int(item["attention_mask"].sum()) for item in items)
        return {key: torch.stack([item[key][:longest] if key != "labels" else item[key] for item in items])
                for key in items[0]}  # fmt: skip

    with pytest.raises(SampleError, match=r"inputs of different shapes .*padding='max_length'"):
        build_sample(
            DataLoader(Stream(Sentences(sents, 16)), batch_size=4, collate_fn=ragged),
            samples_per_class=None,
            max_samples=12,
            seed=0,
        )


class Wide(nn.Module):
    """Token outputs of a width no embedding has (an FFN's 3 D), then NaN at the padding id's embedding."""

    def __init__(self, nan_pad: bool = False) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, WIDTH)
        if nan_pad:
            with torch.no_grad():
                self.embed.weight[0] = float("nan")  # what a model may do at positions it never attends to
        self.ffn = nn.Sequential(nn.Linear(WIDTH, 3 * WIDTH), nn.ReLU())
        self.out = nn.Linear(3 * WIDTH, WIDTH)

    def forward(self, ids: Tensor) -> Tensor:
        return self.out(self.ffn(self.embed(ids)))


@pytest.mark.parametrize("complex_", ["cubical", "rips"])
def test_outputs_of_other_widths_and_nan_at_padding(complex_: str) -> None:
    """A (B, T, 3 D) output is a token sequence of the inputs' length: its padding is left out too (it stayed in);
    NaN at padded positions only does not drop the layer (it did on the point-cloud view)."""
    sents = sentences(30, 3, 7)
    torch.manual_seed(5)
    model = Wide()
    layers = ["embed", "ffn", "out"]
    reports = [_analyse(model, Sentences(sents, n), complex=complex_, layers=layers) for n in (7, 15)]
    assert not reports[0].problems and torch.equal(reports[0].betti, reports[1].betti)
    torch.manual_seed(5)
    nan_model = Wide(nan_pad=True)
    nan_report = _analyse(nan_model, Sentences(sents, 15), complex=complex_, layers=layers)
    assert not nan_report.problems and torch.equal(nan_report.betti, reports[0].betti)


def test_mixed_batches_with_a_callable_threshold_and_an_integer_mask() -> None:
    """Buffered batches, one padded and one not, under a `threshold` callable returning one number (it crashed:
    the padded batch's thresholds were taken for all); a 0/1 integer `token_mask` reads as the boolean one."""
    from lightning_topo.analysis.evaluate import evaluate_topology
    from lightning_topo.config import TopologyConfig

    torch.manual_seed(6)
    model = TokenWise()
    ids = torch.randint(1, VOCAB, (8, 6))
    mask = torch.ones(8, 6, dtype=torch.long)
    mask[:4, 4:] = 0  # the first batch of 4 padded, the second not
    labels = torch.arange(8) % 2
    layers = ["embed", "block1", "block2"]

    def run(threshold: object, token_mask: Tensor) -> Tensor:
        config = TopologyConfig(threshold=threshold, batch_size=4, layers=layers)
        result = evaluate_topology(model, ids, labels, layers, config, token_mask=token_mask, sync=False)
        return torch.stack([layer.per_input for layer in result.layers])

    by_number = run(0.1, mask.bool())
    assert torch.equal(run(lambda v: 0.1, mask.bool()), by_number)
    assert torch.equal(run(0.1, mask), by_number)  # 0/1 integers
    cut = run(0.1, torch.ones(8, 6, dtype=torch.bool))
    assert torch.equal(by_number[:, 4:], cut[:, 4:]) and not torch.equal(by_number[:, :4], cut[:, :4])
    with pytest.raises(ValueError, match=r"`token_mask` must be \(n, T\) for the 8 inputs"):
        run(0.1, mask[:5])
