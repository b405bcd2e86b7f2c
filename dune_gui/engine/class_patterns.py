"""The aimed class pattern: the branch made against ImageNet-pretrained adversaries.

A network pretrained on ImageNet and then fine-tuned gently (or only probed linearly) on a
scraped folder keeps its ImageNet features; per-image perturbations made on surrogates
fine-tuned on the folder, and class-wise patterns aimed at nothing, barely move it
(docs/research-log.md, nineteenth and twentieth sessions). What does move it is a pattern
that points along those features: one pattern per class, shared by all its images, made so
that the frozen ImageNet heads of pretrained networks (never fine-tuned on the folder) read
the protected images of class y as the ImageNet class of its target class y*. A victim
that keeps ImageNet's features then finds class y where class y* should be.

Each folder class's ImageNet class is the first aim network's most frequent top-1 on its
clean images (no class names needed). The patterns are optimised with Adam over random
batches of the folder's images, each seen as a victim trains on it (the photo resized to
the side a victim's pipeline stores it at, then a random resized crop and flip,
`CropFlipView`), and clipped to +-eps after every step. They are made at the photos' own
resolution (up to a 224-px victim's stored side, `pattern_side`), not at the surrogates'
working size: a victim crops from the stored photo, so at a close crop it sees detail
finer than the working size, and a pattern made coarser and upsampled leaves that detail
unused. `place_pattern` lays a pattern over each image at the image's own size.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .models import PRETRAINED_ARCHS, build_model
from .pretrained import LITE_INPUT_MEAN, LITE_INPUT_STD, imagenet_network
from .training import classifier_sgd, global_rng_seeded
from .views import CropFlipView, View, stored_photo_side

# Images per optimisation step of the patterns.
PATTERN_BATCH = 40
# The JPEG view's quality with `pattern_jpeg`: the harshest recompression the
# verification's defences apply (defences.jpeg).
PATTERN_JPEG_QUALITY = 10
# The largest side patterns are made at: what a victim training at 224 px (the usual
# ImageNet crop) stores photos at, so such a victim sees no finer detail than the pattern
# has. Larger photos get the pattern upsampled.
PATTERN_MAX_SIDE = stored_photo_side(224)
# Images per class the patterns are made from: enough for a pattern shared by the whole
# class, and it bounds the memory of a large folder (decoded at up to PATTERN_MAX_SIDE).
PATTERN_IMAGES_PER_CLASS = 256


def pattern_side(natural_side: int) -> int:
    """The side patterns are made at for a folder of images about `natural_side` px."""
    return min(natural_side, PATTERN_MAX_SIDE)


def pattern_sample(labels: Sequence[int], per_class: int = PATTERN_IMAGES_PER_CLASS
                   ) -> list[int]:
    """Indices of at most `per_class` images of each class, evenly spaced in the folder's
    order (deterministic, and the whole class when it is small enough)."""
    chosen: list[int] = []
    for c in sorted(set(labels)):
        members = [i for i, label in enumerate(labels) if label == c]
        if len(members) > per_class:
            members = [members[j * len(members) // per_class] for j in range(per_class)]
        chosen.extend(members)
    return sorted(chosen)


class ImageNetHead(nn.Module):
    """A pretrained network with its own 1000-class ImageNet head, frozen, taking [0, 1]
    pixels (scaled inside as its weights expect)."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self.net = imagenet_network(name).requires_grad_(False)
        self.register_buffer("input_mean", torch.tensor(LITE_INPUT_MEAN).view(1, 3, 1, 1))
        self.register_buffer("input_std", torch.tensor(LITE_INPUT_STD).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.input_mean) / self.input_std)


def aim_heads(names: Sequence[str], device: torch.device) -> list[ImageNetHead]:
    # channels-last, as the surrogates: oneDNN's convolutions are faster in it on a CPU
    # too (docs/performance.md, twenty-seventh session); make_class_patterns feeds them so
    return [ImageNetHead(name).to(device, memory_format=torch.channels_last).eval()
            for name in names]


