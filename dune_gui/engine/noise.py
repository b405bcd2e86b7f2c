"""Error-minimising noise: the spatial branch made for a network trained from scratch on
the folder (Huang et al., "Unlearnable Examples", ICLR 2021: the min-min).

A network trained from scratch on the protected images (the learner) and one
perturbation per image take turns. Each round the learner trains a few steps on the
images as protected so far; then every image's perturbation descends the learner's loss
on the image's *true* class, within its per-pixel bound, so that the perturbation, not the
picture, is what makes the class easy to learn. A victim trained from scratch on such
images learns the perturbations, and on clean images, without them, guesses.

Every round of the setting runs. Huang et al. stop once the learner is right on 99% of
the protected images; on CIFAR that stopped a constant-rate learner after 9 of 15 rounds
(its accuracy then fell and rose again), and the noise of all 15 misled a victim further
(docs/research-log.md, thirtieth session).

Unlike the targeted objective (spatial.py) an image's perturbation depends on every other
image through the learner, so the whole folder is worked together: the stage runs before
the export, and a round's state (`NoiseState`) is enough to resume after it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .attack import sign_pgd
from .class_patterns import ShortcutLearner
from .training import Augment, random_crop_flip
from .views import View

# The learner's training steps per round, of TRAIN_BATCH images each (Huang et al.'s 10),
# or of every image once in a folder of fewer: drawn with replacement, a 128-image batch
# from a few dozen pictures would show each of them several times per step, at several
# times the cost, where the rounds' time is what a small folder's preview waits for.
TRAIN_STEPS = 10
TRAIN_BATCH = 128


def train_batch(images: int) -> int:
    """The learner's batch in a folder of `images` images."""
    return max(1, min(TRAIN_BATCH, images))


# Pixels per PGD batch (and per batch of the learner's accuracy check): 256 images up to
# 64 x 64, fewer as images grow, so that the activations the steps keep for their gradient
# stay near the same size whatever the working resolution: at 128 px a quarter of the
# batch took two fifths of the memory and less time (docs/performance.md, thirty-first
# session). An image's steps do not depend on its batch's other images (the loss is
# summed per image, the learner is in eval mode), only the draws of the views do.
NOISE_BATCH = 256
NOISE_BATCH_PIXELS = NOISE_BATCH * 64 * 64

# The learner's SGD rate in the first round, falling on a cosine over the rounds: at a
# constant rate (the screen's, docs/research-log.md, twenty-ninth session) the learner
# was unsteady in the last rounds, right on 41% of the images after the 15th where it had
# been on 99%, and the images keep the noise made against it; falling, it settled at 100%
# and the noise misled a victim much further (thirtieth session).
LEARNING_RATE = 0.1


def learning_rate(round_: int, rounds: int) -> float:
    """The learner's rate in round `round_` (from 0) of `rounds`."""
    return LEARNING_RATE * 0.5 * (1 + math.cos(math.pi * round_ / rounds))


