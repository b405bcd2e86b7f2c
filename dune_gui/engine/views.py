"""Differentiable views of an image batch that an adversary is known to train on.

Optimising a perturbation through such a view as well as through the image itself
(expectation over transformation) keeps a part of the perturbation that survives the
transformation: a grayscale view rewards changes in luminance, which a grayscale
conversion keeps, over changes in hue, which it throws away. An attack takes its views as a
list of these callables (`View`), applied in order at every step.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

# ITU-R BT.601 luma, the weights PIL's convert("L") and the grayscale defence use
LUMA = (0.299, 0.587, 0.114)

View = Callable[[torch.Tensor], torch.Tensor]


def grey_view(x: torch.Tensor) -> torch.Tensor:
    """N x 3 x H x W in [0, 1] -> the same images as 3-channel grey (differentiable)."""
    weights = torch.tensor(LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * weights).sum(1, keepdim=True).expand(-1, 3, -1, -1)


class FlipShiftView:
    """A random horizontal flip and a shift of up to `shift` pixels (reflect-padded), one
    draw per call for the whole batch from its own generator: the augmentation a victim
    trains with, so a seed reproduces the sequence of views exactly."""

    def __init__(self, shift: int, seed: int) -> None:
        self.shift = shift
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        shift, generator = self.shift, self.generator
        if bool(torch.rand(1, generator=generator) < 0.5):
            x = x.flip(3)
        dy, dx = (int(v) for v in torch.randint(-shift, shift + 1, (2,), generator=generator))
        h, w = x.shape[-2:]
        padded = F.pad(x, (shift, shift, shift, shift), mode="reflect")
        return padded[..., shift + dy:shift + dy + h, shift + dx:shift + dx + w]


class CropFlipView:
    """A random resized crop (35-100% of the area, aspect 3/4 to 4/3: the ranges of a
    victim's augmentation, training.random_resized_crop_flip) resampled to the input's
    size, half of the images mirrored; one draw per image from its own generator. As
    sampling grids, so the view stays differentiable."""

    def __init__(self, seed: int, min_area: float = 0.35) -> None:
        self.min_area = min_area
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        grids = crop_flip_grids(x.shape[0], x.shape[-2], x.shape[-1], self.generator,
                                self.min_area)
        return F.grid_sample(x, grids.to(x.device, x.dtype), mode="bilinear",
                             padding_mode="reflection", align_corners=False)


def crop_flip_grids(n: int, height: int, width: int, generator: torch.Generator,
                    min_area: float = 0.35) -> torch.Tensor:
    """N sampling grids (N x height x width x 2) of random resized crops, half mirrored."""
    scale = torch.empty(n).uniform_(min_area, 1.0, generator=generator)
    ratio = torch.empty(n).uniform_(math.log(3 / 4), math.log(4 / 3),
                                    generator=generator).exp()
    crop_w = (scale * ratio).sqrt().clamp(max=1)
    crop_h = (scale / ratio).sqrt().clamp(max=1)
    centre_x = (torch.rand(n, generator=generator) * 2 - 1) * (1 - crop_w)
    centre_y = (torch.rand(n, generator=generator) * 2 - 1) * (1 - crop_h)
    flip = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = crop_w * flip
    theta[:, 0, 2] = centre_x
    theta[:, 1, 1] = crop_h
    theta[:, 1, 2] = centre_y
    return F.affine_grid(theta, [n, 3, height, width], align_corners=False)