def imagenet_classes(head: nn.Module, images: torch.Tensor, labels: torch.Tensor, k: int,
                     batch: int = 64, side: int | None = None) -> torch.Tensor:
    """Each folder class's ImageNet class: the head's most frequent top-1 on its images
    (N x 3 x S x S uint8), seen at `side` x `side` (default: as they are). K ImageNet
    class indices."""
    device = next(head.parameters()).device

    def seen(chunk: torch.Tensor) -> torch.Tensor:
        x = chunk.to(device).float() / 255
        x = x if side in (None, x.shape[-1]) else _resized(x, side)
        return x.contiguous(memory_format=torch.channels_last)

    with torch.inference_mode():
        top = torch.cat([head(seen(images[i:i + batch])).argmax(1).cpu()
                         for i in range(0, len(images), batch)])
    return torch.tensor([int(torch.mode(top[labels == c]).values) for c in range(k)])


def pattern_learning_rate(eps: float, step: int, steps: int) -> float:
    """Large moves first, then settling inside the box: a cosine from eps / 10 down to
    eps / 125."""
    return 0.8 * (eps / 8 * 0.5 * (1 + math.cos(math.pi * step / steps)) + eps / 100)


def make_class_patterns(
    images: torch.Tensor,
    labels: torch.Tensor,
    aims: torch.Tensor,
    heads: Sequence[nn.Module],
    eps: float,
    steps: int,
    batch: int,
    seed: int,
    tick: Callable[[int, float], None] | None = None,
    views: Sequence[View] = (),
    victim_side: int | None = None,
    shortcut_weight: float = 0.0,
    learners: Sequence[str] = ("small",),
) -> torch.Tensor:
    """K x 3 x S x S patterns within +-eps for the images (N x 3 x S x S uint8) of K
    classes, class c aimed at ImageNet class aims[c]. `tick(step, aim_loss)` after every
    step (it may raise to cancel). Each image is seen as a victim training at `victim_side`
    sees it: resized to the side such a victim stores it at (never enlarged), `views`
    (views.py: e.g. the JPEG compression an adversary applies to what it stores),
    then a random crop resized to `victim_side` (default S) and a flip. With
    `shortcut_weight` networks of the architectures `learners`, trained from scratch
    alongside (`ShortcutLearner`), add their mean loss on the true classes, times the
    weight, to the aim's. The draws come from one
    generator seeded with `seed`, on the CPU, so a seed gives the same patterns on the
    same device."""
    device = next(heads[0].parameters()).device
    k, side = len(aims), images.shape[-1]
    victim_side = victim_side or side
    stored = min(side, stored_photo_side(victim_side))  # never enlarged
    generator = torch.Generator().manual_seed(seed)
    view = CropFlipView(seed + 1, size=victim_side)
    patterns = ((torch.rand(k, 3, side, side, generator=generator) * 2 - 1) * eps * 0.1
                ).to(device).requires_grad_(True)
    optimiser = torch.optim.Adam([patterns], lr=pattern_learning_rate(eps, 0, steps))
    aims = aims.to(device)
    learner = (ShortcutLearner(k, seed + 3, device, learners, victim_side)
               if shortcut_weight > 0 else None)
    for step in range(steps):
        idx = torch.randint(len(images), (batch,), generator=generator)
        y = labels[idx].to(device)
        # each image's pattern by a one-hot product, not by indexing: the gradient of an
        # index sums the batch's images in an order that varies from run to run on a CPU,
        # and the patterns would differ between two runs with one seed
        chosen = torch.einsum("nk,kchw->nchw", F.one_hot(y, k).float(), patterns)
        x = (images[idx].to(device).float() / 255 + chosen).clamp(0, 1)
        x = x if stored == side else _resized(x, stored)
        for transform in views:
            x = transform(x)
        seen = view(x).contiguous(memory_format=torch.channels_last)
        # bf16 on CUDA, as the surrogates and the spatial PGD run: the patterns, the
        # learner's weights and the losses stay float32 (autocast computes the
        # cross-entropy in float32)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
            aim_loss = sum(F.cross_entropy(head(seen), aims[y]) for head in heads) / len(heads)
            loss = aim_loss
            if learner is not None:
                loss = loss + shortcut_weight * learner.loss(seen, y)
        optimiser.zero_grad()
        loss.backward()
        if learner is not None:
            learner.learn(shortcut_weight)
        for group in optimiser.param_groups:
            group["lr"] = pattern_learning_rate(eps, step, steps)
        optimiser.step()
        with torch.no_grad():
            patterns.clamp_(-eps, eps)
        if tick is not None:
            tick(step + 1, float(aim_loss.detach()))
    return patterns.detach().cpu()


