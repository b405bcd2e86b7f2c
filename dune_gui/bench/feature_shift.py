"""Screening proxy: how far a protected photo folder moves a pretrained network's features.

    python -m dune_gui.bench.feature_shift --clean CLEAN --protected PROTECTED \
        [--judges lite0,lite2] [--size 128] [--offset 3] [--out R.json]

A pretrained adversary (fine-tune or linear probe) reads an ImageNet backbone's features.
For DUNE's shifted-label shortcut to mislead it, the protected copies of class y must
look like class y* = (y + offset) mod K *in that backbone's feature space*. This measures
exactly that, with no training: per judge backbone (frozen ImageNet weights), the class
means of the clean images' features (a nearest-class-mean classifier, the linear probe's
cheap cousin), then which class each protected copy's features are nearest to. Reported
per judge: the clean images' accuracy, the share of protected copies still nearest to
their own class and the share moved to their target class. One forward pass per photo and
judge, against a whole training per victim: a screen before victims are trained, never a
protection claim (that is `dune-cli evaluate`). A judge that is also a surrogate of the
protection measures white-box success, one that is not measures transfer.
Not a test: numbers depend on the data.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import torch.nn.functional as F

from dune_gui.engine.evaluation import load_labeled
from dune_gui.engine.pretrained import PretrainedClassifier
from dune_gui.engine.progress import Reporter


def backbone_features(model: PretrainedClassifier, images: torch.Tensor,
                      batch_size: int = 100) -> torch.Tensor:
    """Unit-length global-average-pooled features of uint8 images (N x 3 x S x S)."""
    out = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            x = images[start:start + batch_size].float().div_(255.0)
            out.append(F.normalize(model.pooled_features(x), dim=1))
    return torch.cat(out)


def class_means(features: torch.Tensor, labels: torch.Tensor, k: int) -> torch.Tensor:
    return F.normalize(torch.stack([features[labels == c].mean(0) for c in range(k)]), dim=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clean", type=Path, required=True)
    parser.add_argument("--protected", type=Path, action="append", required=True,
                        help="protected copy of --clean (repeatable)")
    parser.add_argument("--judges", default="lite0,lite2")
    parser.add_argument("--size", type=int, default=128,
                        help="short side the photos are resized to, centre square kept")
    parser.add_argument("--offset", type=int, default=3,
                        help="the protection's class shift (the manifest's targets)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    reporter = Reporter(None, None, None)
    clean, classes = load_labeled(args.clean, None, args.size, reporter, photo=True)
    k = len(classes)
    protected = {}
    for folder in args.protected:
        data, _ = load_labeled(folder, classes, args.size, reporter, photo=True)
        if data.keys != clean.keys:
            raise SystemExit(f"{folder} does not hold the same images as {args.clean}")
        protected[str(folder)] = data
    target = (clean.labels + args.offset) % k
    result: dict[str, object] = {"clean": str(args.clean), "images": len(clean.keys),
                                 "size": args.size, "offset": args.offset, "judges": {}}
    for name in args.judges.split(","):
        model = PretrainedClassifier(name, k, torch.Generator().manual_seed(0),
                                     frozen=True).eval()
        clean_features = backbone_features(model, clean.images)
        means = class_means(clean_features, clean.labels, k)
        row: dict[str, object] = {
            "clean_accuracy": round((clean_features @ means.T).argmax(1)
                                    .eq(clean.labels).float().mean().item(), 4)}
        for folder, data in protected.items():
            features = backbone_features(model, data.images)
            nearest = (features @ means.T).argmax(1)
            row[folder] = {
                "still_own_class": round(nearest.eq(clean.labels).float().mean().item(), 4),
                "moved_to_target": round(nearest.eq(target).float().mean().item(), 4),
                "mean_cosine_gain_toward_target": round(
                    ((features - clean_features) * means[target]).sum(1).mean().item(), 4)}
        result["judges"][name] = row  # type: ignore[index]
        print(name, json.dumps(row), flush=True)
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
