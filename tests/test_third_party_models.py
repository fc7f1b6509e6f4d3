"""Real third-party models at defaults (issue 20): tiny random-init Hugging Face transformers (ViT, Swin, ConvNeXt,
ResNet, BERT) built from configs (no download), and the PyTorch tutorial CNN.

For each: the layers ``layers="auto"`` watches (the stem and every block or stage), the volume each is read as,
finite Betti numbers and decay rate, a one-epoch ``fit`` with ``TopologyCallback()`` and the same numbers from
``analyse`` on the same sample. Configs are tiny (hidden 16-32, 2-4 blocks, 32x32 images) so the file runs in
seconds.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
from lightning.pytorch import LightningModule, Trainer
from models import TutorialCNN
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_topo import TopologyCallback
from lightning_topo.analysis import analyse
from lightning_topo.analysis.analyse import sample_from
from lightning_topo.capture import (
    ActivationCapture,
    auto_layer_note,
    cubical_volumes,
    first_tensor,
    resolve_layers,
    run_on_sample,
    token_layout,
)
from lightning_topo.config import TopologyConfig
from lightning_topo.functional import cubical_betti, sublevel_thresholds

transformers = pytest.importorskip("transformers")

CLASSES = 3
VAL_PER_CLASS = 20  # the cubical view's default sample: 20 per class


def vit() -> nn.Module:
    config = transformers.ViTConfig(
        image_size=32, patch_size=4, hidden_size=32, num_hidden_layers=3, num_attention_heads=2,
        intermediate_size=64, num_labels=CLASSES,
    )  # fmt: skip
    return transformers.ViTForImageClassification(config)


def swin() -> nn.Module:
    # At 32x32 with patch 2 the last stage is 4x4 and Swin needs window_size=2 (a 4-window fails at run time).
    config = transformers.SwinConfig(
        image_size=32, patch_size=2, embed_dim=16, depths=[1, 1, 1], num_heads=[1, 2, 4], window_size=2,
        num_labels=CLASSES,
    )  # fmt: skip
    return transformers.SwinForImageClassification(config)


def convnext() -> nn.Module:
    config = transformers.ConvNextConfig(hidden_sizes=[8, 16, 32, 32], depths=[1, 1, 1, 1], num_labels=CLASSES)
    return transformers.ConvNextForImageClassification(config)


def hf_resnet() -> nn.Module:
    config = transformers.ResNetConfig(
        embedding_size=8, hidden_sizes=[8, 16, 32, 32], depths=[1, 1, 1, 1], num_labels=CLASSES
    )
    return transformers.ResNetForImageClassification(config)


def bert() -> nn.Module:
    config = transformers.BertConfig(
        vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=32, num_labels=CLASSES,
    )  # fmt: skip
    return transformers.BertForSequenceClassification(config)


class Wrapped(LightningModule):
    """A LightningModule around a classifier; ``forward`` returns the logits (of an HF output or a tensor)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        out = self.model(x)
        return out if isinstance(out, Tensor) else out.logits

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", nn.functional.cross_entropy(self(x), y))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def images(n_per_class: int, seed: int) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n_per_class * CLASSES) % CLASSES
    x = torch.randn(len(y), 3, 32, 32, generator=g) + y[:, None, None, None].float()
    return TensorDataset(x, y)


def tokens(n_per_class: int, seed: int) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n_per_class * CLASSES) % CLASSES
    return TensorDataset(torch.randint(0, 50, (len(y), 16), generator=g), y)


@dataclass
class Case:
    build: Callable[[], nn.Module]
    data: Callable[[int, int], TensorDataset]
    layers: list[str]  # what "auto" watches (without the wrapper's "model." prefix)
    volumes: list[tuple[int, ...]]  # the volume each is read as, per input


