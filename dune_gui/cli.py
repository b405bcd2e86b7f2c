"""dune-cli: the command line over the engine API."""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from . import __version__
from .engine import (
    ARCHITECTURES,
    COLOUR_PRESETS,
    CancelToken,
    ColourConstraints,
    FolderError,
    LogEvent,
    ProfileMismatch,
    ProgressEvent,
    ProtectConfig,
    SurrogateError,
    protect,
)
from .engine.progress import format_duration

STAGE_TITLES = {"scan": "Scanning", "surrogates": "Training surrogates",
                "colour": "Colour search", "spatial": "Spatial PGD", "export": "Export",
                "victims": "Training victim", "evaluate": "Victims done"}
DEFAULTS = ProtectConfig(input_dir=Path("."), output_dir=Path("."))


def _over255(text: str) -> float:
    """Accept 8, 8/255 or 0.0314 for budgets: values above 1 are read as /255."""
    if "/" in text:
        num, den = text.split("/", 1)
        return float(num) / float(den)
    value = float(text)
    return value / 255.0 if value >= 1.0 else value


def _fmt_255(value: float) -> str:
    return f"{value * 255:g}/255"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dune-cli", description="DUNE Protect: make a labeled image folder unlearnable.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    d = DEFAULTS
    p = sub.add_parser(
        "protect", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        help="write a protected copy of a labeled folder",
        description="Write a protected copy of INPUT (one subfolder per class) to OUTPUT. "
                    "Running again into the same OUTPUT protects only new or changed images "
                    "with the same surrogates and colour offsets (the folder's profile).")
    p.add_argument("input", type=Path, help="labeled folder: one subfolder per class")
    p.add_argument("output", type=Path, help="output folder (never inside INPUT)")
    p.add_argument("--config", type=Path, default=None,
                   help="settings file (JSON, as saved by the app, or a manifest.json); "
                        "options given here override it")
    p.add_argument("--mode", choices=("dune", "spatial", "colour"), default=None,
                   help=f"both branches, or one of the paper's ablations [default {d.mode}]")
    p.add_argument("--eps", type=_over255, default=None,
                   help=f"L-inf budget of the spatial part; '8' or '8/255' or 0.0314 "
                        f"[default {_fmt_255(d.eps)}]")
    p.add_argument("--step-size", type=_over255, default=None,
                   help=f"PGD step size [default {_fmt_255(d.step_size)}]")
    p.add_argument("--steps", type=int, default=None, help=f"PGD steps [default {d.steps}]")
    p.add_argument("--offset", type=int, default=None,
                   help=f"label shift s: target = (y + s) mod K [default {d.label_offset}]")
    p.add_argument("--no-grey-robust", action="store_false", dest="grey_robust", default=None,
                   help="optimise on the colour images only (by default both branches are "
                        "also optimised through a grayscale view, so the protection survives "
                        "training on grayscale copies)")
    p.add_argument("--no-pgd-augment", action="store_false", dest="pgd_augment", default=None,
                   help="plain PGD steps (by default every step scores the image through a "
                        "random flip and 2-pixel shift, as a victim's training sees it)")
    p.add_argument("--ensemble", default=None,
                   help="surrogate architectures, comma separated, from: "
                        f"{', '.join(ARCHITECTURES)} [default {','.join(d.architectures)}]")
    p.add_argument("--checkpoints", type=int, default=None,
                   help=f"checkpoints kept per architecture [default {d.checkpoints}]")
    p.add_argument("--epochs", type=int, default=None,
                   help=f"surrogate training epochs [default {d.epochs}]")
    p.add_argument("--surrogate", action="append", default=None, metavar="[ARCH=]FILE",
                   help="extra surrogate: state dict (.pt, loaded with weights_only), "
                        "TorchScript or ONNX; repeatable")
    p.add_argument("--working-size", type=int, default=None,
                   help=f"resolution the surrogates work at [default {d.working_size}]")
    p.add_argument("--colour-preset", choices=tuple(COLOUR_PRESETS), default=None,
                   help="colour constraint preset, subtle to strong [default strong = the "
                        "paper's PSNR/SSIM limits]")
    p.add_argument("--psnr-min", type=float, default=None,
                   help=f"minimum PSNR of the colour offset, dB [default {d.colour.psnr_min}]")
    p.add_argument("--ssim-min", type=float, default=None,
                   help=f"minimum SSIM of the colour offset [default {d.colour.ssim_min}]")
    p.add_argument("--delta-e-max", type=float, default=None,
                   help=f"maximum mean CIEDE2000 colour difference [default "
                        f"{d.colour.delta_e_max}]")
    p.add_argument("--colour-grid", type=int, default=None, metavar="G",
                   help="1: one RGB offset per class (the paper's); G > 1: a G x G field of "
                        "offsets per class, much stronger against JPEG, blur and COIN "
                        f"defences (README) [default {d.colour_grid}]")
    p.add_argument("--particles", type=int, default=None,
                   help=f"colour search particles [default {d.particles}]")
    p.add_argument("--iterations", type=int, default=None,
                   help=f"colour search iterations [default {d.iterations}]")
    p.add_argument("--colour-sample", type=int, default=None,
                   help=f"images per class scored by the colour search [default "
                        f"{d.colour_sample}]")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default=None,
                   help=f"compute device [default {d.device}: CUDA when present]")
    p.add_argument("--seed", type=int, default=None, help=f"random seed [default {d.seed}]")
    p.add_argument("--format", choices=("png", "keep"), default=None,
                   help=f"png (lossless) or keep the source format [default {d.format}]")
    p.add_argument("--quality", type=int, default=None,
                   help=f"JPEG/WebP quality with --format keep [default {d.quality}]")
    p.add_argument("--keep-metadata", action="store_true", default=None,
                   help="copy EXIF metadata to the outputs (ICC profiles are always kept)")
    p.add_argument("--keep-gps", action="store_false", dest="strip_gps", default=None,
                   help="with --keep-metadata, also keep the GPS location (stripped by "
                        "default)")
    p.add_argument("--batch-size", type=int, default=None,
                   help=f"images per PGD batch [default {d.batch_size}]")
    p.add_argument("--max-pixels", type=int, default=None,
                   help=f"skip images larger than this many pixels [default {d.max_pixels}]")
    p.add_argument("--cache-dir", type=Path, default=None,
                   help="where trained surrogates are cached [default: the user cache folder]")
    p.add_argument("--save-config", type=Path, default=None,
                   help="also write the effective settings to this file")
    p.add_argument("--quiet", action="store_true", help="no progress bar, only the summary")
    _add_evaluate(sub)
    return parser


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    from .engine.defences import DEFENCES
    from .engine.evaluation import DEFAULT_LSP_PSNR, PEERS, EvaluateConfig

    d = EvaluateConfig(clean_dir=Path("."))
    p = sub.add_parser(
        "evaluate", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        help="measure protection: train victims on protected data, test on clean images",
        description="Train fresh victim classifiers on each protected folder (and on the "
                    "clean folder, the reference), optionally under adversary defences and "
                    "next to peer protection methods, and report their clean-test accuracy.")
    p.add_argument("--train", action="append", default=[], metavar="[NAME=]DIR",
                   help="protected folder to test (repeatable); NAME defaults to 'dune'")
    p.add_argument("--clean", type=Path, required=True, help="the clean labeled folder")
    p.add_argument("--test", type=Path, default=None,
                   help="clean held-out test folder; without it a stratified part of --clean "
                        "is held out (and excluded from every training set)")
    p.add_argument("--arch", default=",".join(d.archs),
                   help="victim architectures, comma separated (small, mobilenet, resnet18, "
                        "vgg, fast)")
    p.add_argument("--epochs", type=int, default=d.epochs, help="victim training epochs")
    p.add_argument("--defence", default="none",
                   help=f"comma separated, or 'all': {', '.join(DEFENCES)}")
    p.add_argument("--peers", default="",
                   help=f"peer methods generated on --clean, comma separated: {', '.join(PEERS)}")
    p.add_argument("--lsp-psnr", type=float, default=None,
                   help="distortion budget of the LSP peer as a PSNR in dB (default: the "
                        "PSNR floor of the DUNE run's colour preset, else "
                        f"{DEFAULT_LSP_PSNR:g})")
    p.add_argument("--protect-config", type=Path, default=None,
                   help="settings (JSON or manifest) for generating the spatial/colour "
                        "ablations; default: the first --train folder's manifest")
    p.add_argument("--holdout", type=float, default=d.holdout,
                   help="fraction per class held out when there is no --test")
    p.add_argument("--working-size", type=int, default=d.working_size)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default=d.device)
    p.add_argument("--report", type=Path, required=True,
                   help="folder for report.json, report.md and report.png")
    p.add_argument("--quiet", action="store_true")


