"""Picture: the same images clean, protected by each method, and with LSP's patches.

    python -m dune_gui.bench.side_by_side --clean bench-out6/train \\
        --set "DUNE 16/255=bench-out5/dune" --set "+ colour field=bench-out6/dune" \\
        --lsp-psnr 19.2 --out assets/screenshots/field-cifar10.png

One row per picked image (the n-th image of a few classes), one column per set, enlarged
without smoothing so the perturbation is seen as it is; every column header carries the
mean PSNR of that set against the clean images, so equal budgets are seen to be equal.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageFont

from dune_gui.engine.evaluation import load_labeled, peer_generator
from dune_gui.engine.metrics import psnr
from dune_gui.engine.peers import apply_lsp
from dune_gui.engine.progress import Reporter

# (class index, n-th image of the class): varied content, flat and busy backgrounds
PICKS = ((0, 3), (1, 5), (2, 1), (4, 2), (7, 0), (8, 4))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clean", type=Path, required=True)
    parser.add_argument("--set", action="append", default=[], metavar="NAME=FOLDER")
    parser.add_argument("--lsp-psnr", type=float, default=None,
                        help="add an LSP column at this PSNR (dB): the patterns the "
                             "verification measured (seed 0)")
    parser.add_argument("--scale", type=int, default=5)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    reporter = Reporter(None, None, None)
    clean, classes = load_labeled(args.clean, None, 32, reporter)
    columns: list[tuple[str, torch.Tensor]] = [("original", clean.images)]
    for item in args.set:
        name, _, folder = item.partition("=")
        data, _ = load_labeled(Path(folder), classes, 32, reporter)
        if data.keys != clean.keys:
            raise SystemExit(f"{folder} does not hold the same images as {args.clean}")
        columns.append((name, data.images))
    if args.lsp_psnr is not None:
        lsp = apply_lsp(clean.images, clean.labels, len(classes),
                        peer_generator(seed=0), psnr=args.lsp_psnr)
        columns.append(("LSP", lsp))  # its header gets the PSNR it measures at, like the rest
    picks = [int((clean.labels == c).nonzero()[i]) for c, i in PICKS if c < len(classes)]
    tile, pad, head = 32 * args.scale, 8, 22
    sheet = Image.new("RGB", (pad + len(columns) * (tile + pad),
                              head + pad + len(picks) * (tile + pad)), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=13)
    reference = clean.images.float() / 255
    for ci, (name, images) in enumerate(columns):
        x = pad + ci * (tile + pad)
        if ci:
            name += f" ({float(psnr(reference, images.float() / 255).mean()):.1f} dB)"
        draw.text((x, 4), name, fill="black", font=font)
        for ri, k in enumerate(picks):
            image = Image.fromarray(images[k].permute(1, 2, 0).numpy())
            sheet.paste(image.resize((tile, tile), Image.NEAREST),
                        (x, head + pad + ri * (tile + pad)))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out)
    print(f"{args.out}: {sheet.size[0]} x {sheet.size[1]}")


if __name__ == "__main__":
    main()
