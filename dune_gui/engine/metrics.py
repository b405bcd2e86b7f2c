"""Perceptual measures between an original and a protected image, batched in torch.

All take N x 3 x H x W tensors in [0, 1] and return one value per image. They need no
downloaded weights (the reason LPIPS was replaced, see the spec).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .views import LUMA

PSNR_IDENTICAL = 100.0  # reported when two images are bit-identical (MSE = 0)
# The measures recorded per written image (the manifest) and per set (`evaluate`), and
# what the colour difference means to a viewer (docs/perceptual.md), said alike wherever
# one is shown.
MEASURES = ("psnr", "ssim", "delta_e", "delta_e_p99", "visible_share")
DELTA_E_MEANING = ("about 1 is the smallest a trained eye sees side by side, 2-3 where "
                   "people notice")


def set_means(means: dict[str, float]) -> dict[str, float]:
    """A set's mean measures, rounded as reports give them."""
    digits = {"psnr": 2, "ssim": 3, "delta_e": 2, "delta_e_p99": 2, "visible_share": 4}
    return {m: round(float(means[m]), digits[m]) for m in MEASURES}


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    mse = (a - b).pow(2).flatten(1).mean(1)
    value = 10.0 * torch.log10(1.0 / mse.clamp_min(1e-10))
    return torch.where(mse > 0, value, torch.full_like(value, PSNR_IDENTICAL))


def _gaussian_window(size: int, sigma: float, like: torch.Tensor) -> torch.Tensor:
    coords = torch.arange(size, dtype=like.dtype, device=like.device) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(a: torch.Tensor, b: torch.Tensor, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Mean SSIM over channels and positions (Wang et al. 2004), Gaussian window,
    separable; the window shrinks for images smaller than it."""
    c = a.shape[1]
    window = min(window, a.shape[-1], a.shape[-2])
    window = window if window % 2 == 1 else window - 1
    g = _gaussian_window(window, sigma, a)
    kx = g.view(1, 1, 1, -1).repeat(c, 1, 1, 1)
    ky = g.view(1, 1, -1, 1).repeat(c, 1, 1, 1)

    # the five local means in one depthwise convolution pair instead of five
    stacked = torch.cat([a, b, a * a, b * b, a * b], dim=1)
    kx, ky = kx.repeat(5, 1, 1, 1), ky.repeat(5, 1, 1, 1)
    mu_a, mu_b, mean_aa, mean_bb, mean_ab = F.conv2d(
        F.conv2d(stacked, kx, groups=5 * c), ky, groups=5 * c).split(c, dim=1)
    c1, c2 = 0.01**2, 0.03**2
    var_a = mean_aa - mu_a**2
    var_b = mean_bb - mu_b**2
    cov = mean_ab - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    return (num / den).flatten(1).mean(1)


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB (D65) in [0,1] -> CIE L*a*b*, channel dimension 1."""
    linear = torch.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055).clamp_min(0) ** 2.4)
    m = torch.tensor([[0.4124564, 0.3575761, 0.1804375],
                      [0.2126729, 0.7151522, 0.0721750],
                      [0.0193339, 0.1191920, 0.9503041]], dtype=rgb.dtype, device=rgb.device)
    xyz = torch.einsum("ij,njhw->nihw", m, linear)
    white = torch.tensor([0.95047, 1.0, 1.08883], dtype=rgb.dtype, device=rgb.device)
    t = xyz / white.view(1, 3, 1, 1)
    delta = 6 / 29
    f = torch.where(t > delta**3, t.clamp_min(1e-12) ** (1 / 3), t / (3 * delta**2) + 4 / 29)
    L = 116 * f[:, 1] - 16
    a = 500 * (f[:, 0] - f[:, 1])
    b = 200 * (f[:, 1] - f[:, 2])
    return torch.stack([L, a, b], dim=1)


