"""Classifier architectures used as surrogates (and, later, as victims).

Every model takes images in [0, 1] (N x 3 x R x R) and normalises internally, so attack
code never has to know about normalisation. Any working size R >= 8 works (global pooling
at the end). Weights are initialised from an explicit `torch.Generator`: no global seeding.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import torch
import torch.fx.experimental.optimization as fx_optimization
from torch import nn


class Normalise(nn.Module):
    def __init__(self, mean: tuple[float, ...] = (0.5, 0.5, 0.5),
                 std: tuple[float, ...] = (0.25, 0.25, 0.25)) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def _conv_bn(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class _Residual(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(_conv_bn(channels, channels), _conv_bn(channels, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class FastNet(nn.Module):
    """ResNet-9-style net, narrow (~0.4 M parameters): the cheap workhorse on a CPU."""

    def __init__(self, num_classes: int, width: int = 16) -> None:
        super().__init__()
        w = width
        self.normalise = Normalise()
        self.features = nn.Sequential(
            _conv_bn(3, w),
            _conv_bn(w, 2 * w), nn.MaxPool2d(2), _Residual(2 * w),
            _conv_bn(2 * w, 4 * w), nn.MaxPool2d(2),
            _conv_bn(4 * w, 8 * w), nn.MaxPool2d(2), _Residual(8 * w),
            nn.AdaptiveMaxPool2d(1), nn.Flatten(),
        )
        self.classifier = nn.Linear(8 * w, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(self.normalise(x)))


class VGGNet(nn.Module):
    """VGG-style plain stack (8 conv layers with BN, no skips): a different inductive bias."""

    def __init__(self, num_classes: int, width: int = 32) -> None:
        super().__init__()
        w = width
        plan: list[int | str] = [w, "M", 2 * w, "M", 4 * w, 4 * w, "M", 8 * w, 8 * w, "M",
                                 8 * w, 8 * w]
        layers: list[nn.Module] = []
        cin = 3
        for step in plan:
            if step == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers.append(_conv_bn(cin, int(step)))
                cin = int(step)
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.normalise = Normalise()
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(self.normalise(x)))


class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                          nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    """CIFAR-style ResNet-18 (3x3 stem, no max-pool) as in the paper; for working sizes
    above 64 px the stem downsamples by 4 like the ImageNet variant, to stay affordable."""

    def __init__(self, num_classes: int, width: int = 64, working_size: int = 32) -> None:
        super().__init__()
        w = width
        self.normalise = Normalise()
        stem: list[nn.Module] = [nn.Conv2d(3, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w),
                                 nn.ReLU(inplace=True)]
        if working_size > 64:
            stem = [nn.Conv2d(3, w, 7, 2, 3, bias=False), nn.BatchNorm2d(w),
                    nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1)]
        blocks: list[nn.Module] = []
        cin = w
        for i, cout in enumerate((w, 2 * w, 4 * w, 8 * w)):
            stride = 1 if i == 0 else 2
            blocks += [_BasicBlock(cin, cout, stride), _BasicBlock(cout, cout, 1)]
            cin = cout
        self.features = nn.Sequential(*stem, *blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(self.normalise(x)))


class MobileNetLike(nn.Module):
    """Depthwise-separable net (MobileNet-v1 flavour). Not used as a default surrogate so that
    verification can measure transfer to an architecture the ensemble never saw."""

    def __init__(self, num_classes: int, width: int = 32) -> None:
        super().__init__()
        w = width

        def dw(cin: int, cout: int, stride: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False), nn.BatchNorm2d(cin),
                nn.ReLU(inplace=True),
                nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

        self.normalise = Normalise()
        self.features = nn.Sequential(
            _conv_bn(3, w), dw(w, 2 * w, 1), dw(2 * w, 4 * w, 2), dw(4 * w, 4 * w, 1),
            dw(4 * w, 8 * w, 2), dw(8 * w, 8 * w, 1), dw(8 * w, 16 * w, 2), dw(16 * w, 16 * w, 1),
            nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(16 * w, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(self.normalise(x)))


class SmallCNN(nn.Module):
    """Four conv layers and a linear head: a fast victim for checks on a CPU."""

    def __init__(self, num_classes: int, width: int = 32) -> None:
        super().__init__()
        w = width
        self.normalise = Normalise()
        self.features = nn.Sequential(
            _conv_bn(3, w), nn.MaxPool2d(2), _conv_bn(w, 2 * w), nn.MaxPool2d(2),
            _conv_bn(2 * w, 4 * w), nn.MaxPool2d(2), _conv_bn(4 * w, 4 * w),
            nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(4 * w, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(self.normalise(x)))


def _pretrained(name: str, frozen: bool = False) -> Callable[..., nn.Module]:
    def build(k: int, r: int, generator: torch.Generator | None = None) -> nn.Module:
        from .pretrained import PretrainedClassifier

        # without a generator a state dict follows (a cached checkpoint): the architecture
        # alone, no second read of the ImageNet weights
        return PretrainedClassifier(name, k, generator, frozen,
                                    imagenet_weights=generator is not None)
    return build


ARCHITECTURES: dict[str, tuple[str, Callable[..., nn.Module]]] = {
    "fast": ("ResNet-9-style, narrow (~0.4M params); fastest on a CPU",
             lambda k, r: FastNet(k)),
    "vgg": ("VGG-style plain conv stack with BN (~2.3M params)", lambda k, r: VGGNet(k)),
    "resnet18": ("CIFAR-style ResNet-18 (~11M params), the paper's surrogate; slow on a CPU",
                 lambda k, r: ResNet18(k, working_size=r)),
    "mobilenet": ("MobileNet-style depthwise-separable net (~0.5M params)",
                  lambda k, r: MobileNetLike(k)),
    "small": ("plain 4-layer CNN (~0.3M params); a fast victim for checks",
              lambda k, r: SmallCNN(k)),
    "lite0": ("EfficientNet-Lite0, ImageNet-pretrained, fine-tuned on your folder (4.7M "
              "params): the kind of network a scraper fine-tunes", _pretrained("lite0")),
    "lite2": ("EfficientNet-Lite2, ImageNet-pretrained, fine-tuned (6.1M params)",
              _pretrained("lite2")),
}
# Victims only: a linear probe on frozen pretrained features (as a surrogate it would be
# a fixed feature extractor with a linear head).
PROBES: dict[str, tuple[str, Callable[..., nn.Module]]] = {
    "lite0-probe": ("linear probe on frozen ImageNet EfficientNet-Lite0 features",
                    _pretrained("lite0", frozen=True)),
    "lite2-probe": ("linear probe on frozen ImageNet EfficientNet-Lite2 features",
                    _pretrained("lite2", frozen=True)),
}
PRETRAINED_ARCHS = frozenset({"lite0", "lite2", "lite0-probe", "lite2-probe"})


def build_model(arch: str, num_classes: int, working_size: int,
                generator: torch.Generator | None = None) -> nn.Module:
    known = {**ARCHITECTURES, **PROBES}
    if arch not in known:
        raise ValueError(f"unknown architecture {arch!r}; choose from "
                         f"{', '.join(sorted(known))}")
    if arch in PRETRAINED_ARCHS:  # keeps its ImageNet weights; only the new head is drawn
        return known[arch][1](num_classes, working_size, generator)
    model = known[arch][1](num_classes, working_size)
    if generator is not None:
        init_weights(model, generator)
    return model


@functools.cache
def multiply_accumulates(arch: str, side: int, num_classes: int = 10) -> int:
    """Multiply-accumulates of one forward pass of an `arch` image at `side` px, counted
    over its convolutions and linear layers: how run estimates weigh
    networks of one family (plain convolutions) against each other. Across families it
    misleads: depthwise networks take far longer per operation."""
    total = 0

    def count(module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Conv2d):
            per_output = (module.in_channels // module.groups) * math.prod(module.kernel_size)
            total += output.numel() * per_output
        elif isinstance(module, nn.Linear):
            total += output.numel() * module.in_features

    # (the meta device would skip the arithmetic, but its first use costs seconds)
    model = build_model(arch, num_classes, side).eval()
    hooks = [m.register_forward_hook(count) for m in model.modules()
             if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.inference_mode():
        model(torch.zeros(1, 3, side, side))
    for hook in hooks:
        hook.remove()
    return total


def fuse_for_inference(model: nn.Module) -> nn.Module:
    """The model with each batch norm folded into the convolution before it (a frozen
    surrogate's BN is a fixed affine map): the same function, one pass over the activations
    fewer in every forward and backward (bench/engine_speed.py measures it). torch.fx does
    the graph work; a model it cannot trace (a user's TorchScript file, dynamic control
    flow) is returned as it is."""
    if model.training or isinstance(model, torch.jit.ScriptModule):
        return model
    try:
        return fx_optimization.fuse(model)
    except Exception:  # fx raises many types while tracing; unfused is still correct
        return model


@torch.no_grad()
def init_weights(model: nn.Module, generator: torch.Generator) -> None:
    """Kaiming init drawn from `generator`, so a seed fully determines the initial model."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu",
                                    generator=generator)
        elif isinstance(module, nn.Linear):
            bound = 1.0 / math.sqrt(module.in_features)
            nn.init.uniform_(module.weight, -bound, bound, generator=generator)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
