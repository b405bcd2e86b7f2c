"""Benchmark: the default ensemble (its architectures x its checkpoints) with its batch
norms folded into the convolutions (what the engine runs) against the same members
unfolded, on the two stages that query it: one PGD batch and one colour-search objective
call, at the default settings, alternating A and B in one run.

    python -m dune_gui.bench.member_speed [--repeats 3] [--size 32]

Not a test: numbers depend on the machine; compare the ratios.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import torch

from dune_gui.engine.colour import colour_objective
from dune_gui.engine.config import DEFAULTS, resolve_architectures
from dune_gui.engine.models import build_model
from dune_gui.engine.stages import GREY_VIEW_WEIGHT, pixel_budget, spatial_attack
from dune_gui.engine.surrogates import Ensemble, members_from_checkpoints

CPU = torch.device("cpu")


def default_ensemble(size: int, fold_batch_norms: bool) -> Ensemble:
    """The default members, with BN statistics that are not the identity (as after
    training)."""
    members = []
    for arch in resolve_architectures(DEFAULTS.architectures, size):
        model = build_model(arch, 10, size, torch.Generator().manual_seed(0)).train()
        with torch.no_grad():
            for _ in range(3):
                model(torch.rand(32, 3, size, size))
        same = dict.fromkeys(range(1, DEFAULTS.checkpoints + 1), model.state_dict())
        members += members_from_checkpoints(arch, same, 10, size, CPU,
                                            fold_batch_norms=fold_batch_norms)
    return Ensemble(members, CPU)


def seconds(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", type=int, default=32)
    args = parser.parse_args()
    cfg, size = DEFAULTS, args.size
    ensembles = {"unfolded": default_ensemble(size, fold_batch_norms=False),
                 "folded": default_ensemble(size, fold_batch_norms=True)}
    sample = torch.rand(cfg.colour_sample, 3, size, size)
    offsets = (torch.rand(cfg.particles, 3 * cfg.colour_grid ** 2) * 2 - 1) * cfg.colour_init
    batch = torch.rand(cfg.batch_size, 3, size, size)
    targets = torch.randint(0, 10, (cfg.batch_size,))
    attack = spatial_attack(cfg, CPU)
    times: dict[str, dict[str, list[float]]] = {k: {"pgd": [], "colour": []} for k in ensembles}
    for _ in range(args.repeats + 1):  # the first round warms up and is dropped
        for name, ensemble in ensembles.items():
            objective = colour_objective(sample, 3, ensemble, cfg.colour, cfg.penalty_weight,
                                         grey_view_weight=GREY_VIEW_WEIGHT, headroom=True)
            times[name]["colour"].append(seconds(lambda o=objective: o(offsets)))
            times[name]["pgd"].append(seconds(lambda e=ensemble: attack.perturb(
                batch, targets, e, budget=pixel_budget(cfg, batch))))
    result: dict[str, object] = {"threads": torch.get_num_threads(), "size": size}
    for stage in ("pgd", "colour"):
        plain = statistics.median(times["unfolded"][stage][1:])
        folded = statistics.median(times["folded"][stage][1:])
        result[stage] = {"unfolded_s": round(plain, 3), "folded_s": round(folded, 3),
                         "speed_up": round(plain / folded, 2)}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
