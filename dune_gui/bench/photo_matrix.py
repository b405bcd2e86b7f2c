"""Benchmark: protection of real photos against pretrained and from-scratch victims.

    python -m dune_gui.bench.photo_matrix --data ../shared/data/imagenette --per-class 250 \
        --test-per-class 100 --out bench-photo [--presets standard,strong] [--budget-s 520]

Copies a class-balanced subset of the train and test photos, protects the train subset at
each preset (working size = the photos' own 224 px; ensemble: an ImageNet-pretrained
EfficientNet-Lite0 fine-tuned on the folder plus a from-scratch `fast` net), then trains
victims that are not in the ensemble (EfficientNet-Lite2 fine-tuned end to end and as a
linear probe, and `small` from scratch) at the victim resolution under no defence, JPEG-10,
grayscale and blur, and reports clean-test accuracy next to each set's distortion measured
on the written full-resolution files (from the manifests). Reports are written as each
victim finishes, so a run cut short by `--budget-s` keeps what it measured.
Not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from dune_gui.bench.samples import subset
from dune_gui.engine import PRESETS, EvaluateConfig, LogEvent, ProtectConfig, evaluate, protect
from dune_gui.engine.evaluation import written_distortion

DEFENCES = ("none", "jpeg10", "grayscale", "blur")


def log(event: LogEvent) -> None:
    print(f"[{event.level}] {event.message}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--per-class", type=int, default=250)
    parser.add_argument("--test-per-class", type=int, default=100)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--presets", default="standard,strong")
    parser.add_argument("--ensemble", default="lite0,fast")
    parser.add_argument("--working-size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--pretrained-epochs", type=int, default=8)
    parser.add_argument("--scratch-epochs", type=int, default=20)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--budget-s", type=float, default=1e9,
                        help="skip stages that would start after this many seconds")
    args = parser.parse_args()
    start = time.monotonic()
    train, test = args.out / "train", args.out / "test"
    if not train.exists():
        subset(args.data / "train", train, args.per_class)
        subset(args.data / "test", test, args.test_per_class)
    summary: dict[str, object] = {"sets": {}}
    protected: list[tuple[str, Path]] = []
    for name in args.presets.split(","):
        if time.monotonic() - start > args.budget_s:
            break
        values = dict(PRESETS[name].values)
        # T steps of 2.5 eps / T: the measured T = 10, step eps / 4 recipe at any T
        values.update(steps=args.steps, step_size=2.5 * values["eps"] / args.steps)
        config = ProtectConfig(
            input_dir=train, output_dir=args.out / f"dune-{name}", working_size=args.working_size,
            architectures=tuple(args.ensemble.split(",")), checkpoints=2, epochs=6,
            device=args.device, cache_dir=args.out / "cache", batch_size=128, **values)
        t0 = time.monotonic()
        result = protect(config, log=log)
        summary["sets"][f"dune-{name}"] = {  # type: ignore[index]
            "seconds": round(time.monotonic() - t0, 1), "timings": result.timings,
            "distortion": written_distortion(result.manifest_path.parent),
            "settings": config.method_dict()}
        print(json.dumps(summary["sets"][f"dune-{name}"]), flush=True)  # type: ignore[index]
        protected.append((f"dune-{name}", config.output_dir))
        (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    for archs, epochs, folder in ((("lite2", "lite2-probe"), args.pretrained_epochs,
                                   "pretrained"), (("small",), args.scratch_epochs, "scratch")):
        if time.monotonic() - start > args.budget_s:
            break
        report = evaluate(EvaluateConfig(
            clean_dir=train, test_dir=test, protected=tuple(protected), defences=DEFENCES,
            archs=archs, epochs=epochs, device=args.device,
            report_dir=args.out / f"report-{folder}"), log=log)
        summary[folder] = [{k: r[k] for k in ("train", "defence", "arch", "test_accuracy",
                                              "victim_size")} for r in report.runs]
        (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    summary["seconds"] = round(time.monotonic() - start, 1)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
