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

# Photos are stored with this margin around a victim's crop (256 for 224, as ImageNet
# pipelines resize the short side before cropping).
PHOTO_MARGIN = 8 / 7


def stored_photo_side(photo_size: int) -> int:
    """The side photos are stored at for victims cropping `photo_size` (0: not photos)."""
    return round(photo_size * PHOTO_MARGIN) if photo_size else 0


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
    size (or to `size` x `size`), half of the images mirrored; one draw per image from its
    own generator. As sampling grids, so the view stays differentiable."""

    def __init__(self, seed: int, min_area: float = 0.35, size: int | None = None) -> None:
        self.min_area = min_area
        self.size = size
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        height, width = (self.size, self.size) if self.size else x.shape[-2:]
        grids = crop_flip_grids(x.shape[0], height, width, self.generator, self.min_area)
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


# The IJG (libjpeg, Pillow) base quantisation tables, luminance and chrominance.
_LUMA_TABLE = (
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99)
_CHROMA_TABLE = (
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99,
    24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99,
    *(99,) * 32)


def jpeg_tables(quality: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The 8 x 8 luminance and chrominance quantisation tables libjpeg uses at `quality`."""
    scale = 5000 / quality if quality < 50 else 200 - 2 * quality
    tables = []
    for base in (_LUMA_TABLE, _CHROMA_TABLE):
        t = torch.tensor(base, dtype=torch.float32)
        tables.append(((t * scale + 50) // 100).clamp(1, 255).view(8, 8))
    return tables[0], tables[1]


def _dct_matrix() -> torch.Tensor:
    n = torch.arange(8, dtype=torch.float32)
    m = torch.cos((2 * n[None, :] + 1) * n[:, None] * math.pi / 16) * math.sqrt(2 / 8)
    m[0] /= math.sqrt(2)
    return m


class OneOfView:
    """One of `views` or the images as they are, drawn with equal chances for the whole
    batch at every call from its own generator: a perturbation optimised through it must
    work untouched and after each transformation."""

    def __init__(self, views: list[View], seed: int) -> None:
        self.views = views
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        pick = int(torch.randint(len(self.views) + 1, (1,), generator=self.generator))
        return x if pick == len(self.views) else self.views[pick](x)


class JpegView:
    """JPEG compression at `quality` (Pillow's defaults: YCbCr, 4:2:0 chroma, the IJG
    tables), as a differentiable approximation: the rounding of the DCT coefficients passes
    the gradient straight through. Optimising through it keeps the part of a perturbation
    that survives an adversary who JPEG-compresses the images before training (on part
    of the steps: `OneOfView`)."""

    def __init__(self, quality: int) -> None:
        self.luma, self.chroma = jpeg_tables(quality)
        self.dct = _dct_matrix()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        pad_h, pad_w = -h % 16, -w % 16
        rgb = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate") * 255
        r, g, b = rgb.unbind(1)
        y = 0.299 * r + 0.587 * g + 0.114 * b
        cb = -0.168736 * r - 0.331264 * g + 0.5 * b + 128
        cr = 0.5 * r - 0.418688 * g - 0.081312 * b + 128
        chroma = F.avg_pool2d(torch.stack([cb, cr], 1), 2)
        y = self._quantise(y.unsqueeze(1), self.luma.to(x.device, x.dtype))
        chroma = self._quantise(chroma, self.chroma.to(x.device, x.dtype))
        cb, cr = F.interpolate(chroma, scale_factor=2, mode="bilinear",
                               align_corners=False).unbind(1)
        y = y[:, 0]
        out = torch.stack([y + 1.402 * (cr - 128),
                           y - 0.344136 * (cb - 128) - 0.714136 * (cr - 128),
                           y + 1.772 * (cb - 128)], 1) / 255
        return out[..., :h, :w].clamp(0, 1)

    def _quantise(self, planes: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        n, c, h, w = planes.shape
        d = self.dct.to(planes.device, planes.dtype)
        blocks = (planes - 128).view(n, c, h // 8, 8, w // 8, 8).transpose(3, 4)
        coefficients = d @ blocks @ d.T / table
        rounded = coefficients + (coefficients.round() - coefficients).detach()
        restored = d.T @ (rounded * table) @ d
        return restored.transpose(3, 4).reshape(n, c, h, w) + 128
