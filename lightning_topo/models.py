"""Small bundled models: a digits CNN, an MLP, and a plain classification LightningModule around any net."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from lightning.pytorch import LightningModule
from torch import Tensor, nn

__all__ = ["ACTIVATIONS", "CNNClassifier", "Classifier", "MLPClassifier", "digits_cnn", "mlp"]

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
    layers: list[nn.Module] = [nn.Flatten()]
    width = in_features
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), act()]
        width = hidden
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


class Classifier(LightningModule):
    """Cross-entropy classification around any network; logs ``train_loss``, ``val_loss``, ``val_acc``.

    Args:
        net: the network (default: :func:`digits_cnn`).
        lr: Adam learning rate.

    Example:
        >>> model = Classifier(mlp(in_features=64))
        >>> model(torch.zeros(3, 64)).shape
        torch.Size([3, 10])
    """

    def __init__(self, net: nn.Module | None = None, lr: float = 1e-2) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["net"])
        self.net = net if net is not None else digits_cnn()
        self.lr = lr

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

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.lr)


class CNNClassifier(Classifier):
    """:class:`Classifier` around :func:`digits_cnn`, built from plain arguments (for YAML configs and
    ``load_from_checkpoint`` without code).

    Example:
        >>> CNNClassifier(channels=[8, 16])(torch.zeros(2, 1, 8, 8)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self, channels: list[int] | None = None, num_classes: int = 10, activation: str = "relu", lr: float = 1e-2
    ) -> None:
        channels = [16, 32] if channels is None else list(channels)
        super().__init__(digits_cnn(channels, num_classes=num_classes, activation=activation), lr=lr)
        self.save_hyperparameters()


class MLPClassifier(Classifier):
    """:class:`Classifier` around :func:`mlp`, built from plain arguments (for YAML configs and
    ``load_from_checkpoint`` without code).

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
    ) -> None:
        net = mlp(in_features=in_features, hidden=hidden, depth=depth, num_classes=num_classes, activation=activation)
        super().__init__(net, lr=lr)
        self.save_hyperparameters()