def run_evaluate(args: argparse.Namespace) -> int:
    from .engine.defences import DEFENCES
    from .engine.evaluation import EvaluateConfig, evaluate

    protected = []
    for spec in args.train:
        name, _, folder = spec.rpartition("=")
        protected.append((name or "dune", Path(folder)))
    defences = tuple(DEFENCES) if args.defence == "all" else tuple(
        x.strip() for x in args.defence.split(",") if x.strip())
    settings: dict[str, Any] = {}
    source = args.protect_config
    if source is None and protected and (protected[0][1] / "manifest.json").exists():
        source = protected[0][1] / "manifest.json"
    if source is not None:
        loaded = ProtectConfig.load(source).to_dict()
        settings = {k: loaded[k] for k in ProtectConfig.METHOD_FIELDS if k != "mode"}
    config = EvaluateConfig(
        clean_dir=args.clean, protected=tuple(protected), test_dir=args.test,
        peers=tuple(x.strip() for x in args.peers.split(",") if x.strip()),
        defences=defences, archs=tuple(x.strip() for x in args.arch.split(",") if x.strip()),
        epochs=args.epochs, seed=args.seed, working_size=args.working_size,
        holdout=args.holdout, device=args.device, report_dir=args.report,
        protect_settings=settings, lsp_psnr=args.lsp_psnr)
    printer = ProgressPrinter(sys.stderr, args.quiet)
    token = CancelToken()
    previous = signal.signal(signal.SIGINT, lambda *_: token.cancel())
    try:
        report = evaluate(config, progress=printer.progress, log=printer.log, cancel=token)
    finally:
        signal.signal(signal.SIGINT, previous)
    from .engine.evaluation import markdown_table

    sys.stdout.write(markdown_table(report))
    sys.stdout.write(f"Report written to {args.report}\n")
    return 0 if report.status == "completed" else 130


