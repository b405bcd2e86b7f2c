"""The photo folders the CPU verification runs use (docs/verification-photos.md, `PH`):

    python -m dune_gui.bench.photo_splits --data ../shared/data/imagenette --out PH

`PH/train`: the first 100 photos per class of the dataset's train folder (sorted by name);
`PH/val`: the next 50 per class, for every choice (never the test photos); `PH/test`: the
first 50 per class of its test folder. Copies, so the shared data is never written.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dune_gui.bench.samples import subset


def make_splits(data: Path, out: Path, train: int, val: int, test: int) -> dict[str, int]:
    """The three labeled folders under `out`; returns how many photos each holds."""
    for name in ("train", "val", "test"):
        if (out / name).exists():
            raise FileExistsError(f"{out / name} exists; give a new folder")
    return {"train": subset(data / "train", out / "train", train),
            "val": subset(data / "train", out / "val", val, skip=train),
            "test": subset(data / "test", out / "test", test)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True,
                        help="a dataset with train/ and test/ labeled folders")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--train", type=int, default=100, help="photos per class")
    parser.add_argument("--val", type=int, default=50, help="photos per class")
    parser.add_argument("--test", type=int, default=50, help="photos per class")
    args = parser.parse_args()
    counts = make_splits(args.data, args.out, args.train, args.val, args.test)
    print(", ".join(f"{name}: {n} photos" for name, n in counts.items()))


if __name__ == "__main__":
    main()
