"""Differentiable views of an image batch that an adversary is known to train on.

Optimising a perturbation through such a view as well as through the image itself
(expectation over transformation) keeps a part of the perturbation that survives the
transformation: a grayscale view rewards changes in luminance, which a grayscale
conversion keeps, over changes in hue, which it throws away.
"""

from __future__ import annotations

import torch

# ITU-R BT.601 luma, the weights PIL's convert("L") and the grayscale defence use
LUMA = (0.299, 0.587, 0.114)


def grey_view(x: torch.Tensor) -> torch.Tensor:
    """N x 3 x H x W in [0, 1] -> the same images as 3-channel grey (differentiable)."""
    weights = torch.tensor(LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * weights).sum(1, keepdim=True).expand(-1, 3, -1, -1)