def noise_batch(height: int, width: int) -> int:
    """Images per PGD batch at this working size."""
    return max(1, min(NOISE_BATCH, NOISE_BATCH_PIXELS // (height * width)))


def image_passes(steps: int) -> float:
    """One image's work in a round, in image passes (a forward and backward pass counts
    three, as in eta.py): its steps, then the learner's accuracy check."""
    return 3.0 * steps + 1


def round_passes(images: int, steps: int) -> float:
    """A round's work in image passes: the learner's training steps, then every image's."""
    return 3.0 * TRAIN_STEPS * train_batch(images) + images * image_passes(steps)


@dataclass
class NoiseState:
    """What the rounds so far leave: every image's perturbation (N x 3 x H x W), the
    learner's and its optimiser's state, the draw generator's state and the learner's
    accuracy on the protected images after each round."""

    delta: torch.Tensor
    learner: list[dict]
    optimiser: list[dict]
    generator: torch.Tensor
    accuracy: list[float] = field(default_factory=list)

    @property
    def rounds(self) -> int:
        return len(self.accuracy)


class NoiseMaker:
    """The learner and the rounds (`rounds` in all: the learner's rate falls over them).
    `views(round)` gives the views a round's PGD steps see the images through (views.py:
    the grey view, the victim's flip and shift or crop), `augment` what the learner trains
    on (training.py: the victim's augmentation)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, classes: int, budget: torch.Tensor,
                 step: torch.Tensor, steps: int, learner: str, seed: int, rounds: int,
                 views: Callable[[int], Sequence[View]],
                 state: NoiseState | None = None,
                 augment: Augment = random_crop_flip) -> None:
        self.x, self.y, self.budget, self.step, self.steps = x, y, budget, step, steps
        self.views, self.rounds, self.augment = views, rounds, augment
        self.learner = ShortcutLearner(classes, seed + 3, x.device, (learner,), x.shape[-1],
                                       learning_rate=LEARNING_RATE)
        self.generator = torch.Generator().manual_seed(seed + 1)
        if state is None:
            self.state = NoiseState(torch.zeros_like(x), [], [], self.generator.get_state())
        else:  # resume: the learner as that round left it
            self.state = state
            for net, weights in zip(self.learner.nets, state.learner, strict=True):
                net.load_state_dict(weights)
            for optimiser, saved in zip(self.learner.optimisers, state.optimiser, strict=True):
                optimiser.load_state_dict(saved)
            self.generator.set_state(state.generator)

    @property
    def net(self) -> torch.nn.Module:
        return self.learner.nets[0]

    def run_round(self, tick: Callable[[float], None]) -> NoiseState:
        """One round: the learner trains, then every image's perturbation descends its
        loss. `tick(passes)` after each training step and each PGD step of a batch, with the
        image passes of the round done so far (of `round_passes`; it may raise to cancel:
        the state of the last finished round stands)."""
        x, y, n = self.x, self.y, len(self.y)
        delta = self.state.delta.clone()
        batch = noise_batch(*x.shape[-2:])
        per_step = train_batch(n)
        trained = 3.0 * TRAIN_STEPS * per_step
        for optimiser in self.learner.optimisers:
            for group in optimiser.param_groups:
                group["lr"] = learning_rate(self.state.rounds, self.rounds)
        self.net.train()
        for i in range(TRAIN_STEPS):
            idx = torch.randint(n, (per_step,), generator=self.generator).to(x.device)
            seen = self.augment((x[idx] + delta[idx]).clamp(0, 1), self.generator)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=x.device.type == "cuda"):
                loss = self.learner.loss(seen.contiguous(memory_format=torch.channels_last),
                                         y[idx])
            loss.backward()
            self.learner.learn()
            tick(3.0 * (i + 1) * per_step)
        self.net.eval()
        views = self.views(self.state.rounds)
        for start in range(0, n, batch):
            part = slice(start, start + batch)
            size = len(y[part])

            def stepped(t: int, _: torch.Tensor, start: int = start, size: int = size) -> None:
                tick(trained + 3.0 * self.steps * start + 3.0 * t * size)

            delta[part] = self.descend(x[part], y[part], delta[part], self.budget[part],
                                       self.step[part], views, stepped)
        parts = [slice(start, start + batch) for start in range(0, n, batch)]
        right = sum(int((self.predict((x[part] + delta[part]).clamp(0, 1)) == y[part]).sum())
                    for part in parts)
        tick(round_passes(n, self.steps))
        self.state = NoiseState(
            delta, [{k: v.clone() for k, v in net.state_dict().items()}
                    for net in self.learner.nets],
            [o.state_dict() for o in self.learner.optimisers], self.generator.get_state(),
            [*self.state.accuracy, right / n])
        return self.state

    def descend(self, x: torch.Tensor, y: torch.Tensor, delta: torch.Tensor,
                budget: torch.Tensor, step: torch.Tensor, views: Sequence[View],
                on_step: Callable[[int, torch.Tensor], None] | None = None) -> torch.Tensor:
        """The perturbations of one batch after `steps` sign steps down the learner's loss
        on the true classes, within the bound."""
        lower = (x - budget).clamp(0, 1)
        upper = (x + budget).clamp(0, 1)
        protected = sign_pgd((x + delta).clamp(0, 1), lambda v: self.loss(v, y), lower, upper,
                             step, self.steps, minimise=True, views=views, on_step=on_step)
        return protected - x

    def loss(self, v: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=v.device.type == "cuda"):
            logits = self.net(v.contiguous(memory_format=torch.channels_last))
        return F.cross_entropy(logits.float(), y, reduction="none")

    @torch.inference_mode()
    def predict(self, v: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=v.device.type == "cuda"):
            return self.net(v.contiguous(memory_format=torch.channels_last)).argmax(1)


def noise_for_new_images(x: torch.Tensor, y: torch.Tensor, classes: int,
                         budget: torch.Tensor, step: torch.Tensor, steps: int, learner: str,
                         seed: int, weights: list[dict], views: Sequence[View]
                         ) -> torch.Tensor:
    """Perturbations for images added to a folder after its noise was made: the same steps
    down the loss of the learner as the last round left it (N x 3 x H x W)."""
    maker = NoiseMaker(x, y, classes, budget, step, steps, learner, seed, 1, lambda _: views)
    for net, saved in zip(maker.learner.nets, weights, strict=True):
        net.load_state_dict(saved)
    maker.net.eval()
    out = torch.zeros_like(x)
    batch = noise_batch(*x.shape[-2:])
    for b in range(0, len(y), batch):
        part = slice(b, b + batch)
        out[part] = maker.descend(x[part], y[part], out[part], budget[part], step[part], views)
    return out
