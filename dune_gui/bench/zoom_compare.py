"""Picture: one region of one photo as it is in several folders, side by side, enlarged
without smoothing, to see what a change looks like at 100% or 200% zoom.

    python -m dune_gui.bench.zoom_compare --image parachute/n03888257_10913 \
        --folder PH/train --folder PH/g38p10 --box 0,0,160,120 --zoom 2 --out zoom.png

`--image` is the photo's path inside each labeled folder without its extension (the
protected copies may be PNG where the source is JPEG); `--box` is left,top,right,bottom in
the photo's own pixels. Columns in the order of `--folder`, 8 px of white between them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

GAP = 8


def find_image(folder: Path, stem: str) -> Path:
    """The file for `stem` (relative path without extension) in `folder`, any extension."""
    rel = Path(stem)
    matches = sorted((folder / rel.parent).glob(rel.name + ".*"))
    if not matches:
        raise FileNotFoundError(f"no {stem}.* in {folder}")
    return matches[0]


def zoom_strip(folders: list[Path], stem: str, box: tuple[int, int, int, int], zoom: int
               ) -> Image.Image:
    tiles = []
    for folder in folders:
        with Image.open(find_image(folder, stem)) as img:
            region = img.convert("RGB").crop(box)
        tiles.append(region.resize((region.width * zoom, region.height * zoom),
                                   Image.Resampling.NEAREST))
    strip = Image.new("RGB", (sum(t.width for t in tiles) + GAP * (len(tiles) - 1),
                              max(t.height for t in tiles)), "white")
    x = 0
    for tile in tiles:
        strip.paste(tile, (x, 0))
        x += tile.width + GAP
    return strip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", required=True, help="path in the folders, no extension")
    parser.add_argument("--folder", action="append", type=Path, required=True)
    parser.add_argument("--box", default="0,0,160,120", help="left,top,right,bottom")
    parser.add_argument("--zoom", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    left, top, right, bottom = (int(v) for v in args.box.split(","))
    zoom_strip(args.folder, args.image, (left, top, right, bottom), args.zoom).save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
