"""Benchmark: seconds per step of the class-pattern stage as the engine makes them (the
ImageNet aim networks and the shortcut learners in channels-last memory) against the same
steps with every network and input in plain contiguous memory, alternating the two in one
run. The images are random (speed does not depend on their content) at the patterns'
largest side, cropped to a 128-px victim's view, the level Against pretrained models'
networks, shortcut weight and learners.

    python -m dune_gui.bench.pattern_speed [--steps 5] [--rounds 3] [--device cpu]

Not a test: numbers depend on the machine; compare the ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from dune_gui.engine import class_patterns
from dune_gui.engine.class_patterns import (
    PATTERN_BATCH,
    PATTERN_MAX_SIDE,
    aim_heads,
    make_class_patterns,
)
from dune_gui.engine.presets import PRESETS

CLASSES = 10
VICTIM_SIDE = 128


class Contiguous(nn.Module):
    """A network held, and fed, in plain contiguous memory."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net.to(memory_format=torch.contiguous_format)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.contiguous())


@contextmanager
def contiguous_learner() -> Iterator[None]:
    """The shortcut learners built as the engine builds them, then moved to contiguous
    memory."""
    learner_class = class_patterns.ShortcutLearner
    original_init = learner_class.__init__

    def init(self: class_patterns.ShortcutLearner, k: int, seed: int,
             device: torch.device, *args: Any) -> None:
        original_init(self, k, seed, device, *args)
        self.nets = [Contiguous(net) for net in self.nets]
        self.optimisers = [class_patterns.classifier_sgd(net, self.LEARNING_RATE)
                           for net in self.nets]

    learner_class.__init__ = init  # type: ignore[method-assign]
    try:
        yield
    finally:
        learner_class.__init__ = original_init  # type: ignore[method-assign]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args()
    device = torch.device(args.device)
    level = PRESETS["pretrained"].values
    names = level["pattern_networks"]
    eps, weight = level["pattern_eps"], level["pattern_shortcut"]
    learners = level.get("pattern_learners", ("small",))
    generator = torch.Generator().manual_seed(0)
    images = (torch.rand(CLASSES * 40, 3, PATTERN_MAX_SIDE, PATTERN_MAX_SIDE,
                         generator=generator) * 255).to(torch.uint8)
    labels = torch.arange(CLASSES).repeat_interleave(40)
    aims = torch.arange(CLASSES) * 97
    engine_heads = aim_heads(names, device)
    plain_heads = [Contiguous(head) for head in aim_heads(names, device)]

    def seconds_per_step(heads: list[nn.Module], steps: int) -> float:
        start = time.perf_counter()
        make_class_patterns(images, labels, aims, heads, eps, steps, PATTERN_BATCH, 0,
                            victim_side=VICTIM_SIDE, shortcut_weight=weight,
                            learners=learners)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - start) / steps

    times: dict[str, list[float]] = {"contiguous": [], "channels_last": []}
    for round_ in range(args.rounds + 1):  # the first round warms up and is dropped
        steps = 1 if round_ == 0 else args.steps
        with contiguous_learner():
            plain = seconds_per_step(plain_heads, steps)
        engine = seconds_per_step(engine_heads, steps)
        if round_:
            times["contiguous"].append(plain)
            times["channels_last"].append(engine)
    plain_s = statistics.median(times["contiguous"])
    engine_s = statistics.median(times["channels_last"])
    print(json.dumps({
        "device": str(device), "threads": torch.get_num_threads(), "networks": list(names),
        "shortcut_weight": weight, "learners": list(learners), "batch": PATTERN_BATCH,
        "victim_side": VICTIM_SIDE,
        "contiguous_s_per_step": round(plain_s, 3),
        "channels_last_s_per_step": round(engine_s, 3),
        "channels_last_over_contiguous": round(engine_s / plain_s, 3),
        "rounds": {k: [round(v, 3) for v in vs] for k, vs in times.items()},
    }, indent=1))


if __name__ == "__main__":
    main()
