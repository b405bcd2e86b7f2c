"""One iterative sign-gradient attack loop, shared by every attack in the engine (the
spatial branch's targeted PGD and the adversarial-training defence's untargeted PGD), after
advertorch's `perturb_iterative`: the attacks differ only in their loss, direction, start,
box and views, which are arguments here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from .views import View

LossFn = Callable[[torch.Tensor], torch.Tensor]  # a view of x_t -> one loss per image


def sign_pgd(
    x_start: torch.Tensor,
    loss_fn: LossFn,
    lower: torch.Tensor,
    upper: torch.Tensor,
    step_size: float | torch.Tensor,
    steps: int,
    *,
    minimise: bool,
    views: Sequence[View] = (),
    on_step: Callable[[int, torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """x_{t+1} = clip_[lower, upper](x_t -+ a * sign(grad_x sum_i loss_i(view(x_t)))).

    The loss is summed over the batch, so each image's step does not depend on which other
    images share its batch. `views` are applied in order to x_t at every step (expectation
    over transformation with one draw per step). `lower` / `upper` is the box to project
    onto: the L-inf ball intersected with [0, 1], or a per-pixel budget. `step_size` may be
    a tensor (per pixel). Returns x_T, detached.
    """
    x_adv = x_start.detach().clone()
    sign = -1.0 if minimise else 1.0
    for t in range(steps):
        x_adv.requires_grad_(True)
        with torch.enable_grad():
            view = x_adv
            for transform in views:
                view = transform(view)
            per_image = loss_fn(view)
            (grad,) = torch.autograd.grad(per_image.sum(), x_adv)
        with torch.no_grad():
            x_adv = x_adv.detach() + sign * step_size * grad.sign()
            x_adv = torch.minimum(torch.maximum(x_adv, lower), upper)
        if on_step is not None:
            on_step(t + 1, per_image.detach())
    return x_adv.detach()


def linf_box(x: torch.Tensor, eps: float | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The L-inf ball of radius eps (a number or a per-pixel tensor) around x, within [0, 1]."""
    return (x - eps).clamp_(min=0.0), (x + eps).clamp_(max=1.0)
