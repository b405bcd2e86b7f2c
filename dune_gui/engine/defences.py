"""Training-time defences an adversary may apply to a protected set (see the spec's list).

A defence has up to three parts, all pure functions: `dataset` transforms the uint8 training
images once (JPEG, grayscale, ...); `test` transforms test images the same way when the
defence changes the representation itself (grayscale, per-image normalisation), so the victim
is scored on inputs like those it was trained on; `batch` transforms each float training
batch (random noise, COIN); `adversarial` turns on PGD adversarial training.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from .attack import linf_box, sign_pgd
from .views import LUMA

UintTransform = Callable[[torch.Tensor], torch.Tensor]
BatchTransform = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def jpeg(images: torch.Tensor, quality: int = 10) -> torch.Tensor:
    out = torch.empty_like(images)
    for i, img in enumerate(images):
        buf = io.BytesIO()
        Image.fromarray(img.permute(1, 2, 0).numpy()).save(buf, format="JPEG", quality=quality)
        buf.seek(0)
        with Image.open(buf) as decoded:
            out[i] = torch.from_numpy(np.array(decoded.convert("RGB"))).permute(2, 0, 1)
    return out


def grayscale(images: torch.Tensor) -> torch.Tensor:
    weights = torch.tensor(LUMA).view(1, 3, 1, 1)
    grey = (images.float() * weights).sum(1, keepdim=True).round().clamp(0, 255)
    return grey.to(torch.uint8).expand(-1, 3, -1, -1).contiguous()


def posterise(images: torch.Tensor, bits: int = 3) -> torch.Tensor:
    levels = 2**bits - 1
    return (images.float() / 255 * levels).round().mul(255 / levels).round().to(torch.uint8)


def gaussian_blur(images: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    radius = max(1, round(2 * sigma))
    coords = torch.arange(-radius, radius + 1, dtype=torch.float32)
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    x = images.float()
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="reflect"),
                 g.view(1, 1, 1, -1).repeat(3, 1, 1, 1), groups=3)
    x = F.conv2d(F.pad(x, (0, 0, radius, radius), mode="reflect"),
                 g.view(1, 1, -1, 1).repeat(3, 1, 1, 1), groups=3)
    return x.round().clamp(0, 255).to(torch.uint8)


def per_image_normalise(images: torch.Tensor) -> torch.Tensor:
    """Each image's channels to zero mean / unit std, mapped back to 0..255 (removes any
    per-image or per-class constant colour offset)."""
    x = images.float()
    mean = x.mean(dim=(2, 3), keepdim=True)
    std = x.std(dim=(2, 3), keepdim=True).clamp_min(1.0)
    return ((x - mean) / std * 48 + 128).round().clamp(0, 255).to(torch.uint8)


def shift_and_noise(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random per-channel shift of +-8/255 plus Gaussian noise, sigma ~ U[0, 8/255]."""
    n = x.shape[0]
    shift = (torch.rand(n, 3, 1, 1, generator=generator) * 2 - 1) * (8 / 255)
    sigma = torch.rand(n, 1, 1, 1, generator=generator) * (8 / 255)
    noise = torch.randn(x.shape, generator=generator) * sigma
    return (x + shift + noise).clamp(0, 1)


def coin(x: torch.Tensor, generator: torch.Generator, max_shift: float = 2.0) -> torch.Tensor:
    """COIN: random sub-pixel displacement of every pixel by up to +-2 px, bilinear, wrap."""
    n, _, h, w = x.shape
    dy = (torch.rand(n, h, w, generator=generator) * 2 - 1) * max_shift
    dx = (torch.rand(n, h, w, generator=generator) * 2 - 1) * max_shift
    ys = (torch.arange(h).view(1, h, 1) + dy) % h
    xs = (torch.arange(w).view(1, 1, w) + dx) % w
    # float modulo can round up to exactly h (or w): wrap the integer part again
    y0, x0 = ys.floor().long() % h, xs.floor().long() % w
    wy, wx = (ys - y0).unsqueeze(1), (xs - x0).unsqueeze(1)
    y1, x1 = (y0 + 1) % h, (x0 + 1) % w
    batch = torch.arange(n).view(n, 1, 1)

    def at(yy: torch.Tensor, xx: torch.Tensor) -> torch.Tensor:
        return x[batch, :, yy, xx].permute(0, 3, 1, 2)

    return ((1 - wy) * (1 - wx) * at(y0, x0) + (1 - wy) * wx * at(y0, x1)
            + wy * (1 - wx) * at(y1, x0) + wy * wx * at(y1, x1))


def adversarial_examples(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                         generator: torch.Generator, eps: float = 8 / 255, steps: int = 7
                         ) -> torch.Tensor:
    """Untargeted L-inf PGD (Madry et al.): random start, step eps/4."""
    model.eval()
    start = (torch.rand(x.shape, generator=generator) * 2 - 1).to(x.device) * eps
    lower, upper = linf_box(x.detach(), eps)
    return sign_pgd((x + start).clamp(0, 1), lambda v: F.cross_entropy(model(v), y,
                                                                       reduction="none"),
                    lower, upper, eps / 4, steps, minimise=False)


@dataclass(frozen=True)
class Defence:
    name: str
    description: str
    dataset: UintTransform | None = None
    test: UintTransform | None = None
    batch: BatchTransform | None = None
    adversarial: bool = False


def _jpeg_grey(images: torch.Tensor) -> torch.Tensor:
    return grayscale(jpeg(images))


DEFENCES: dict[str, Defence] = {d.name: d for d in (
    Defence("none", "no defence"),
    Defence("jpeg10", "JPEG compression, quality 10", dataset=jpeg),
    Defence("grayscale", "grayscale (3 channels), train and test", dataset=grayscale,
            test=grayscale),
    Defence("jpeg10+grayscale", "JPEG 10 then grayscale, train and test",
            dataset=_jpeg_grey, test=grayscale),
    Defence("adv-training", "PGD adversarial training, L-inf 8/255, 7 steps",
            adversarial=True),
    Defence("shift-noise", "random per-channel shift +-8/255 + Gaussian noise",
            batch=shift_and_noise),
    Defence("coin", "COIN random sub-pixel displacement +-2 px", batch=coin),
    Defence("posterise", "bit-depth reduction to 3 bits per channel", dataset=posterise),
    Defence("blur", "Gaussian blur, sigma 1 px", dataset=gaussian_blur),
    Defence("normalise", "per-image channel normalisation, train and test",
            dataset=per_image_normalise, test=per_image_normalise),
)}