def config_from_args(args: argparse.Namespace) -> ProtectConfig:
    base: dict[str, Any] = {}
    if args.config is not None:
        base = ProtectConfig.load(args.config).to_dict()
    colour = dict(base.get("colour") or dataclasses.asdict(ColourConstraints()))
    if args.colour_preset:
        colour = dataclasses.asdict(COLOUR_PRESETS[args.colour_preset])
    for arg, key in (("psnr_min", "psnr_min"), ("ssim_min", "ssim_min"),
                     ("delta_e_max", "delta_e_max")):
        if getattr(args, arg) is not None:
            colour[key] = getattr(args, arg)
    overrides: dict[str, Any] = {"input_dir": args.input, "output_dir": args.output,
                                 "colour": colour}
    simple = {"mode": "mode", "eps": "eps", "step_size": "step_size", "steps": "steps",
              "offset": "label_offset", "grey_robust": "grey_robust",
              "pgd_augment": "pgd_augment",
              "checkpoints": "checkpoints", "epochs": "epochs",
              "working_size": "working_size", "particles": "particles",
              "colour_grid": "colour_grid",
              "iterations": "iterations", "colour_sample": "colour_sample", "device": "device",
              "seed": "seed", "format": "format", "quality": "quality",
              "keep_metadata": "keep_metadata", "strip_gps": "strip_gps",
              "batch_size": "batch_size",
              "max_pixels": "max_pixels", "cache_dir": "cache_dir"}
    for arg, key in simple.items():
        if getattr(args, arg) is not None:
            overrides[key] = getattr(args, arg)
    if args.ensemble is not None:
        overrides["architectures"] = tuple(a.strip() for a in args.ensemble.split(",")
                                           if a.strip())
        unknown = [a for a in overrides["architectures"] if a not in ARCHITECTURES]
        if unknown:
            raise ValueError(f"unknown architecture {', '.join(unknown)}; choose from "
                             f"{', '.join(ARCHITECTURES)}")
    if args.surrogate is not None:
        overrides["surrogate_files"] = tuple(args.surrogate)
    return ProtectConfig.from_dict(base, **overrides)