# The shortcut learners' SGD rate, constant: they never stop training.
LEARNING_RATE = 0.05


class ShortcutLearner:
    """Networks trained from scratch on the protected images while the patterns are
    made, as error-minimising noise is made (Huang et al., ICLR 2021): their mean loss on
    the true classes joins the patterns' objective, and the same backward trains them.
    Patterns that lower a learner's loss faster than the photos' content does are what a
    from-scratch victim learns the classes by, and clean photos, without them, leave it
    guessing. Learners of more than one architecture (`architectures`) share the term:
    a `vgg` beside `small` made patterns a from-scratch ResNet-18, never a learner, took
    up further, a `resnet18` did not (docs/research-log.md, twenty-seventh and
    twenty-eighth sessions); each adds its own forward and backward to every step.

    One forward and backward serve both: the patterns descend the loss the learners have
    before their step, and each learner steps on the gradient that backward leaves on its
    weights. Fitting first and scoring after with the weights held took a second pass
    and protected no better (docs/research-log.md, twenty-fifth and twenty-sixth
    sessions)."""

    def __init__(self, k: int, seed: int, device: torch.device,
                 architectures: Sequence[str] = ("small",), side: int = 32,
                 learning_rate: float = LEARNING_RATE) -> None:
        self.nets: list[nn.Module] = []
        for i, arch in enumerate(architectures):
            if arch in PRETRAINED_ARCHS:  # built here it would lack its ImageNet weights
                raise ValueError(f"a shortcut learner is trained from scratch; {arch!r} is "
                                 "pretrained")
            # the first learner's draws as when there was only one, so its patterns stay
            with global_rng_seeded(seed + 17 * i, device):
                self.nets.append(build_model(arch, k, side).to(
                    device, memory_format=torch.channels_last).train())
        # the victims' optimiser
        self.optimisers = [classifier_sgd(net, learning_rate) for net in self.nets]

    def loss(self, seen: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The learners' mean loss on `seen` against the true classes, differentiable in
        the images and in their weights (whose gradients are cleared here, ready for
        `learn`)."""
        for optimiser in self.optimisers:
            optimiser.zero_grad(set_to_none=True)
        return sum(F.cross_entropy(net(seen), y) for net in self.nets) / len(self.nets)

    def learn(self, weight: float = 1.0) -> None:
        """One step of each learner on the gradient a backward through `loss` left on its
        weights. Its own loss reached them multiplied by `weight` over the number of
        learners; the step divides that back out, so each trains as a victim does whatever
        weight the patterns give the term and however many learners share it."""
        share = weight / len(self.nets)
        for net, optimiser in zip(self.nets, self.optimisers, strict=True):
            if share != 1.0:
                for parameter in net.parameters():
                    if parameter.grad is not None:
                        parameter.grad.div_(share)
            optimiser.step()


def _resized(x: torch.Tensor, side: int) -> torch.Tensor:
    """Square images resized to `side` (antialiased when shrinking, as victims' pipelines
    resize)."""
    return F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False,
                         antialias=True)


def place_pattern(pattern: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """A 3 x S x S pattern over an image of `height` x `width`: scaled to the image's short
    side (so what a victim's aspect-keeping resize and crop sees is the pattern as it was
    made, not stretched) over the central square, mirrored beyond it along the long side."""
    short = min(height, width)
    square = F.interpolate(pattern.unsqueeze(0), size=(short, short), mode="bilinear",
                           align_corners=False)[0] if pattern.shape[-1] != short else pattern
    rows = _mirrored_indices(height, short)
    cols = _mirrored_indices(width, short)
    return square[:, rows][:, :, cols]


def _mirrored_indices(length: int, period: int) -> torch.Tensor:
    """Indices into 0..period-1 for 0..length-1, centred, reflected at both ends."""
    start = (length - period) // 2
    idx = (torch.arange(length) - start) % (2 * period)
    return torch.where(idx >= period, 2 * period - 1 - idx, idx)
