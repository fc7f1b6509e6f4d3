"""Small bundled models: a digits CNN, an MLP, and a plain classification LightningModule around any net."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import torch
from lightning.pytorch import LightningModule
from torch import Tensor, nn

from lightning_topo.functional._checks import check_int

__all__ = [
    "ACTIVATIONS",
    "SCHEDULES",
    "CNNClassifier",
    "Classifier",
    "MLPClassifier",
    "cosine_with_warmup",
    "digits_cnn",
    "mlp",
]

SCHEDULES = (None, "cosine")
ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "sigmoid": nn.Sigmoid}


def _activation(name: str) -> type[nn.Module]:
    if name not in ACTIVATIONS:
        raise ValueError(f"`activation` must be one of {sorted(ACTIVATIONS)}, got {name!r}.")
    return ACTIVATIONS[name]


def digits_cnn(channels: Sequence[int] = (16, 32), num_classes: int = 10, activation: str = "relu") -> nn.Sequential:
    """A small CNN for ``(1, 8, 8)`` digits: [conv3x3 -> act] per channel count, a 2x2 max-pool after
    the first two, then global average pooling and a linear classifier.

    Example:
        >>> digits_cnn()(torch.zeros(2, 1, 8, 8)).shape
        torch.Size([2, 10])
    """
    act = _activation(activation)
    channels = [check_int(ch, f"channels[{i}]", 1) for i, ch in enumerate(channels)]
    num_classes = check_int(num_classes, "num_classes", 1)
    layers: list[nn.Module] = []
    in_ch = 1
    for i, ch in enumerate(channels):
        layers += [nn.Conv2d(in_ch, ch, 3, padding=1), act()]
        if i < 2:
            layers.append(nn.MaxPool2d(2))
        in_ch = ch
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(in_ch, num_classes)]
    return nn.Sequential(*layers)


def mlp(
    in_features: int = 64, hidden: int = 32, depth: int = 4, num_classes: int = 10, activation: str = "relu"
) -> nn.Sequential:
    """A plain MLP: ``depth`` hidden [Linear -> activation] layers of width ``hidden``, then a Linear head.

    Example:
        >>> mlp(in_features=2, hidden=15, depth=9, num_classes=2, activation="tanh")(torch.zeros(4, 2)).shape
        torch.Size([4, 2])
    """
    act = _activation(activation)
    in_features, hidden = check_int(in_features, "in_features", 1), check_int(hidden, "hidden", 1)
    depth, num_classes = check_int(depth, "depth", 0), check_int(num_classes, "num_classes", 1)
    layers: list[nn.Module] = [nn.Flatten()]
    width = in_features
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), act()]
        width = hidden
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


class Classifier(LightningModule):
    """Cross-entropy classification around any network; logs ``train_loss``, ``val_loss``, ``val_acc`` (and
    ``test_loss``, ``test_acc`` in ``trainer.test``); ``trainer.predict`` returns the predicted classes.

    Args:
        net: the network (default: :func:`digits_cnn`).
        lr: Adam learning rate, a finite number >= 0 (the peak rate with a schedule).
        schedule: ``None`` (constant ``lr``) or ``"cosine"``: linear warm-up over ``warmup_fraction`` of the
            training steps, then cosine decay to 0 at the last step (``trainer.estimated_stepping_batches``).
        warmup_fraction: fraction of the training steps spent warming up (``schedule="cosine"`` only).

    Example:
        >>> model = Classifier(mlp(in_features=64))
        >>> model(torch.zeros(3, 64)).shape
        torch.Size([3, 10])
    """

    def __init__(
        self,
        net: nn.Module | None = None,
        lr: float = 1e-2,
        schedule: str | None = None,
        warmup_fraction: float = 0.02,
    ) -> None:
        super().__init__()
        if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not math.isfinite(lr) or lr < 0:
            raise ValueError(f"`lr` must be a finite number >= 0, got {lr!r}.")
        if schedule not in SCHEDULES:
            raise ValueError(f"`schedule` must be one of {SCHEDULES}, got {schedule!r}.")
        if not 0.0 <= warmup_fraction < 1.0:
            raise ValueError(f"`warmup_fraction` must be in [0, 1), got {warmup_fraction!r}.")
        self.save_hyperparameters(ignore=["net"])
        self.net = net if net is not None else digits_cnn()
        self.lr = lr
        self.schedule = schedule
        self.warmup_fraction = warmup_fraction

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def _step(self, batch: tuple[Tensor, Tensor], stage: str) -> Tensor:
        x, y = batch
        logits = self(x)
        loss = nn.functional.cross_entropy(logits, y)
        acc = (logits.argmax(dim=1) == y).float().mean()
        on_step = stage == "train"
        self.log(f"{stage}_loss", loss, on_step=False, on_epoch=True, prog_bar=not on_step)
        self.log(f"{stage}_acc", acc, on_step=False, on_epoch=True, prog_bar=not on_step)
        return loss

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._step(batch, "val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._step(batch, "test")

    def predict_step(self, batch: Any, batch_idx: int) -> Tensor:
        """Predicted classes of a batch (``(inputs, labels)`` or inputs alone)."""
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self(x).argmax(dim=1)

    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.Adam(self.parameters(), lr=self.lr)
        if self.schedule is None:
            return optimizer
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = max(1, round(self.warmup_fraction * total))
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: cosine_with_warmup(step, warmup, total))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def cosine_with_warmup(step: int, warmup: int, total: int) -> float:
    """Learning-rate multiplier: linear warm-up to 1 over ``warmup`` steps, then cosine decay to 0 at ``total``.

    Example:
        >>> [round(cosine_with_warmup(s, 10, 100), 3) for s in (0, 9, 55, 100)]
        [0.1, 0.98, 0.422, 0.0]
    """
    ramp = min(1.0, (step + 1) / max(1, warmup))
    return ramp * 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))


class CNNClassifier(Classifier):
    """:class:`Classifier` around :func:`digits_cnn`, built from plain arguments (for YAML configs and
    ``load_from_checkpoint`` without code).

    Args:
        channels: output channels of the 3x3 convolutions (integers >= 1), one layer per entry (default
            ``[16, 32]``); a 2x2 max-pool follows the first two.
        num_classes: classes of the linear head.
        activation: activation after each convolution, one of ``relu``, ``tanh``, ``gelu``, ``sigmoid``.
        lr, schedule, warmup_fraction: as for :class:`Classifier`.

    Example:
        >>> CNNClassifier(channels=[8, 16])(torch.zeros(2, 1, 8, 8)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self,
        channels: list[int] | None = None,
        num_classes: int = 10,
        activation: str = "relu",
        lr: float = 1e-2,
        schedule: str | None = None,
        warmup_fraction: float = 0.02,
    ) -> None:
        channels = [16, 32] if channels is None else list(channels)
        net = digits_cnn(channels, num_classes=num_classes, activation=activation)
        super().__init__(net, lr=lr, schedule=schedule, warmup_fraction=warmup_fraction)
        self.save_hyperparameters()


