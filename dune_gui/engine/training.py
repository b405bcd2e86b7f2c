"""Supervised training of a classifier on an in-memory uint8 image tensor.

Used for the surrogate ensemble and for verification victims. All randomness (order,
augmentation, initialisation) comes from one `torch.Generator`, so a seed reproduces a
run exactly on the CPU.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .progress import Reporter

Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def random_crop_flip(x: torch.Tensor, generator: torch.Generator, pad: int | None = None
                     ) -> torch.Tensor:
    """The standard CIFAR augmentation (zero-padded random crop + horizontal flip), batched."""
    n, c, h, w = x.shape
    pad = max(1, h // 8) if pad is None else pad
    padded = F.pad(x, (pad, pad, pad, pad))
    oy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    ox = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    flip = torch.rand(n, generator=generator) < 0.5
    rows = oy[:, None] + torch.arange(h)
    cols = ox[:, None] + torch.arange(w)
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    batch = torch.arange(n)[:, None, None, None]
    chans = torch.arange(c)[None, :, None, None]
    return padded[batch, chans, rows[:, None, :, None], cols[:, None, None, :]]


def random_resized_crop_flip(x: torch.Tensor, generator: torch.Generator, size: int,
                            scale: tuple[float, float] = (0.35, 1.0),
                            ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> torch.Tensor:
    """The ImageNet-style training augmentation, batched: a random crop of `scale` of the
    area and `ratio` aspect, resized to size x size (bilinear), and a horizontal flip."""
    n = x.shape[0]
    area = torch.empty(n).uniform_(*scale, generator=generator)
    log_ratio = torch.empty(n).uniform_(math.log(ratio[0]), math.log(ratio[1]),
                                        generator=generator)
    aspect = torch.exp(log_ratio)
    w = torch.sqrt(area * aspect).clamp(max=1.0)  # fractions of the side
    h = torch.sqrt(area / aspect).clamp(max=1.0)
    cx = (torch.rand(n, generator=generator) * (1 - w) + w / 2) * 2 - 1
    cy = (torch.rand(n, generator=generator) * (1 - h) + h / 2) * 2 - 1
    flip = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = w * flip, cx
    theta[:, 1, 1], theta[:, 1, 2] = h, cy
    grid = F.affine_grid(theta.to(x), [n, x.shape[1], size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection",
                         align_corners=False)


def centre_crop(images: torch.Tensor, size: int) -> torch.Tensor:
    h, w = images.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    return images[..., top:top + size, left:left + size].contiguous()


def checkpoint_epochs(epochs: int, count: int) -> list[int]:
    """`count` epochs evenly spaced over training, always ending at the last (15, 5 ->
    3, 6, 9, 12, 15)."""
    return sorted({max(1, round(epochs * (i + 1) / count)) for i in range(count)})


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    x = images.float() / 255.0
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return tuple(mean.tolist()), tuple(std.tolist())


@dataclass
class TrainResult:
    checkpoints: dict[int, dict[str, torch.Tensor]]  # epoch -> state dict (CPU tensors)
    train_accuracy: dict[int, float]
    curve: list[float]  # per-epoch evaluation accuracy when eval data was given


@contextlib.contextmanager
def global_rng_seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Torch's global generator seeded from `seed` for the duration, the caller's state
    restored after. Layers that draw from it (dropout; stochastic depth in the pretrained
    EfficientNets) then train the same weights from the same seed; unseeded, two runs of
    one pretrained surrogate trained different weights (docs/performance.md, twelfth
    session)."""
    devices = []
    if device.type == "cuda":
        devices = [device.index if device.index is not None else torch.cuda.current_device()]
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def classifier_sgd(model: nn.Module, learning_rate: float, weight_decay: float = 5e-4
                   ) -> torch.optim.SGD:
    """The optimiser every network trained here from scratch uses: SGD with Nesterov
    momentum 0.9 (the schedule is the caller's)."""
    return torch.optim.SGD(model.parameters(), lr=learning_rate, momentum=0.9,
                           nesterov=True, weight_decay=weight_decay)