CASES = {
    # ViT: the embeddings and every ViTLayer; (B, 1 + 8*8, 32) tokens read as (32, 8, 8), CLS dropped.
    "vit": Case(vit, images, ["vit.embeddings", "vit.layers.0", "vit.layers.1", "vit.layers.2"], [(32, 8, 8)] * 4),
    # Swin: the embeddings and every stage (a tuple: tokens (B, h*w, C) after patch merging, then None).
    "swin": Case(
        swin,
        images,
        ["swin.embeddings", "swin.encoder.layers.0", "swin.encoder.layers.1", "swin.encoder.layers.2"],
        [(16, 16, 16), (32, 8, 8), (64, 4, 4), (64, 4, 4)],
    ),
    # ConvNeXt and HF ResNet: the stem and every stage, conv maps read as they are.
    "convnext": Case(
        convnext,
        images,
        ["convnext.embeddings"] + [f"convnext.encoder.stages.{i}" for i in range(4)],
        [(8, 8, 8), (8, 8, 8), (16, 4, 4), (32, 2, 2), (32, 1, 1)],
    ),
    "resnet": Case(
        hf_resnet,
        images,
        ["resnet.embedder"] + [f"resnet.encoder.stages.{i}" for i in range(4)],
        [(8, 8, 8), (8, 8, 8), (16, 4, 4), (32, 2, 2), (32, 1, 1)],
    ),
    # BERT: 16 tokens are not a 4x4 image (no patch embedding): each sequence is the 2-D volume (D, T).
    "bert": Case(bert, tokens, ["bert.embeddings", "bert.encoder.layer.0", "bert.encoder.layer.1"], [(32, 16)] * 3),
}


def _read_volumes(model: nn.Module, x: Tensor, names: list[str]) -> dict[str, tuple[int, ...]]:
    """The per-input volume shape each watched layer is read as (what the reducer computes Betti numbers of)."""
    layout = token_layout(model, x)
    shapes: dict[str, tuple[int, ...]] = {}
    with ActivationCapture(model, names, lambda n, t: shapes.setdefault(n, tuple(cubical_volumes(t, layout).shape))):
        run_on_sample(model, x)  # eval mode, training flags restored
    return {n: s[1:] for n, s in shapes.items()}


def _trainer(tmp_path, callback: TopologyCallback) -> Trainer:  # type: ignore[no-untyped-def]
    return Trainer(
        max_epochs=1, callbacks=[callback], logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, default_root_dir=tmp_path,
    )  # fmt: skip


