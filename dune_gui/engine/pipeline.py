"""The engine's two protection calls, composed from the stages in stages.py:

    protect(config, progress, log, cancel) -> ProtectResult    writes the protected copy
    preview(config, rels, ...) -> (classes, [PreviewImage])     a few images, in memory
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .colour import expand_offsets, offset_values
from .config import ProtectConfig
from .cpu_memory import releases_cpu_memory
from .data import FolderError, SkippedFile, decode_full, resize_to_working
from .eta import RunClock, read_rates, write_rates
from .export import (
    compose,
    original_jnd,
    output_names,
    quality_metrics,
    read_back,
    remove_stale_temporaries,
    to_pil,
)
from .profile import MANIFEST_NAME, ImageRecord, ManifestWriter, ProfileContent, open_profile
from .progress import Cancelled, CancelToken, LogCallback, ProgressCallback, Reporter
from .shards import Shard
from .stages import (
    Run,
    build_ensemble,
    change_limit,
    find_class_patterns,
    find_colour_offsets,
    find_noise,
    list_classes,
    noise_cached,
    patterns_cached,
    plan_work,
    protect_images,
    read_folder,
    spatial_deltas,
    surrogates_cached,
)


@dataclass
class ProtectResult:
    status: str  # "completed" | "cancelled"
    output_dir: Path
    manifest_path: Path
    classes: list[str]
    targets: dict[str, str]
    colour_offsets: dict[str, list[float]]
    protected: int  # written by this run
    reused: int  # already protected by an earlier run of the same profile
    skipped: list[SkippedFile]
    timings: dict[str, float] = field(default_factory=dict)
    device: str = "cpu"
    label_shift: int = 0


def check_locations(input_dir: Path, output_dir: Path) -> None:
    src, dst = input_dir.resolve(), output_dir.resolve()
    if dst == src or dst.is_relative_to(src):
        raise FolderError("the output folder may not be the input folder or inside it "
                          f"({dst} is inside {src}); choose a folder elsewhere")
    if src.is_relative_to(dst):
        raise FolderError(f"the output folder {dst} contains the input folder; choose a "
                          "separate folder so outputs can never overwrite originals")


def check_writable(output_dir: Path) -> None:
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".dune-write-test.", dir=output_dir)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise FolderError(f"cannot write to the output folder {output_dir}: "
                          f"{exc.strerror or exc}") from exc


@releases_cpu_memory
def protect(
    config: ProtectConfig,
    progress: ProgressCallback | None = None,
    log: LogCallback | None = None,
    cancel: CancelToken | None = None,
    *,
    shard: Shard | None = None,
    profile_only: bool = False,
) -> ProtectResult:
    """Protect `config.input_dir` into `config.output_dir`.

    `profile_only` stops once the folder's protection profile is written (surrogates,
    colour offsets, manifest); `shard` then protects one share of the images with it, in
    parallel with the other shares (shards.py); a last ordinary call merges them.

    Raises FolderError / ProfileMismatch / SurrogateError for problems found before any image
    is written. A cancel returns normally with status "cancelled" after the current batch;
    the manifest then lists what finished, and the same call resumes the run.
    """
    run = Run.start(config, Reporter(progress, log, cancel))
    classes: list[str] = []
    shift = 0
    offsets = None
    skipped: list[SkippedFile] = []
    count = None
    status = "completed"
    try:
        check_locations(config.input_dir, config.output_dir)
        scan, shift = list_classes(config)
        classes = scan.classes
        profile = open_profile(config, classes, run.reporter)
        run.choose_working_size(scan, profile)
        run.choose_steps(profile)
        run.choose_architectures(profile)
        run.choose_surrogate_epochs(scan, profile)
        folder = read_folder(run, scan, shift, profile,
                             lambda: (surrogates_cached(run, profile)
                                      and patterns_cached(run, profile)
                                      and noise_cached(run, profile)), shard)
        skipped = folder.skipped
        check_writable(config.output_dir)
        plan = plan_work(run, folder, profile)
        if profile_only:
            plan.units.update(spatial=0.0, export=0.0)
        run.reporter.clock = RunClock(
            plan, read_rates(run.cache_dir, run.device.type, run.architectures))
        built = build_ensemble(run, folder, profile)
        offsets = find_colour_offsets(run, folder, built, profile)
        patterns = find_class_patterns(run, folder, profile)
        noise = find_noise(run, folder, profile)
        # a shard's neighbours are writing beside it: their temporaries are not stale
        stale = 0 if shard is not None else remove_stale_temporaries(config.output_dir)
        if stale:
            run.reporter.info(f"removed {stale} half-written file(s) left by an interrupted run")
        records = {sk.rel: ImageRecord(sk.rel, None, folder.class_of(sk.rel), "skipped",
                                       sk.reason) for sk in folder.skipped}
        content = ProfileContent(
            config, str(run.device), classes, shift, folder.targets, offsets,
            built.member_names, built.cache_keys,
            profile.created if profile is not None else None, run.working_size,
            run.surrogate_epochs, run.architectures,
            patterns.key if patterns is not None else None,
            patterns.aims if patterns is not None else None,
            noise.key if noise is not None else None,
            noise.accuracy if noise is not None else None)
        writer = ManifestWriter(content, records, shard)  # writes a new profile's manifest
        if profile_only:
            run.reporter.info(f"protection profile written to {writer.path}; protect the "
                              "images with --shard I/N, then once more without it")
        else:
            names = output_names([item.rel for item in folder.scan.items], config.format)
            count = protect_images(run, folder, built, offsets, patterns, noise, profile,
                                   writer, names)
    except Cancelled:
        status = "cancelled"
        run.reporter.info("cancelled; finished images are kept and the same command resumes")
    if run.reporter.clock is not None:  # the next run's estimate starts from these rates
        write_rates(run.cache_dir, run.device.type, run.architectures,
                    run.reporter.clock.rates())
    k = len(classes)
    if offsets is None:
        offsets = torch.zeros(k, offset_values(config.colour_grid))
    return ProtectResult(
        status=status, output_dir=config.output_dir,
        manifest_path=config.output_dir / MANIFEST_NAME, classes=classes,
        targets={c: classes[(i + shift) % k] for i, c in enumerate(classes)},
        colour_offsets={c: offsets[i].tolist() for i, c in enumerate(classes)},
        protected=count.written if count else 0, reused=count.reused if count else 0,
        skipped=skipped, timings=run.timings, device=str(run.device), label_shift=shift)


@dataclass
class PreviewImage:
    """One image protected in memory; arrays are H x W x 3 float32 in image space."""

    rel: str
    cls: str
    target: str  # the class it is steered toward ("": none, the error-minimising noise alone)
    original: np.ndarray
    spatial: np.ndarray  # signed spatial perturbation and class pattern as applied
    # (|.| <= eps + pattern_eps)
    colour: np.ndarray  # the class's offset: 3 G^2 values (channel, row, column); G = 1: RGB
    colour_field: np.ndarray  # H x W x 3: that offset spread over the image as the export adds it
    protected: np.ndarray  # exactly the pixels the export writes
    eps: float  # the bound of `spatial`
    pattern_eps: float  # the class pattern's part of it (0: no class pattern)
    metrics: dict[str, float]  # perceptual measures of the protected image (as the manifest)
    # the surrogate ensemble's class probabilities (empty: the settings train no ensemble)
    prediction_before: list[float]
    prediction_after: list[float]

    @property
    def psnr(self) -> float:
        return self.metrics["psnr"]

    @property
    def ssim(self) -> float:
        return self.metrics["ssim"]

    @property
    def delta_e(self) -> float:
        return self.metrics["delta_e"]


def preview(config: ProtectConfig, rels: list[str] | None = None, count: int = 4,
            progress: ProgressCallback | None = None, log: LogCallback | None = None,
            cancel: CancelToken | None = None) -> tuple[list[str], list[PreviewImage]]:
    """Protect a few images of `config.input_dir` in memory exactly as the export would
    (nothing is written except the surrogate and colour caches), with the parts separated
    for display and the ensemble's opinion before and after. Without `rels`, `count`
    images spread over the classes."""
    run = Run.start(config, Reporter(progress, log, cancel))
    scan, shift = list_classes(config)
    run.choose_working_size(scan, None)
    run.choose_steps(None)
    run.choose_architectures(None)
    run.choose_surrogate_epochs(scan, None)
    folder = read_folder(run, scan, shift, None, lambda: False)
    built = build_ensemble(run, folder, None)
    offsets = find_colour_offsets(run, folder, built, None)
    patterns = find_class_patterns(run, folder, None)
    noise = find_noise(run, folder, None)
    by_rel = {item.rel: item for item in folder.scan.items}
    items = [by_rel[r] for r in (rels or spread_over_classes(folder.scan.items, count))
             if r in by_rel]
    classes, rep = folder.classes, run.reporter
    # the error-minimising noise alone aims at no other class
    steers = config.uses_ensemble or patterns is not None
    out: list[PreviewImage] = []
    limit = change_limit(config)
    for n, item in enumerate(items):
        rep.check_cancel()
        rep.stage("spatial", n, len(items), f"previewing {item.rel}")
        deltas = spatial_deltas(run, folder, built, [item], noise)
        delta = deltas[0] if deltas is not None else None
        offset = offsets[item.label] if config.uses_colour else None
        shown_offset = offset if offset is not None else torch.zeros_like(offsets[0])
        image = decode_full(item.path, config.max_pixels)
        original = torch.from_numpy(image.rgb).permute(2, 0, 1)
        pattern = patterns.patterns[item.label] if patterns is not None else None
        jnd = original_jnd(image, delta, limit)
        spatial_only = compose(image, delta, None, pattern=pattern, limit=limit, jnd=jnd)
        protected = read_back(to_pil(compose(image, delta, offset, config.colour_headroom,
                                             pattern, limit, jnd), image), image)
        small = resize_to_working(protected.permute(1, 2, 0), run.working_size)
        x = folder.working[item.rel].float().div(255.0).unsqueeze(0).to(run.device)
        before, after = [], []
        if built.ensemble is not None:  # the error-minimising noise needs no surrogates
            seen = small.unsqueeze(0).to(run.device)
            before = built.ensemble.predict_proba(x)[0].cpu().tolist()
            after = built.ensemble.predict_proba(seen)[0].cpu().tolist()
        field_map = expand_offsets(shown_offset.unsqueeze(0), *image.rgb.shape[:2])[0]
        out.append(PreviewImage(
            rel=item.rel, cls=classes[item.label],
            target=classes[folder.targets[item.label]] if steers else "",
            original=image.rgb, spatial=(spatial_only - original).permute(1, 2, 0).numpy(),
            colour=shown_offset.numpy().copy(),
            colour_field=field_map.permute(1, 2, 0).numpy().copy(),
            protected=protected.permute(1, 2, 0).numpy(),
            eps=(config.eps if config.uses_spatial or not patterns else 0.0)
            + (config.pattern_eps if patterns is not None else 0.0),
            pattern_eps=config.pattern_eps if patterns is not None else 0.0,
            metrics=quality_metrics(original, protected, jnd),
            prediction_before=before, prediction_after=after))
    rep.stage("spatial", len(items), len(items), "preview ready")
    return classes, out


def spread_over_classes(items: list, count: int) -> list[str]:
    """Up to `count` relative paths, taking the first image of every class, then the
    second, and so on."""
    per_class: dict[int, list[str]] = {}
    for item in items:
        per_class.setdefault(item.label, []).append(item.rel)
    rels: list[str] = []
    depth = 0
    while len(rels) < count and any(depth < len(v) for v in per_class.values()):
        for label in sorted(per_class):
            if depth < len(per_class[label]) and len(rels) < count:
                rels.append(per_class[label][depth])
        depth += 1
    return rels
