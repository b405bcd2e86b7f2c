"""Screening proxy: how much of a protection's change survives each training-time defence,
at the scale a victim sees, with no victim trained.

    python -m dune_gui.bench.defence_survival --clean CLEAN --protected NAME=DIR ... \
        [--defences jpeg10,grayscale,blur,posterise] [--victim-size 128] [--every 5]

A defence that works on the stored images (JPEG, grayscale, blur, posterise, ...) can only
leave a shortcut to learn if the protection's change outlives it. For every protected copy
and its clean source, read as `dune-cli evaluate` stores photos for a victim of
`--victim-size` (the short side resized with its margin, the centre square), this takes the
change d = protected - clean, and after the defence D the change left, D(protected) -
D(clean). Reported per set and defence: the share of d's direction left (the projection of
the change left onto d, over |d|^2: 1 untouched, 0 gone, what a victim could still learn
the protection's signature from) and the change left's size against d's (RMS ratio; above
the share where the defence turned the change into something else, e.g. JPEG's block
artefacts). Defences that act on training batches (noise, COIN, adversarial training) are
not stored-image transforms and are not screened here.

One decode per photo and a defence pass, against a whole training per victim: a screen for
which signatures are worth a victim, never a protection claim (that is `dune-cli evaluate`).
Not a test: numbers depend on the data.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from dune_gui.engine.defences import DEFENCES
from dune_gui.engine.evaluation import load_labeled
from dune_gui.engine.progress import Reporter
from dune_gui.engine.views import stored_photo_side

DEFAULT_DEFENCES = ("jpeg10", "grayscale", "blur", "posterise")


def survival(clean: torch.Tensor, protected: torch.Tensor, defence: str) -> dict[str, float]:
    """Share of the change's direction and size left after `defence` (N x 3 x R x R uint8
    pairs)."""
    transform = DEFENCES[defence].dataset
    if transform is None:
        raise ValueError(f"{defence} does not transform stored images")
    change = protected.double() - clean.double()
    left = transform(protected).double() - transform(clean).double()
    energy = float((change**2).sum())
    if energy == 0:
        return {"direction": 0.0, "size": 0.0}
    return {"direction": float((left * change).sum()) / energy,
            "size": (float((left**2).sum()) / energy) ** 0.5}


def paired(clean_dir: Path, protected_dir: Path, size: int, every: int
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """Every `every`-th protected copy and its clean source, as a victim's stored images."""
    reporter = Reporter(None, None, None)
    stored = stored_photo_side(size)
    clean, classes = load_labeled(clean_dir, None, stored, reporter, photo=True)
    protected, _ = load_labeled(protected_dir, classes, stored, reporter, photo=True)
    where = {key: i for i, key in enumerate(clean.keys)}
    pairs = [(where[key], i) for i, key in enumerate(protected.keys) if key in where][::every]
    if not pairs:
        raise ValueError(f"no image of {protected_dir} has a clean source in {clean_dir}")
    return (clean.images[torch.tensor([a for a, _ in pairs])],
            protected.images[torch.tensor([b for _, b in pairs])])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clean", type=Path, required=True)
    parser.add_argument("--protected", action="append", required=True, metavar="NAME=DIR")
    parser.add_argument("--defences", default=",".join(DEFAULT_DEFENCES))
    parser.add_argument("--victim-size", type=int, default=128)
    parser.add_argument("--every", type=int, default=1, help="screen every N-th photo")
    parser.add_argument("--out", type=Path, default=None, help="also write the rows as JSON")
    args = parser.parse_args()
    defences = [d.strip() for d in args.defences.split(",") if d.strip()]
    rows = []
    print("| set | " + " | ".join(f"{d}: direction / size left" for d in defences) + " |")
    print("| --- |" + " --- |" * len(defences))
    for spec in args.protected:
        name, _, folder = spec.rpartition("=")
        clean, protected = paired(args.clean, Path(folder), args.victim_size, args.every)
        cells = {d: survival(clean, protected, d) for d in defences}
        rows.append({"set": name or folder, "images": clean.shape[0], "survival": cells})
        print(f"| {name or folder} ({clean.shape[0]} photos) | " + " | ".join(
            f"{c['direction']:.2f} / {c['size']:.2f}" for c in cells.values()) + " |")
    if args.out is not None:
        args.out.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