class ProgressPrinter:
    """One progress line per stage with rate and ETA; full lines when not on a terminal."""

    def __init__(self, stream: TextIO, quiet: bool = False) -> None:
        self.stream = stream
        self.quiet = quiet
        self.tty = stream.isatty()
        self.current: str | None = None
        self.last_print = 0.0

    def progress(self, event: ProgressEvent) -> None:
        if self.quiet:
            return
        now = time.monotonic()
        finished = event.total > 0 and event.done >= event.total
        if event.stage != self.current:
            if self.current is not None and self.tty:
                self.stream.write("\n")
            self.current = event.stage
            self.last_print = 0.0
        interval = 0.2 if self.tty else 5.0
        if not finished and now - self.last_print < interval:
            return
        self.last_print = now
        title = STAGE_TITLES.get(event.stage, event.stage)
        width = 28
        frac = event.done / event.total if event.total else 1.0
        bar = "#" * int(frac * width) + "-" * (width - int(frac * width))
        eta = ""
        if event.eta_s is not None and not finished:
            eta = f" ETA {format_duration(event.eta_s)}"
        text = f"{title:<20} [{bar}] {event.done}/{event.total}{eta} {event.message}"
        if self.tty:
            self.stream.write("\r" + text[:120].ljust(120))
            if finished:
                self.stream.write("\n")
                self.current = None
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def log(self, event: LogEvent) -> None:
        if self.quiet and event.level == "info":
            return
        if self.tty and self.current is not None:
            self.stream.write("\n")
            self.current = None
        prefix = {"warning": "warning: ", "error": "error: "}.get(event.level, "")
        self.stream.write(f"{prefix}{event.message}\n")
        self.stream.flush()


def run_protect(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    if args.save_config is not None:
        config.save(args.save_config)
    printer = ProgressPrinter(sys.stderr, args.quiet)
    token = CancelToken()

    def on_sigint(signum: int, frame: object) -> None:
        if token.cancelled:
            raise KeyboardInterrupt
        token.cancel()
        sys.stderr.write("\nstopping after the current batch (Ctrl-C again to abort now)\n")

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        result = protect(config, progress=printer.progress, log=printer.log, cancel=token)
    finally:
        signal.signal(signal.SIGINT, previous)
    out = sys.stdout
    out.write(f"{'Cancelled' if result.status == 'cancelled' else 'Done'}: "
              f"{result.protected} images protected now, {result.reused} already protected, "
              f"{len(result.skipped)} skipped (device {result.device})\n")
    for sk in result.skipped:
        out.write(f"  skipped {sk.rel}: {sk.reason}\n")
    if result.classes:
        out.write(f"Manifest: {result.manifest_path}\n")
    if result.timings:
        out.write("Time per stage: " + ", ".join(f"{k} {v:.1f}s"
                                                 for k, v in result.timings.items()) + "\n")
    if result.status == "cancelled":
        out.write("Run the same command again to finish the remaining images.\n")
        return 130
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "protect":
            return run_protect(args)
        if args.command == "evaluate":
            return run_evaluate(args)
    except (FolderError, ProfileMismatch, SurrogateError, ValueError, RuntimeError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("aborted\n")
        return 130
    parser.print_help()
    return 1


if __name__ == "__main__":
    sys.exit(main())
