"""Draw victim accuracy against distortion for protection levels (the trade-off curve).

    python -m dune_gui.bench.tradeoff_plot --out docs/tradeoff-cifar10.png \
        --point "Invisible=31.8:31.8" --point "Standard=20.9:15.8" ...

Each point is NAME=PSNR_dB:ACCURACY_% (read them from the reports and manifests the
verification commands write; docs/verification.md lists them with their commands). Lower
and further right is better: less visible, and a victim closer to chance.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dune_gui.engine.plots import plot_tradeoff


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--point", action="append", required=True, metavar="NAME=PSNR:ACC")
    parser.add_argument("--chance", type=float, default=10.0)
    parser.add_argument("--clean", type=float, default=None, help="clean accuracy, %%")
    parser.add_argument("--title", default="Victim accuracy on clean test images vs distortion")
    args = parser.parse_args()
    points = []
    for spec in args.point:
        name, values = spec.split("=", 1)
        psnr, acc = (float(v) for v in values.split(":"))
        points.append((name, psnr, acc))
    plot_tradeoff(points, args.out, args.chance, args.clean, args.title)


if __name__ == "__main__":
    main()
