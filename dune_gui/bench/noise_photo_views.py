"""Screen: the Invisible level's error-minimising noise made through the photo victims'
augmentation: every PGD step of the rounds sees the images through a random resized crop
and flip (views.CropFlipView: 35-100% of the area, as training.random_resized_crop_flip)
after the grey view, and the learner trains on random resized crops, instead of the
CIFAR victims' flip + 2-pixel shift and padded crop. Runs `dune-cli` with those two
functions replaced; everything else is the engine's (thirty-first session, research log).

    python -m dune_gui.bench.noise_photo_views protect INPUT OUTPUT [dune-cli options]
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from dune_gui import cli
from dune_gui.engine import noise, stages
from dune_gui.engine.config import ProtectConfig
from dune_gui.engine.training import random_resized_crop_flip
from dune_gui.engine.views import CropFlipView, View, grey_view


def photo_views(cfg: ProtectConfig) -> Callable[[int], list[View]]:
    return lambda round_: [grey_view, CropFlipView(cfg.seed + 100 + round_)]


if __name__ == "__main__":
    stages.noise_views = photo_views  # type: ignore[assignment]
    noise.random_crop_flip = (  # type: ignore[assignment]
        lambda x, g: random_resized_crop_flip(x, g, x.shape[-1]))
    sys.exit(cli.main(sys.argv[1:]))
