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
    COLOUR_PRESETS,
    DEFAULTS,
    DEFENCES,
    INTERLEAVED,
    MANIFEST_NAME,
    PEERS,
    PRESETS,
    SETTINGS,
    STEP_TITLES,
    USER_ERRORS,
    VICTIM_LEARNING_RATES,
    CancelToken,
    EvaluateConfig,
    LogEvent,
    ProgressEvent,
    ProtectConfig,
    Setting,
    Shard,
    default_victim_results_dir,
    evaluate,
    format_duration,
    markdown_table,
    protect,
)


def _shard(text: str) -> Shard:
    try:
        return Shard.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _over255(text: str) -> float:
    """Accept 8, 8/255 or 0.0314 for budgets: values above 1 are read as /255."""
    if "/" in text:
        num, den = text.split("/", 1)
        return float(num) / float(den)
    value = float(text)
    return value / 255.0 if value >= 1.0 else value


def _int_or_auto(text: str) -> int:
    return 0 if text.strip().lower() == "auto" else int(text)


def _names(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def _shown_default(s: Setting) -> str:
    value = s.default
    if s.kind == "budget":
        return f"{value * 255:g}/255"
    if s.zero_means and value == 0:
        return s.zero_means
    if isinstance(value, tuple):
        return ",".join(value) or "none"
    return str(value)


def options_table() -> str:
    """The Markdown table of every option of the settings table (docs/cli.md holds it;
    a test keeps the two equal): `python -c "from dune_gui.cli import options_table as t;
    print(t())"`."""
    rows = ["| option | default | what it does |", "| --- | --- | --- |"]
    for s in SETTINGS:
        if s.cli:
            flag = s.cli if s.kind != "bool" else f"{s.cli} / --no-{s.cli[2:]}"
            rows.append(f"| `{flag}` | `{_shown_default(s)}` | {s.help} |")
    return "\n".join(rows)


def add_setting_options(parser: argparse.ArgumentParser) -> None:
    """One option per row of the settings table that has a flag; every default is None, so
    only what the user typed overrides a --config file."""
    for s in SETTINGS:
        if s.cli is None:
            continue
        help_text = f"{s.help} [default {_shown_default(s)}]"
        if s.kind == "bool":
            parser.add_argument(s.cli, dest=s.name, action=argparse.BooleanOptionalAction,
                                default=None, help=help_text)
        elif s.kind == "files":
            parser.add_argument(s.cli, dest=s.name, action="append", default=None,
                                metavar="[ARCH=]FILE", help=help_text + " (repeatable)")
        else:
            kinds = {"int": _int_or_auto if s.zero_means else int, "float": float,
                     "budget": _over255, "choice": str, "names": _names, "path": Path}
            extra: dict[str, Any] = {}
            if s.kind == "choice":
                extra["choices"] = s.choices
            if s.kind == "names":
                help_text += f"; comma separated from {', '.join(s.choices)}"
            parser.add_argument(s.cli, dest=s.name, type=kinds[s.kind], default=None,
                                help=help_text, **extra)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dune-cli", description="DUNE Protect: make a labeled image folder unlearnable.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "protect", help="write a protected copy of a labeled folder",
        description="Write a protected copy of INPUT (one subfolder per class) to OUTPUT. "
                    "Running again into the same OUTPUT protects only new or changed images "
                    "with the same surrogates and colour offsets (the folder's profile).")
    p.add_argument("input", type=Path, help="labeled folder: one subfolder per class")
    p.add_argument("output", type=Path, help="output folder (never inside INPUT)")
    p.add_argument("--config", type=Path, default=None,
                   help=f"settings file (JSON, as saved by the app, or a {MANIFEST_NAME}); "
                        "options given here override it")
    p.add_argument("--level", choices=tuple(PRESETS), default=None,
                   help="a protection level, as the app names them ("
                        + "; ".join(f"{name}: {preset.summary.rstrip('.')}"
                                    for name, preset in PRESETS.items())
                        + "). It sets several options at once, over --config; the options "
                          "given here override it. Without it, and without --config: the "
                          "defaults, which are the invisible level")
    p.add_argument("--colour-preset", choices=tuple(COLOUR_PRESETS), default=None,
                   help="sets the three colour limits at once, from subtle (least visible, "
                        "weakest colour shortcut) to strong (the paper's limits); explicit "
                        "limits given here override it")
    add_setting_options(p)
    p.add_argument("--save-config", type=Path, default=None,
                   help="also write the effective settings to this file")
    p.add_argument("--quiet", action="store_true", help="no progress bar, only the summary")
    many = p.add_argument_group(
        "across processes or machines",
        "protect one folder with N processes: --profile-only once, then --shard I/N for "
        "I = 1..N at the same time (same settings, same OUTPUT, a --cache-dir they all "
        "read), then once more without either: that run merges the shards' records into "
        "the manifest and finishes anything a failed shard left")
    excl = many.add_mutually_exclusive_group()
    excl.add_argument("--profile-only", action="store_true",
                      help="write the protection profile (surrogates, colour offsets, "
                           "manifest) and stop before protecting images")
    excl.add_argument("--shard", type=_shard, default=None, metavar="I/N",
                      help="protect only the I-th of N disjoint shares of the images")
    _add_evaluate(sub)
    return parser


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
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
                   help="victim architectures, comma separated: from scratch small, "
                        "mobilenet, resnet18, vgg, fast; ImageNet-pretrained lite0, lite2 "
                        "(fine-tuned end to end), lite0-probe, lite2-probe (linear probe)")
    p.add_argument("--epochs", type=int, default=d.epochs, help="victim training epochs")
    rates = VICTIM_LEARNING_RATES
    # SUPPRESS: no "(default: None)" after a help that says what the default is
    p.add_argument("--learning-rate", type=float, default=argparse.SUPPRESS,
                   help="victims' peak learning rate (SGD, one-cycle); default: each kind of "
                        f"victim at the rate that trains it best, {rates['scratch']:g} from "
                        f"scratch, {rates['fine-tune']:g} for a pretrained network "
                        f"fine-tuned, {rates['probe']:g} for a linear probe")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="victims' batch size")
    p.add_argument("--defence", default="none",
                   help=f"comma separated, or 'all': {', '.join(DEFENCES)}")
    p.add_argument("--peers", default="",
                   help=f"peer methods generated on --clean, comma separated: {', '.join(PEERS)}")
    p.add_argument("--lsp-psnr", type=float, default=None,
                   help="distortion budget of the LSP peer as a PSNR in dB (default: the "
                        "PSNR floor of the DUNE run's colour preset, else "
                        f"{DEFAULTS.psnr_min:g})")
    p.add_argument("--protect-config", type=Path, default=None,
                   help="settings (JSON or manifest) for generating the spatial/colour "
                        "ablations; default: the first --train folder's manifest")
    p.add_argument("--holdout", type=float, default=d.holdout,
                   help="fraction per class held out when there is no --test")
    p.add_argument("--working-size", type=int, default=d.working_size,
                   help="size small images are read at (the protection's working size)")
    p.add_argument("--victim-size", type=int, default=d.victim_size,
                   help="resolution victims train at; 0: from the folder (small images at "
                        "the working size, photos at 224 on a GPU, 128 on a CPU, trained on "
                        "random resized crops and tested on the centre crop)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default=d.device)
    p.add_argument("--fresh-victims", action="store_true",
                   help="train every victim anew, even one trained before on the same images "
                        "with the same recipe (whose kept result is otherwise reused)")
    p.add_argument("--report", type=Path, required=True,
                   help="folder for report.json, report.md and report.png")
    p.add_argument("--quiet", action="store_true")


def run_evaluate(args: argparse.Namespace) -> int:
    protected = []
    for spec in args.train:
        name, _, folder = spec.rpartition("=")
        protected.append((name or "dune", Path(folder)))
    defences = tuple(DEFENCES) if args.defence == "all" else tuple(
        x.strip() for x in args.defence.split(",") if x.strip())
    settings: dict[str, Any] = {}
    source = args.protect_config
    if source is None and protected and (protected[0][1] / MANIFEST_NAME).exists():
        source = protected[0][1] / MANIFEST_NAME
    if source is not None:
        settings = ProtectConfig.load(source).ablation_settings()
    config = EvaluateConfig(
        clean_dir=args.clean, protected=tuple(protected), test_dir=args.test,
        peers=tuple(x.strip() for x in args.peers.split(",") if x.strip()),
        defences=defences, archs=tuple(x.strip() for x in args.arch.split(",") if x.strip()),
        epochs=args.epochs, learning_rate=getattr(args, "learning_rate", None),
        batch_size=args.batch_size,
        seed=args.seed, working_size=args.working_size,
        victim_size=args.victim_size,
        holdout=args.holdout, device=args.device, report_dir=args.report,
        protect_settings=settings, lsp_psnr=args.lsp_psnr,
        victim_results_dir=None if args.fresh_victims else default_victim_results_dir())
    printer = ProgressPrinter(sys.stderr, args.quiet)
    token = CancelToken()
    previous = signal.signal(signal.SIGINT, lambda *_: token.cancel())
    try:
        report = evaluate(config, progress=printer.progress, log=printer.log, cancel=token)
    finally:
        signal.signal(signal.SIGINT, previous)
    sys.stdout.write(markdown_table(report))
    sys.stdout.write(f"Report written to {args.report}\n")
    return 0 if report.status == "completed" else 130


def config_from_args(args: argparse.Namespace) -> ProtectConfig:
    base: dict[str, Any] = {}
    if args.config is not None:
        base = ProtectConfig.load(args.config).to_dict()
    overrides: dict[str, Any] = {"input_dir": args.input, "output_dir": args.output}
    if args.level:
        overrides.update(PRESETS[args.level].values)
    if args.colour_preset:
        overrides.update(dataclasses.asdict(COLOUR_PRESETS[args.colour_preset]))
    for s in SETTINGS:
        value = getattr(args, s.name, None)
        if s.cli is not None and value is not None:
            overrides[s.name] = tuple(value) if s.kind == "files" else value
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
        # the perturbation is reported inside the writing step (one line, counted by the
        # images written), not as a second line alternating with it every batch
        if self.quiet or event.stage in INTERLEAVED:
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
        title = STEP_TITLES.get(event.stage, event.stage)
        width = 28
        frac = event.done / event.total if event.total else 1.0
        bar = "#" * int(frac * width) + "-" * (width - int(frac * width))
        eta = ""
        if event.eta_s is not None and not finished:
            eta = f" ETA {format_duration(event.eta_s)}"
        if event.run_eta_s is not None:
            eta += f" (run: {format_duration(event.run_eta_s)} left)"
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
        result = protect(config, progress=printer.progress, log=printer.log, cancel=token,
                         shard=args.shard, profile_only=args.profile_only)
    finally:
        signal.signal(signal.SIGINT, previous)
    out = sys.stdout
    if args.profile_only and result.status == "completed":
        out.write(f"Protection profile written: {result.manifest_path} (device "
                  f"{result.device}); now protect the images with --shard I/N, then once "
                  "more without it.\n")
        return 0
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
    if args.shard is not None:
        out.write(f"Shard {args.shard} done; when every shard is, run the command once more "
                  "without --shard to write the manifest.\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "protect":
            return run_protect(args)
        if args.command == "evaluate":
            return run_evaluate(args)
    except USER_ERRORS as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("aborted\n")
        return 130
    parser.print_help()
    return 1


if __name__ == "__main__":
    sys.exit(main())
