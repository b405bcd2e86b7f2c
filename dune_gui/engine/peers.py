"""Peer protection methods for side-by-side comparison (training-free ones).

Both work on uint8 working-resolution tensors and return protected uint8 tensors; they are
class-wise shortcuts like DUNE's colour branch, which makes them the natural baseline.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def lsp_patterns(num_classes: int, size: int, generator: torch.Generator,
                 psnr: float, patch: int | None = None) -> torch.Tensor:
    """LSP (Yu et al., 2022): per class a grid of constant-colour patches, each colour drawn
    at random, scaled so that the pattern alone has the given PSNR (an L2 norm of
    sqrt(3 R^2 10^(-psnr/10)): 5.54 at 32x32 and 20 dB). The budget is a PSNR rather than
    a fixed L2 norm so that LSP can be given exactly the distortion a DUNE set measures
    (the evaluation passes it), and the comparison is at equal distortion."""
    patch = patch or max(1, size // 4)
    cells = -(-size // patch)
    colours = torch.rand(num_classes, 3, cells, cells, generator=generator) * 2 - 1
    noise = F.interpolate(colours, scale_factor=patch, mode="nearest")[..., :size, :size]
    budget = math.sqrt(3 * size * size * 10 ** (-psnr / 10))
    norms = noise.flatten(1).norm(dim=1).clamp_min(1e-8).view(-1, 1, 1, 1)
    return noise / norms * budget


def apply_lsp(images: torch.Tensor, labels: torch.Tensor, num_classes: int,
              generator: torch.Generator, psnr: float) -> torch.Tensor:
    patterns = lsp_patterns(num_classes, images.shape[-1], generator, psnr)
    x = images.float() / 255 + patterns[labels]
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


def ops_pixels(images: torch.Tensor, labels: torch.Tensor, num_classes: int
               ) -> list[tuple[int, int, torch.Tensor]]:
    """OPS (Wu et al., 2023): for each class the pixel position and extreme colour (one of
    the 8 RGB corners) that deviates most from the class's own pixels there while those pixels
    vary least, so setting it forms the easiest shortcut. Positions are distinct per class."""
    x = images.float() / 255
    corners = torch.tensor([[r, g, b] for r in (0, 1) for g in (0, 1) for b in (0, 1)],
                           dtype=torch.float32)
    used: set[tuple[int, int]] = set()
    chosen = []
    h, w = x.shape[-2:]
    for k in range(num_classes):
        xs = x[labels == k]  # n x 3 x H x W
        spread = xs.std(0).mean(0) + 1e-3 if xs.shape[0] > 1 else torch.ones(h, w)
        mean = xs.mean(0)  # 3 x H x W
        deviation = (mean.unsqueeze(0) - corners.view(8, 3, 1, 1)).abs().mean(1)  # 8 x H x W
        score = deviation / spread
        order = torch.argsort(score.flatten(), descending=True)
        for idx in order.tolist():
            c, rest = divmod(idx, h * w)
            py, px = divmod(rest, w)
            if (py, px) not in used:
                used.add((py, px))
                chosen.append((py, px, corners[c]))
                break
    return chosen


def apply_ops(images: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    out = images.clone()
    for k, (py, px, colour) in enumerate(ops_pixels(images, labels, num_classes)):
        idx = (labels == k).nonzero().flatten()
        out[idx, :, py, px] = (colour * 255).to(torch.uint8)
    return out
