"""Differentiable views of an image batch that an adversary is known to train on.

Optimising a perturbation through such a view as well as through the image itself
(expectation over transformation) keeps a part of the perturbation that survives the
transformation: a grayscale view rewards changes in luminance, which a grayscale
conversion keeps, over changes in hue, which it throws away. An attack takes its views as a
list of these callables (`View`), applied in order at every step.
"""

from __future__ import annotations

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
