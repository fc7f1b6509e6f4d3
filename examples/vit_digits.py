"""Your own model: a Hugging Face ViT on scikit-learn's digits, watched by `TopologyCallback()` at its defaults.

    python examples/vit_digits.py            # 15 epochs (about 20 s on a 2-core CPU)
    python examples/vit_digits.py --quick    # 2 epochs
    python examples/vit_digits.py --quick --threads 1 --precision 64 --first-seed 1   # perturbed rounding/data

The ViT is built from a tiny config (random init, no download): digits upsampled to 16x16, 2x2 patches (an 8x8
patch grid), width 32, 4 blocks. Nothing in the callback is set for it: ``layers="auto"`` finds the embeddings
and every ``ViTLayer`` (``model.vit.embeddings``, ``model.vit.layers.0`` ... ``3``), and each block's output
``(B, 1 + 64, 32)`` is read as the volume ``(32, 8, 8)`` of its patch tokens (the CLS token dropped; see
``lightning_topo.capture.tokens``).

Writes under ``outputs/vit_digits/``: ``results.json`` (watched layers, the volume each is read as, per-epoch
validation accuracy, decay rate, theta and Omega per layer, and where the numbers came from),
``history.json`` (the callback's per-epoch, per-layer, per-class records) and the callback's figures
(``callback.plot()``) as ``betti_vs_depth.png`` (the last evaluation), ``omega_history.png`` and ``decay.png``
(needs matplotlib; without it the run says so and writes the JSON files only).
"""

from __future__ import annotations

import argparse
import json
import shutil
import warnings
from pathlib import Path

import torch
from _provenance import add_perturbation_args, apply_perturbation, environment
from lightning.pytorch import LightningModule, Trainer, seed_everything
from lightning.pytorch.callbacks import Callback
from torch import Tensor, nn

from lightning_topo import TopologyCallback
from lightning_topo.capture import ActivationCapture, cubical_volumes, run_on_sample, token_layout
from lightning_topo.datasets import DigitsDataModule

SIZE = 16
"""Digits are 8x8; upsampled to 16x16 they make an 8x8 grid of 2x2 patches."""


def build_vit(num_classes: int = 10) -> nn.Module:
    """A tiny ViT for 1x16x16 images from a transformers config (random init, no download)."""
    from transformers import ViTConfig, ViTForImageClassification

    config = ViTConfig(
        image_size=SIZE, patch_size=2, num_channels=1, hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
        intermediate_size=64, num_labels=num_classes,
    )  # fmt: skip
    return ViTForImageClassification(config)


class ViTClassifier(LightningModule):
    """Cross-entropy around the HF ViT; ``forward`` returns the logits; logs ``val_loss`` and ``val_acc``."""

    def __init__(self, lr: float = 3e-3) -> None:
        super().__init__()
        self.model = build_vit()
        self.lr = lr

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x).logits

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        x, y = batch
        logits = self(x)
        self.log("val_loss", nn.functional.cross_entropy(logits, y), prog_bar=True)
        self.log("val_acc", (logits.argmax(1) == y).float().mean(), prog_bar=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=self.lr)


class _RecordAccuracy(Callback):
    """Appends each validation epoch's ``val_acc`` to a list."""

    def __init__(self, into: list[float]) -> None:
        self.into = into

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.sanity_checking:
            self.into.append(float(trainer.callback_metrics["val_acc"]))


def read_as(model: nn.Module, x: Tensor, layers: list[str]) -> dict[str, list[int]]:
    """The volume each watched layer's output is read as, per input (what its Betti numbers are of)."""
    layout = token_layout(model, x)
    shapes: dict[str, list[int]] = {}

    def record(name: str, out: Tensor) -> None:
        shapes.setdefault(name, list(cubical_volumes(out, layout).shape[1:]))

    with ActivationCapture(model, layers, record):
        run_on_sample(model, x)
    return shapes


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description="TopologyCallback on a Hugging Face ViT (digits)")
    parser.add_argument("--quick", action="store_true", help="2 epochs")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--out", default="outputs/vit_digits")
    add_perturbation_args(parser, threads=torch.get_num_threads())
    args = parser.parse_args(argv)
    precision = apply_perturbation(args)
    epochs = args.epochs or (2 if args.quick else 15)
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")

    seed_everything(args.first_seed)
    topo = TopologyCallback()  # the defaults: layers="auto", the cubical view at each volume's mean
    trainer = Trainer(
        max_epochs=epochs,
        callbacks=[topo],
        logger=False,
        accelerator="auto",
        devices=1,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        precision=precision,
    )
    datamodule = DigitsDataModule(batch_size=64, size=SIZE, seed=args.first_seed)
    model = ViTClassifier()
    val_acc: list[float] = []

    trainer.callbacks.append(_RecordAccuracy(val_acc))
    trainer.fit(model, datamodule=datamodule)

    sample = topo.sample
    assert sample is not None
    volumes = read_as(model, sample.inputs[:2].to(model.device, model.dtype), topo.layer_names)
    history = topo.history
    (out / "history.json").write_text(json.dumps(history, indent=1))
    results = {
        "model": "transformers ViTForImageClassification (16x16, patch 2, width 32, 4 blocks, random init)",
        "layers": topo.layer_names,
        "read_as": volumes,
        "epochs": [
            {
                "epoch": h["epoch"],
                "val_acc": val_acc[i] if i < len(val_acc) else None,
                "decay_rate": h["decay_rate"],
                "theta": h["theta"],
                "omega": {name: layer["omega"] for name, layer in h["layers"].items()},
            }
            for i, h in enumerate(history)
        ],
        "settings": {"epochs": epochs, "precision": precision, "first_seed": args.first_seed},
        "environment": environment(("transformers",), precision=precision, first_seed=args.first_seed, epochs=epochs),
    }
    (out / "results.json").write_text(json.dumps(results, indent=1))

    print(f"watched layers ({len(topo.layer_names)}):")
    for name in topo.layer_names:
        print(f"  {name:<24} read as {tuple(volumes[name])}")
    for row in results["epochs"]:
        acc = "n/a" if row["val_acc"] is None else f"{row['val_acc']:.3f}"
        omegas = " ".join(f"{v:6.1f}" for v in row["omega"].values())
        print(f"epoch {row['epoch']:2d}  val_acc {acc}  Omega {omegas}  decay_rate {row['decay_rate']:+.3f}")
    pngs = write_figures(topo, out)
    print(f"outputs: {out}/results.json, {out}/history.json" + "".join(f", {out}/{name}" for name in pngs))
    if not pngs:
        print("no PNG figures: they need matplotlib (pip install matplotlib)")
    return out


def write_figures(topo: TopologyCallback, out: Path) -> list[str]:
    """The callback's figures (``topo.plot()``: Betti numbers vs depth, Omega per epoch, decay rate) as PNG files
    under ``out``; their names, none without matplotlib."""
    from lightning_topo.loggers.figures import png_bytes

    try:
        figures = topo.plot()
    except ImportError:
        return []
    names = []
    for key, fig in figures.items():
        name = key.replace("/", "_") + ".png"
        (out / name).write_bytes(png_bytes(fig))
        names.append(name)
    return names


if __name__ == "__main__":
    main()
