"""Torchvision-equivalent models with the same module names, defined here because torchvision's wheel
does not load with the CPU torch used in CI. Widths are small (``width``) so tests stay fast."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning.pytorch import Trainer
from torch import Tensor, nn


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


class ResNet(nn.Module):
    """torchvision's ResNet layout: conv1, bn1, relu, maxpool, layer1..layer4, avgpool, fc."""

    def __init__(self, block: type[nn.Module], layers: list[int], width: int = 8, num_classes: int = 10) -> None:
        super().__init__()
        self.inplanes = width
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._make(block, width, layers[0])
        self.layer2 = self._make(block, width * 2, layers[1], 2)
        self.layer3 = self._make(block, width * 4, layers[2], 2)
        self.layer4 = self._make(block, width * 8, layers[3], 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width * 8 * block.expansion, num_classes)

    def _make(self, block: type[nn.Module], planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))


def resnet18(width: int = 8) -> ResNet:
    return ResNet(BasicBlock, [2, 2, 2, 2], width)


def resnet50(width: int = 8) -> ResNet:
    return ResNet(Bottleneck, [3, 4, 6, 3], width)


def vgg(width: int = 8) -> nn.Module:
    """torchvision's VGG layout: `features` (conv/ReLU/maxpool), `avgpool`, `classifier`."""
    net = nn.Module()
    net.features = nn.Sequential(
        nn.Conv2d(3, width, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )
    net.avgpool = nn.AdaptiveAvgPool2d(2)
    net.classifier = nn.Sequential(nn.Linear(8 * width, 10))
    return net


def densenet(width: int = 8) -> nn.Module:
    """torchvision's DenseNet layout: features.conv0 … denseblockN, transitionN …, classifier."""
    net = nn.Module()
    net.features = nn.Sequential()
    net.features.add_module("conv0", nn.Conv2d(3, width, 3, padding=1))
    net.features.add_module("denseblock1", nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.ReLU()))
    net.features.add_module("transition1", nn.Sequential(nn.Conv2d(width, width, 1), nn.AvgPool2d(2)))
    net.features.add_module("denseblock2", nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.ReLU()))
    net.features.add_module("norm5", nn.BatchNorm2d(width))
    net.classifier = nn.Linear(width, 10)
    return net


class Conv2dNormActivation(nn.Sequential):
    """torchvision.ops.Conv2dNormActivation: a Sequential of a conv, a norm and (optionally) an activation."""

    def __init__(self, cin: int, cout: int, k: int = 1, stride: int = 1, groups: int = 1, act: Any = nn.ReLU6) -> None:
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False)]
        layers.append(nn.BatchNorm2d(cout))
        if act is not None:
            layers.append(act(inplace=True))
        super().__init__(*layers)


class SqueezeExcitation(nn.Module):
    """torchvision.ops.SqueezeExcitation: avgpool, fc1, activation, fc2, scale_activation."""

    def __init__(self, channels: int, squeeze: int) -> None:
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.activation = nn.ReLU()
        self.scale_activation = nn.Hardsigmoid()

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x)))))


