"""Spatial branch: ensemble-targeted, error-minimising PGD in an L-inf ball (no random start)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .attack import linf_box, sign_pgd
from .metrics import jnd_map
from .surrogates import Ensemble, SurrogateMember
from .views import FlipShiftView, View, grey_view

# Largest shift (working-size pixels) of the flip-and-shift view with `pgd_augment`;
# victims commonly train with random crops of up to 4 px at 32 px.
PGD_SHIFT = 2


def spatial_pgd(
    x: torch.Tensor,
    target: torch.Tensor,
    ensemble: Ensemble,
    eps: float | torch.Tensor,
    step_size: float | torch.Tensor,
    steps: int,
    members: Sequence[SurrogateMember] | None = None,
    on_step: Callable[[int, float], None] | None = None,
    views: Sequence[View] = (),
    pad_to: int = 0,
) -> torch.Tensor:
    """Return delta (same shape as x, |delta| <= eps, x + delta in [0, 1]). `eps` (and the
    step) may be a per-pixel tensor broadcastable to x: a perceptual budget.

    g_t = mean_m grad CE(f_m(x_t), y*);  x_{t+1} = clip01(proj_eps(x_t - a * sign(g_t))).
    Averaging the member losses and differentiating once gives the mean of the gradients
    with a single backward pass.

    `views` (see views.py) are applied to x_t before the ensemble scores it. The grayscale
    view makes every step move the three channels of a pixel together (delta is pure
    luminance, the part a grayscale conversion keeps; the class-wise colour offset carries
    the chromatic shortcut); the flip-and-shift view is the victim's own augmentation.

    With `pad_to` a smaller batch runs padded to that many images. On CUDA the kernels
    (and so the last bits of the gradient, and now and then a sign) depend on the batch
    size; at one fixed size an image's perturbation no longer depends on its batch, so a
    resumed run and the preview write the same bytes as one uninterrupted run.
    """
    chosen = list(members) if members is not None else ensemble.differentiable
    if not chosen:
        raise ValueError("the spatial branch needs at least one differentiable surrogate")
    n = x.shape[0]
    if 0 < n < pad_to:
        x = torch.cat([x, x.new_zeros((pad_to - n, *x.shape[1:]))])
        target = torch.cat([target, target.new_zeros(pad_to - n)])
        if isinstance(eps, torch.Tensor) and eps.shape[0] == n:
            eps = torch.cat([eps, eps.new_zeros((pad_to - n, *eps.shape[1:]))])
        if isinstance(step_size, torch.Tensor) and step_size.shape[0] == n:
            step_size = torch.cat([step_size,
                                   step_size.new_zeros((pad_to - n, *step_size.shape[1:]))])
    x = x.detach()
    lower, upper = linf_box(x, eps)
    report = None if on_step is None else (
        lambda t, losses: on_step(t, float(losses[:n].mean())))
    x_adv = sign_pgd(x, lambda v: ensemble.mean_cross_entropy(v, target, chosen), lower, upper,
                     step_size, steps, minimise=True, views=views, on_step=report)
    return (x_adv - x)[:n]


def upsample_delta(delta: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Bring a working-resolution perturbation (3 x R x R) to an image's own size. Bilinear
    interpolation is a convex combination, so the result stays inside the eps ball."""
    if delta.shape[-2:] == (height, width):
        return delta
    return F.interpolate(delta.unsqueeze(0), size=(height, width), mode="bilinear",
                         align_corners=False)[0]


@dataclass(frozen=True)
class ChangeLimit:
    """The perceptual bound of the spatial change, applied again to the change as a file
    holds it: at the image's own resolution, and after rounding to 8 bits.

    The PGD bounds the change at the working size; brought up to a photo's size the bound
    there differs (its texture is measured on finer detail), and rounding the picture to
    8 bits adds up to half a level, which on flat ground, where a just-noticeable change
    is a few levels and the bound 0.95 of it, passed notice (3.5 of 3.7 rounds to 4;
    docs/perceptual.md). So the change is clipped to `jnd_budget` just-noticeable changes
    of the full-resolution image (never above eps) and rounded to whole levels, toward
    the original where rounding would pass notice (or the bound, with a budget above
    one)."""

    jnd_budget: float
    eps: float

    def bound(self, jnd: torch.Tensor) -> torch.Tensor:
        """Each pixel's bound from its just-noticeable change (metrics.jnd_map): the one
        the PGD projects onto at the working size and the file keeps at its own."""
        return (jnd * self.jnd_budget).clamp(max=self.eps)

    def written(self, delta: torch.Tensor, x: torch.Tensor,
                jnd: torch.Tensor | None = None) -> torch.Tensor:
        """`delta` (3 x H x W, at the size of `x`) as the file will hold it, for an image
        `x` whose pixels lie on the 8-bit grid (adding the result keeps them there).
        `jnd`: jnd_map of `x` (1 x H x W), where the caller has it already."""
        jnd = jnd_map(x.unsqueeze(0))[0] if jnd is None else jnd
        bound = self.bound(jnd)
        ceiling = (jnd * max(self.jnd_budget, 1.0)).clamp(max=self.eps) * 255
        levels = torch.maximum(torch.minimum(delta, bound), -bound) * 255
        rounded = levels.round()
        return torch.where(rounded.abs() > ceiling, levels.trunc(), rounded) / 255


@dataclass(frozen=True)
class SpatialPGD:
    """Hyper-parameters of the spatial branch; `perturb` is the work. Every call starts its
    own views (a flip-and-shift view is seeded with `seed` per call), so a batch's result
    does not depend on what ran before it."""

    eps: float = 8 / 255
    step_size: float = 0.5 / 255
    steps: int = 30
    through_grey_view: bool = False
    augment_shift: int = 0
    seed: int = 0
    pad_to: int = 0

    def views(self) -> list[View]:
        views: list[View] = [grey_view] if self.through_grey_view else []
        if self.augment_shift > 0:
            views.append(FlipShiftView(self.augment_shift, self.seed))
        return views

    def perturb(self, x: torch.Tensor, target: torch.Tensor, ensemble: Ensemble,
                on_step: Callable[[int, float], None] | None = None,
                budget: torch.Tensor | None = None) -> torch.Tensor:
        """`budget`: a per-pixel bound (N x 1 x H x W, at most eps) replacing the uniform
        eps; the step shrinks in proportion so every pixel can reach its own bound."""
        eps: float | torch.Tensor = self.eps
        step: float | torch.Tensor = self.step_size
        if budget is not None:
            budget = budget.to(x)
            eps, step = budget, budget * (self.step_size / self.eps)
        return spatial_pgd(x, target, ensemble, eps, step, self.steps, on_step=on_step,
                           views=self.views(), pad_to=self.pad_to)
