"""Research tool: the colour search's class casts given other directions, written into a copy
of a protection cache, so that a colour-only run through the real engine exports them.

    python -m dune_gui.bench.cast_directions --cache STD_CACHE --out RANDOM_CACHE \
        --directions random --seed 16
    dune-cli protect PH/train PH/rand-cast --level standard --mode colour \
        --cache-dir RANDOM_CACHE --device cpu

It asks whether aiming each class's cast at its target class (the search) is what makes a
victim learn the cast, or only the cast's size and the classes' differences. Every variant
keeps the searched casts' sizes (Euclidean lengths over the colour values), so the
distortion stays close to the searched one's:

- `random`: each class's cast keeps its size and points in a direction drawn uniformly on
  the sphere (seeded);
- `spread`: each class's size, the directions evenly spread over the sphere (a Fibonacci
  lattice; one colour per class only), as far apart as K directions can be;
- `permuted`: the searched casts themselves, handed round the classes (a derangement, so no
  class keeps its own): the same set of colours, none aimed at its class's target.

The copy's surrogates are the source's, and the colour cache file keeps its name (the cache
key does not depend on the offsets), so the run loads the new casts instead of searching.
Not a protection method: a measurement.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
from pathlib import Path

import torch

DIRECTIONS = ("random", "spread", "permuted")


def fibonacci_sphere(count: int) -> torch.Tensor:
    """`count` unit vectors in 3-D spread nearly evenly over the sphere."""
    golden = math.pi * (3.0 - math.sqrt(5.0))
    rows = []
    for i in range(count):
        z = 1.0 - 2.0 * (i + 0.5) / count
        r = math.sqrt(max(0.0, 1.0 - z * z))
        rows.append([r * math.cos(golden * i), r * math.sin(golden * i), z])
    return torch.tensor(rows)


def derangement(count: int, generator: torch.Generator) -> list[int]:
    """A random permutation of range(count) that moves every index (count >= 2)."""
    while True:
        order = torch.randperm(count, generator=generator).tolist()
        if all(i != j for i, j in enumerate(order)):
            return order


def redirect(offsets: torch.Tensor, directions: str, seed: int) -> torch.Tensor:
    """K x V casts with other directions: each row's length kept (random, spread) or the
    rows themselves handed round (permuted)."""
    if directions == "permuted":
        return offsets[derangement(offsets.shape[0], torch.Generator().manual_seed(seed))]
    sizes = offsets.norm(dim=1, keepdim=True)
    generator = torch.Generator().manual_seed(seed)
    if directions == "random":
        unit = torch.randn(offsets.shape, generator=generator, dtype=offsets.dtype)
    elif directions == "spread":
        if offsets.shape[1] != 3:
            raise ValueError("spread directions need one colour per class (colour grid 1)")
        unit = fibonacci_sphere(offsets.shape[0]).to(offsets.dtype)
    else:
        raise ValueError(f"unknown directions {directions!r}; one of {', '.join(DIRECTIONS)}")
    unit = unit / unit.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return unit * sizes


def redirect_cache(source: Path, target: Path, directions: str, seed: int) -> list[Path]:
    """Copy the cache `source` to `target` with every colour cache file's casts redirected;
    returns the rewritten files."""
    if target.exists():
        raise FileExistsError(f"{target} exists; give a new folder")
    shutil.copytree(source, target)
    written = []
    for path in sorted((target / "colour").glob("*.json")):
        casts = json.loads(path.read_text(encoding="utf-8"))
        names = sorted(casts)
        offsets = torch.tensor([[float(v) for v in casts[name]] for name in names],
                               dtype=torch.float64)
        moved = redirect(offsets, directions, seed)
        path.write_text(json.dumps({name: moved[i].tolist() for i, name in enumerate(names)},
                                   indent=1), encoding="utf-8")
        written.append(path)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, required=True,
                        help="a cache folder after a run with a colour branch")
    parser.add_argument("--out", type=Path, required=True, help="new cache folder")
    parser.add_argument("--directions", choices=DIRECTIONS, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    written = redirect_cache(args.cache, args.out, args.directions, args.seed)
    if not written:
        raise SystemExit(f"no colour casts in {args.cache / 'colour'}")
    for path in written:
        print(f"rewrote {path}")


if __name__ == "__main__":
    main()