class InvertedResidualV2(nn.Module):
    """torchvision.models.mobilenetv2.InvertedResidual: ``conv`` = [expand CNA], depthwise CNA, Conv2d, BatchNorm2d."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        layers: list[nn.Module] = [Conv2dNormActivation(cin, hidden)] if expand != 1 else []
        layers += [
            Conv2dNormActivation(hidden, hidden, 3, stride, groups=hidden),
            nn.Conv2d(hidden, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        ]
        self.conv = nn.Sequential(*layers)
        self.use_res_connect = stride == 1 and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


def mobilenet_v2(width: int = 4) -> nn.Module:
    """torchvision's MobileNetV2 layout (fewer blocks): ``features`` = stem CNA, InvertedResidual blocks, last CNA;
    ``classifier`` = Dropout, Linear."""
    net = nn.Module()
    blocks = [
        (width, width, 1, 1),
        (width, 2 * width, 2, 6),
        (2 * width, 2 * width, 1, 6),
        (2 * width, 3 * width, 2, 6),
    ]
    net.features = nn.Sequential(
        Conv2dNormActivation(3, width, 3, 2),
        *[InvertedResidualV2(*b) for b in blocks],
        Conv2dNormActivation(3 * width, 8 * width),
    )
    net.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(8 * width, 10))
    net.forward = lambda x: net.classifier(net.features(x).mean((2, 3)))  # type: ignore[method-assign]
    return net


class InvertedResidualV3(nn.Module):
    """torchvision.models.mobilenetv3.InvertedResidual: ``block`` = [expand CNA], depthwise CNA, [SE], project CNA
    (no activation): a Sequential of CNAs alone where a block has no squeeze-excitation."""

    def __init__(self, cin: int, k: int, hidden: int, cout: int, se: bool, stride: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [Conv2dNormActivation(cin, hidden, act=nn.Hardswish)] if hidden != cin else []
        layers.append(Conv2dNormActivation(hidden, hidden, k, stride, groups=hidden, act=nn.Hardswish))
        if se:
            layers.append(SqueezeExcitation(hidden, max(1, hidden // 4)))
        layers.append(Conv2dNormActivation(hidden, cout, act=None))
        self.block = nn.Sequential(*layers)
        self.use_res_connect = stride == 1 and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        return x + self.block(x) if self.use_res_connect else self.block(x)


def mobilenet_v3(width: int = 4) -> nn.Module:
    """torchvision's MobileNetV3 layout (fewer blocks): ``features`` = stem CNA, InvertedResidual blocks (with and
    without squeeze-excitation), last CNA; ``avgpool``; ``classifier``."""
    w = width
    config = [(w, 3, w, w, False, 1), (w, 3, 4 * w, 2 * w, False, 2), (2 * w, 3, 6 * w, 2 * w, False, 1),
              (2 * w, 5, 6 * w, 3 * w, True, 2), (3 * w, 5, 8 * w, 3 * w, True, 1)]  # fmt: skip
    net = nn.Module()
    net.features = nn.Sequential(
        Conv2dNormActivation(3, w, 3, 2, act=nn.Hardswish),
        *[InvertedResidualV3(*c) for c in config],
        Conv2dNormActivation(3 * w, 12 * w, act=nn.Hardswish),
    )
    net.avgpool = nn.AdaptiveAvgPool2d(1)
    net.classifier = nn.Sequential(nn.Linear(12 * w, 16), nn.Hardswish(), nn.Dropout(0.2), nn.Linear(16, 10))
    net.forward = lambda x: net.classifier(net.avgpool(net.features(x)).flatten(1))  # type: ignore[method-assign]
    return net


class MBConv(nn.Module):
    """torchvision.models.efficientnet.MBConv: ``block`` = [expand CNA], depthwise CNA, SE, project CNA."""

    def __init__(self, cin: int, cout: int, expand: int, stride: int) -> None:
        super().__init__()
        hidden = cin * expand
        layers: list[nn.Module] = [Conv2dNormActivation(cin, hidden, act=nn.SiLU)] if expand != 1 else []
        layers += [
            Conv2dNormActivation(hidden, hidden, 3, stride, groups=hidden, act=nn.SiLU),
            SqueezeExcitation(hidden, max(1, cin // 4)),
            Conv2dNormActivation(hidden, cout, act=None),
        ]
        self.block = nn.Sequential(*layers)
        self.stochastic_depth = nn.Identity()
        self.use_res_connect = stride == 1 and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        return x + self.block(x) if self.use_res_connect else self.block(x)


def efficientnet(width: int = 4) -> nn.Module:
    """torchvision's EfficientNet-B0 layout (narrow): ``features`` = stem CNA, 7 stages (Sequentials of MBConv
    repeated 1, 2, 2, 3, 3, 4, 1 times), last CNA; ``avgpool``; ``classifier``."""
    w = width
    stages, cin = [], w
    for i, (repeats, stride) in enumerate([(1, 1), (2, 2), (2, 2), (3, 2), (3, 1), (4, 2), (1, 1)]):
        cout = w * (i + 2)
        stage = [
            MBConv(cin if j == 0 else cout, cout, 1 if i == 0 else 6, stride if j == 0 else 1) for j in range(repeats)
        ]
        stages.append(nn.Sequential(*stage))
        cin = cout
    net = nn.Module()
    net.features = nn.Sequential(
        Conv2dNormActivation(3, w, 3, 2, act=nn.SiLU), *stages, Conv2dNormActivation(cin, 16 * w, act=nn.SiLU)
    )
    net.avgpool = nn.AdaptiveAvgPool2d(1)
    net.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(16 * w, 10))
    net.forward = lambda x: net.classifier(net.avgpool(net.features(x)).flatten(1))  # type: ignore[method-assign]
    return net


class TutorialCNN(nn.Module):
    """The PyTorch "Training a classifier" tutorial CNN (CIFAR-10, 3x32x32 inputs): one ``self.pool`` called twice,
    ReLUs applied functionally."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.pool(nn.functional.relu(self.conv1(x)))
        x = self.pool(nn.functional.relu(self.conv2(x)))
        x = x.flatten(1)
        x = nn.functional.relu(self.fc1(x))
        x = nn.functional.relu(self.fc2(x))
        return self.fc3(x)


def quiet_trainer(tmp_path: Path, callbacks: list, max_epochs: int = 1, **kwargs: Any) -> Trainer:
    """A CPU ``Trainer`` for tests: no logger, progress bar, summary, checkpoints, sanity check (``kwargs`` win)."""
    defaults: dict[str, Any] = dict(
        max_epochs=max_epochs,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        num_sanity_val_steps=0,
        default_root_dir=tmp_path,
    )
    defaults.update(kwargs)
    return Trainer(callbacks=callbacks, **defaults)