@pytest.mark.parametrize("name", list(CASES))
def test_auto_layers_volumes_fit_and_analyse_agree(name: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    case = CASES[name]
    torch.manual_seed(0)
    module = Wrapped(case.build())
    expected = [f"model.{n}" for n in case.layers]
    assert resolve_layers(module) == expected
    assert auto_layer_note(module, expected) is None

    train, val = case.data(4, 1), case.data(VAL_PER_CLASS, 2)
    assert _read_volumes(module, val.tensors[0][:2], expected) == dict(zip(expected, case.volumes, strict=True))

    callback = TopologyCallback(charts=False)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        _trainer(tmp_path, callback).fit(module, DataLoader(train, batch_size=6), DataLoader(val, batch_size=16))
    result = callback.last_result
    assert result is not None and callback.layer_names == expected
    assert not result.warnings, result.warnings
    for layer in result.layers:
        assert layer.problem is None and bool(torch.isfinite(layer.betti).all()), layer
    assert math.isfinite(result.decay_rate) and math.isfinite(result.theta)

    report = analyse(module, val, progress=False)
    assert report.layers == expected
    assert torch.equal(report.betti, torch.stack([layer.betti.to(torch.float64) for layer in result.layers]))
    assert report.decay_rate == result.decay_rate and report.theta == result.theta


def test_vit_block_betti_numbers_are_those_of_its_patch_tokens_as_a_volume() -> None:
    """Acceptance: per input, a ViT block's Betti numbers are ``cubical_betti`` of its patch tokens reshaped to
    ``(D, h, w)`` (CLS dropped) at that volume's mean."""
    torch.manual_seed(0)
    model = vit()
    data = images(VAL_PER_CLASS, 3)
    report = analyse(model, data, progress=False)
    assert report.per_input is not None
    sample = sample_from(data, TopologyConfig())
    raw: list[Tensor] = []
    with ActivationCapture(model, ["vit.layers.1"], lambda n, t: raw.append(t.clone())):
        run_on_sample(model, sample.inputs, batch_size=len(sample.inputs))
    tokens_ = raw[0]
    assert tokens_.shape == (len(sample.labels), 1 + 8 * 8, 32)
    volumes = tokens_[:, 1:].transpose(1, 2).reshape(-1, 32, 8, 8)  # token i = row i // 8, column i % 8
    thresholds = volumes.flatten(1).to(torch.float64).mean(dim=1)  # each volume's mean
    assert torch.allclose(sublevel_thresholds(volumes, "mean").to(torch.float64), thresholds)
    expected = cubical_betti(volumes, thresholds)
    i = report.layers.index("vit.layers.1")
    assert torch.equal(report.per_input[i], expected.to(torch.float64))
    assert int(expected.sum(dim=1).min()) > 0  # a real volume, not an empty sublevel set


def test_hf_model_output_and_swin_tuples_give_the_hidden_state() -> None:
    """A watched layer returning an HF ModelOutput (an OrderedDict: last_hidden_state first) or Swin's stage
    tuple (tokens, ..., None) is read through its hidden state."""
    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32)
    assert _read_volumes(vit(), x, ["vit"]) == {"vit": (32, 8, 8)}  # BaseModelOutputWithPooling
    model = swin()
    outputs: list[object] = []
    stages = ["swin.encoder.layers.0", "swin.encoder.layers.1", "swin.encoder.layers.2"]
    with (
        pytest.warns(UserWarning, match="several tensors") as record,
        ActivationCapture(model, stages, lambda n, t: outputs.append(t.shape)),
    ):
        run_on_sample(model, x)
    assert outputs[0] == torch.Size([2, 64, 32])  # the first tensor of the stage's tuple: 8x8 tokens of width 32
    # One warning for the three stages (it was one per stage), naming each
    said = [str(w.message) for w in record if "tensors" in str(w.message)]
    assert len(said) == 1 and said[0].startswith("3 layers return several tensors, and the first of each is analysed")
    assert all(f"'{name}' a tuple of 2 tensors ([0]: (B, " in said[0] for name in stages)
    assert first_tensor(({"a": torch.zeros(1)}, None)).shape == (1,)


def test_sequences_without_a_patch_embedding_are_never_grids() -> None:
    """16 tokens of an MLP on sequences or of BERT are not a 4x4 image: without a patchify Conv2d or an
    image_size / patch_size config, a (B, T, D) output is a sequence."""
    mlp_seq = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 3))
    x = torch.randn(2, 16, 8)
    assert token_layout(mlp_seq, x).kind is None
    assert _read_volumes(mlp_seq, x, ["1", "3"]) == {"1": (16, 32), "3": (16, 32)}  # as any 3-D output
    assert token_layout(bert(), torch.zeros(2, 16, dtype=torch.long)).kind == "text"


def test_fewer_than_three_layers_get_a_note() -> None:
    class Two(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Conv2d(1, 4, 3)
            self.head = nn.Linear(4, 2)

    names = resolve_layers(Two())
    assert names == ["body", "head"]
    note = auto_layer_note(Two(), names)
    assert note is not None and "2 watched layers" in note and "no list of repeated blocks" in note
    assert "layers=[...]" in note and "named_modules()" in note


# Remove the marker once capture/hooks.py names each call of a module called twice (`pool`, `pool#2`): the lead's
# change, not merged into this branch when the test was written (it then XPASSes).
def test_pytorch_tutorial_cnn_watches_each_call_of_its_pool(tmp_path) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    module = Wrapped(TutorialCNN(num_classes=CLASSES))
    expected = [f"model.{n}" for n in ("conv1", "pool", "conv2", "pool#2", "fc1", "fc2", "fc3")]
    train, val = images(4, 1), images(VAL_PER_CLASS, 2)
    callback = TopologyCallback(charts=False)
    _trainer(tmp_path, callback).fit(module, DataLoader(train, batch_size=6), DataLoader(val, batch_size=16))
    assert callback.layer_names == expected
    result = callback.last_result
    assert result is not None and math.isfinite(result.decay_rate)
    report = analyse(module, val, progress=False)
    assert report.layers == expected and report.decay_rate == result.decay_rate
