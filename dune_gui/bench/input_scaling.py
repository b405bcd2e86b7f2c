"""How the pretrained networks' ImageNet weights want their pixels scaled.

    python -m dune_gui.bench.input_scaling --folder ../shared/data/imagenette/train \
        [--size 224] [--per-class 100] [--nets lite0,lite2] [--out R.json]

The EfficientNet-Lite weights were trained in TensorFlow and converted; the package that
builds the architecture shows torchvision's ImageNet normalisation in its example, the
TensorFlow originals scaled pixels as (p - 127) / 128. Whichever the weights were trained
with is the one under which their own 1000-class ImageNet head is most accurate, so this
scores that head on imagenette photos (ImageNet images of ten ImageNet classes) under
both scalings. The engine uses the winner (pretrained.LITE_INPUT_MEAN / LITE_INPUT_STD).
Not a test: numbers depend on the data.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from dune_gui.engine.evaluation import LabeledTensors, load_labeled
from dune_gui.engine.pretrained import LITE_INPUT_MEAN, LITE_INPUT_STD, imagenet_network
from dune_gui.engine.progress import Reporter

# imagenette's folders -> their ImageNet-1k class index
IMAGENETTE_IMAGENET_INDEX = {
    "tench": 0, "English_springer": 217, "cassette_player": 482, "chain_saw": 491,
    "church": 497, "French_horn": 566, "garbage_truck": 569, "gas_pump": 571,
    "golf_ball": 574, "parachute": 701}
SCALINGS = {
    "torchvision ImageNet mean/std": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "(p - 127) / 128 (engine)": (LITE_INPUT_MEAN, LITE_INPUT_STD),
}


def imagenet_top1(net: torch.nn.Module, data: LabeledTensors, truth: torch.Tensor,
                  mean: tuple[float, ...], std: tuple[float, ...], batch: int = 100) -> float:
    m = torch.tensor(mean).view(1, 3, 1, 1)
    s = torch.tensor(std).view(1, 3, 1, 1)
    with torch.inference_mode():
        top = torch.cat([net((data.images[i:i + batch].float() / 255 - m) / s).argmax(1)
                         for i in range(0, len(data.images), batch)])
    return top.eq(truth).float().mean().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, required=True,
                        help="labeled folder whose classes are imagenette's")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--per-class", type=int, default=0,
                        help="first N photos of each class (0: all)")
    parser.add_argument("--nets", default="lite0,lite2")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    data, classes = load_labeled(args.folder, None, args.size, Reporter(None, None, None),
                                 photo=True)
    unknown = set(classes) - set(IMAGENETTE_IMAGENET_INDEX)
    if unknown:
        raise SystemExit(f"not imagenette classes: {', '.join(sorted(unknown))}")
    if args.per_class:
        keep = torch.cat([(data.labels == c).nonzero().flatten()[:args.per_class]
                          for c in range(len(classes))])
        data = LabeledTensors(data.images[keep], data.labels[keep],
                              [data.keys[i] for i in keep.tolist()])
    truth = torch.tensor([IMAGENETTE_IMAGENET_INDEX[c] for c in classes])[data.labels]
    result: dict[str, object] = {"folder": str(args.folder), "photos": len(truth),
                                 "size": args.size, "imagenet_top1": {}}
    for name in args.nets.split(","):
        net = imagenet_network(name)
        row = {label: round(imagenet_top1(net, data, truth, mean, std), 4)
               for label, (mean, std) in SCALINGS.items()}
        result["imagenet_top1"][name] = row  # type: ignore[index]
        print(name, json.dumps(row), flush=True)
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