class MLPClassifier(Classifier):
    """:class:`Classifier` around :func:`mlp`, built from plain arguments (for YAML configs and
    ``load_from_checkpoint`` without code).

    Args:
        in_features: size of an input once flattened (64 for the 8x8 digits, 2 or 3 for Naitzat's D-I..D-III).
        hidden: width of each hidden layer.
        depth: number of hidden [Linear -> activation] layers.
        num_classes: classes of the linear head.
        activation: activation after each hidden Linear, one of ``relu``, ``tanh``, ``gelu``, ``sigmoid``.
        lr, schedule, warmup_fraction: as for :class:`Classifier`.

    Example:
        >>> MLPClassifier(in_features=2, hidden=15, depth=9, num_classes=2)(torch.zeros(4, 2)).shape
        torch.Size([4, 2])
    """

    def __init__(
        self,
        in_features: int = 64,
        hidden: int = 32,
        depth: int = 4,
        num_classes: int = 10,
        activation: str = "relu",
        lr: float = 1e-2,
        schedule: str | None = None,
        warmup_fraction: float = 0.02,
    ) -> None:
        net = mlp(in_features=in_features, hidden=hidden, depth=depth, num_classes=num_classes, activation=activation)
        super().__init__(net, lr=lr, schedule=schedule, warmup_fraction=warmup_fraction)
        self.save_hyperparameters()
