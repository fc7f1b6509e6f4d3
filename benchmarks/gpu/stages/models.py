"""What the stages measure on: ResNet18 (torchvision's, or the tests' equal one), its layers' output shapes, a
minimal classifier around it, synthetic images and a quiet Trainer."""

from __future__ import annotations

from typing import Any

from _common import tests_resnet18

# The 11 layers `layers="auto"` watches on torchvision's resnet18, and their output shapes at 224x224.
RESNET18_224_LAYERS: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("conv1", (64, 112, 112)),
    ("bn1", (64, 112, 112)),
    ("relu", (64, 112, 112)),
    ("layer1.0", (64, 56, 56)),
    ("layer1.1", (64, 56, 56)),
    ("layer2.0", (128, 28, 28)),
    ("layer2.1", (128, 28, 28)),
    ("layer3.0", (256, 14, 14)),
    ("layer3.1", (256, 14, 14)),
    ("layer4.0", (512, 7, 7)),
    ("layer4.1", (512, 7, 7)),
)

# The distinct output shapes of the 11 watched layers of resnet18 at 32x32 inputs (224x224: RESNET18_224_LAYERS).
RESNET18_32_SHAPES: tuple[tuple[int, int, int], ...] = ((64, 16, 16), (64, 8, 8), (128, 4, 4), (256, 2, 2), (512, 1, 1))


def make_resnet18(dry: bool) -> tuple[Any, str]:
    """torchvision's ``resnet18(num_classes=10)`` when it imports (not in --dry), else the tests' equal one."""
    if not dry:
        try:
            from torchvision.models import resnet18

            return resnet18(num_classes=10), "torchvision.models.resnet18(num_classes=10)"
        except Exception as err:
            print(f"torchvision did not import ({type(err).__name__}: {err}); using tests/models.py's ResNet18")
    width = 8 if dry else 64
    return tests_resnet18(width), f"tests/models.py resnet18(width={width})"


def make_classifier(net: Any) -> Any:
    """A minimal LightningModule around ``net`` (cross-entropy, SGD with momentum).

    Not ``lightning_topo.models.Classifier``: that one trains with Adam and logs an accuracy metric, and the fit
    timings of the committed results.json are of this module."""
    import torch
    from lightning.pytorch import LightningModule

    class Classifier(LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x)

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            x, y = batch
            return torch.nn.functional.cross_entropy(self(x), y)

        def validation_step(self, batch: Any, batch_idx: int) -> None:
            x, y = batch
            self.log("val_loss", torch.nn.functional.cross_entropy(self(x), y))

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=0.05, momentum=0.9)

    return Classifier()


def synthetic_images(n: int, size: int, classes: int = 10, seed: int = 0) -> Any:
    """A TensorDataset of ``n`` Gaussian 3 x size x size images with balanced labels 0..classes-1."""
    import torch
    from torch.utils.data import TensorDataset

    gen = torch.Generator().manual_seed(seed)
    return TensorDataset(torch.randn(n, 3, size, size, generator=gen), torch.arange(n) % classes)


def make_trainer(dry: bool, callbacks: list[Any], **kwargs: Any) -> Any:
    """A quiet Trainer on the GPU (CPU in --dry): no logger, no checkpoints, no progress bar."""
    from lightning.pytorch import Trainer

    return Trainer(
        accelerator="cpu" if dry else "gpu",
        devices=1,
        callbacks=callbacks,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **kwargs,
    )