def train_classifier(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    epochs: int,
    generator: torch.Generator,
    device: torch.device,
    *,
    keep_epochs: list[int] | None = None,
    batch_size: int = 128,
    learning_rate: float = 0.05,
    weight_decay: float = 5e-4,
    augment: Augment | None = random_crop_flip,
    batch_transform: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]
    | None = None,
    eval_data: tuple[torch.Tensor, torch.Tensor] | None = None,
    reporter: Reporter | None = None,
    stage: str = "surrogates",
    progress_offset: int = 0,
    progress_total: int | None = None,
    recalibrate: bool = True,
) -> TrainResult:
    """SGD + Nesterov momentum with a one-cycle (warm-up, then linear decay) schedule.

    `images` is N x 3 x R x R uint8 on the CPU; batches move to `device` one at a time.
    `batch_transform(model, x, y)` may replace a batch after augmentation (adversarial
    training uses it). `keep_epochs` lists the epochs whose weights are returned.
    """
    keep = set(keep_epochs or [epochs])
    n = images.shape[0]
    steps_per_epoch = max(1, math.ceil(n / batch_size))
    total_steps = epochs * steps_per_epoch
    progress_total = progress_total or total_steps
    mean, std = channel_stats(images)
    normalise = getattr(model, "normalise", None)
    if normalise is not None:
        normalise.mean.copy_(torch.tensor(mean).view(1, 3, 1, 1))
        normalise.std.copy_(torch.tensor(std).view(1, 3, 1, 1))
    model.to(device=device, memory_format=torch.channels_last)
    use_cuda = device.type == "cuda"
    optimiser = classifier_sgd(model, learning_rate, weight_decay)
    warmup = max(1, int(0.15 * total_steps))

    def lr_at(step: int) -> float:
        if step < warmup:
            return learning_rate * (step + 1) / warmup
        return learning_rate * max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    scaler = torch.amp.GradScaler("cuda", enabled=use_cuda)
    checkpoints: dict[int, dict[str, torch.Tensor]] = {}
    train_acc: dict[int, float] = {}
    curve: list[float] = []
    # dropout and stochastic depth draw from the global generator
    with global_rng_seeded(generator.initial_seed(), device):
        step = 0
        for epoch in range(1, epochs + 1):
            model.train()
            order = torch.randperm(n, generator=generator)
            correct = 0
            for start in range(0, n, batch_size):
                if reporter is not None:
                    reporter.check_cancel()
                idx = order[start:start + batch_size]
                x = images[idx].float().div_(255.0)
                if augment is not None:
                    x = augment(x, generator)
                y = labels[idx]
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                x = x.contiguous(memory_format=torch.channels_last)
                if batch_transform is not None:
                    x = batch_transform(model, x, y)
                    model.train()
                for group in optimiser.param_groups:
                    group["lr"] = lr_at(step)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_cuda):
                    logits = model(x)
                    loss = F.cross_entropy(logits, y)
                optimiser.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimiser)
                scaler.update()
                correct += int((logits.argmax(1) == y).sum())
                step += 1
                if reporter is not None:
                    reporter.stage(stage, progress_offset + step, progress_total)
            train_acc[epoch] = correct / n
            if epoch in keep:
                if recalibrate:
                    recalibrate_batchnorm(model, images, device, batch_size)
                checkpoints[epoch] = {k: v.detach().to("cpu", copy=True)
                                      for k, v in model.state_dict().items()}
            if eval_data is not None:
                # scored in the training batch's size: the memory check before training
                # counted that size, and a larger inference batch only raises the peak
                curve.append(evaluate_accuracy(model, *eval_data, device=device,
                                               batch_size=batch_size))
    model.eval()
    return TrainResult(checkpoints, train_acc, curve)


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, images: torch.Tensor, device: torch.device,
                          batch_size: int = 128, max_images: int = 2048) -> None:
    """Replace BN running statistics by exact averages over (a strided subset of) the data.

    The exponential running averages lag far behind the weights early in training, which
    makes eval-mode logits explode (thousands), saturates the softmax and zeroes the
    gradients the spatial branch depends on. Recomputing them costs one forward pass.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    stride = max(1, images.shape[0] // max_images)
    subset = images[::stride][:max_images]
    model.train()
    for start in range(0, subset.shape[0], batch_size):
        chunk = subset[start:start + batch_size]
        if chunk.shape[0] < 2 and start > 0:
            break
        model(chunk.float().div_(255.0).to(device))
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    model.eval()


@torch.inference_mode()
def evaluate_accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                      device: torch.device, batch_size: int = 500) -> float:
    model.eval()
    correct = 0
    for start in range(0, images.shape[0], batch_size):
        x = images[start:start + batch_size].float().div_(255.0).to(device)
        if device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        y = labels[start:start + batch_size].to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            correct += int((model(x).argmax(1) == y).sum())
    return correct / max(1, images.shape[0])