def ciede2000_map(lab1: torch.Tensor, lab2: torch.Tensor) -> torch.Tensor:
    """Per-pixel CIEDE2000 (Sharma, Wu & Dalal 2005) between two Lab tensors (N x 3 x H x W)."""
    L1, a1, b1 = lab1.unbind(1)
    L2, a2, b2 = lab2.unbind(1)
    C1 = torch.sqrt(a1**2 + b1**2)
    C2 = torch.sqrt(a2**2 + b2**2)
    C_bar = (C1 + C2) / 2
    G = 0.5 * (1 - torch.sqrt(C_bar**7 / (C_bar**7 + 25.0**7)))
    a1p, a2p = (1 + G) * a1, (1 + G) * a2
    C1p = torch.sqrt(a1p**2 + b1**2)
    C2p = torch.sqrt(a2p**2 + b2**2)
    h1p = torch.atan2(b1, a1p) % (2 * math.pi)
    h2p = torch.atan2(b2, a2p) % (2 * math.pi)
    dLp = L2 - L1
    dCp = C2p - C1p
    zero_chroma = (C1p * C2p) == 0
    dhp = h2p - h1p
    dhp = torch.where(dhp > math.pi, dhp - 2 * math.pi, dhp)
    dhp = torch.where(dhp < -math.pi, dhp + 2 * math.pi, dhp)
    dhp = torch.where(zero_chroma, torch.zeros_like(dhp), dhp)
    dHp = 2 * torch.sqrt(C1p * C2p) * torch.sin(dhp / 2)
    Lbp = (L1 + L2) / 2
    Cbp = (C1p + C2p) / 2
    hsum = h1p + h2p
    hbp = torch.where(torch.abs(h1p - h2p) > math.pi,
                      torch.where(hsum < 2 * math.pi, (hsum + 2 * math.pi) / 2,
                                  (hsum - 2 * math.pi) / 2),
                      hsum / 2)
    hbp = torch.where(zero_chroma, hsum, hbp)
    T = (1 - 0.17 * torch.cos(hbp - math.radians(30)) + 0.24 * torch.cos(2 * hbp)
         + 0.32 * torch.cos(3 * hbp + math.radians(6))
         - 0.20 * torch.cos(4 * hbp - math.radians(63)))
    d_theta = math.radians(30) * torch.exp(-(((torch.rad2deg(hbp) - 275) / 25) ** 2))
    Rc = 2 * torch.sqrt(Cbp**7 / (Cbp**7 + 25.0**7))
    Sl = 1 + 0.015 * (Lbp - 50) ** 2 / torch.sqrt(20 + (Lbp - 50) ** 2)
    Sc = 1 + 0.045 * Cbp
    Sh = 1 + 0.015 * Cbp * T
    Rt = -torch.sin(2 * d_theta) * Rc
    return torch.sqrt(((dLp / Sl) ** 2 + (dCp / Sc) ** 2 + (dHp / Sh) ** 2
                      + Rt * (dCp / Sc) * (dHp / Sh)).clamp_min(0))


def delta_e2000(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean CIEDE2000 colour difference per image (about 1 = just noticeable)."""
    return ciede2000_map(rgb_to_lab(a), rgb_to_lab(b)).flatten(1).mean(1)


def delta_e2000_mean_p99(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """delta_e2000 and the 99th percentile of the per-pixel CIEDE2000 per image (the worst
    visible spots, a cast on a flat area, which a mean over a busy picture hides), from one
    per-pixel map (the map is most of the cost)."""
    per_pixel = ciede2000_map(rgb_to_lab(a), rgb_to_lab(b)).flatten(1)
    return per_pixel.mean(1), torch.quantile(per_pixel, 0.99, dim=1)


def _box_mean(x: torch.Tensor, radius: int) -> torch.Tensor:
    k = 2 * radius + 1
    return F.avg_pool2d(F.pad(x, (radius,) * 4, mode="replicate"), k, stride=1)


def jnd_map(rgb: torch.Tensor, radius: int = 2) -> torch.Tensor:
    """Just-noticeable luminance change per pixel, in 0..1 units (N x 1 x H x W).

    Luminance masking: the eye tolerates larger changes on bright backgrounds than at
    mid-grey (Chou & Li 1995's bright side); below mid-grey the threshold stays at
    mid-grey's. Chou and Li's threshold also rises toward black (to 20 levels at 0), but
    sRGB levels are spaced about evenly in perceived lightness down to the dark, and on
    photos on a black backdrop changes their rise let through showed as bands
    (docs/research-log.md, thirty-second and thirty-third sessions). Plus texture masking:
    a change hides in local contrast (the local standard deviation of luma), and shows on
    flat sky, skin or backdrop.
    """
    background, local_std = local_luma(rgb, radius)
    luminance = 3 + 3 / 128 * (background - 127).clamp_min(0)
    return (luminance + TEXTURE_MASKING * local_std) / 255


def local_luma(rgb: torch.Tensor, radius: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """The local mean and standard deviation of luma (0..255) over a (2 radius + 1)-pixel
    square around each pixel (N x 1 x H x W each): the background and texture jnd_map
    reads."""
    luma = (rgb * torch.tensor(LUMA, dtype=rgb.dtype, device=rgb.device)
            .view(1, 3, 1, 1)).sum(1, keepdim=True) * 255
    background = _box_mean(luma, radius)
    return background, (_box_mean(luma * luma, radius) - background**2).clamp_min(0).sqrt()


# share of the local contrast (std of luma) that a change can hide in; at 0.5 a change of
# half a texture's spread still reads as texture
TEXTURE_MASKING = 0.5


def visible_share(a: torch.Tensor, b: torch.Tensor,
                  jnd: torch.Tensor | None = None) -> torch.Tensor:
    """Share of pixels whose luminance change exceeds the just-noticeable change of the
    original at that place (jnd_map): ~0 means the change hides in the picture's own
    texture and brightness; a few percent concentrated on flat areas is a visible blotch.
    `jnd`: jnd_map(a), where the caller has it already."""
    return beyond_notice(a, b, jnd).float().flatten(1).mean(1)


def beyond_notice(a: torch.Tensor, b: torch.Tensor,
                  jnd: torch.Tensor | None = None) -> torch.Tensor:
    """Where the luminance change from `a` to `b` exceeds the just-noticeable change of
    `a` (N x 1 x H x W, boolean): the pixels visible_share counts."""
    weights = torch.tensor(LUMA, dtype=a.dtype, device=a.device).view(1, 3, 1, 1)
    return ((b - a) * weights).sum(1, keepdim=True).abs() > (jnd_map(a) if jnd is None else jnd)
