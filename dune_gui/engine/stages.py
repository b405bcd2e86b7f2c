"""The stages of a protection run, each a function from explicit inputs to a value:

    read_folder(run, profile)                       -> FolderData      (scan)
    build_ensemble(run, folder, profile)            -> BuiltEnsemble   (surrogates)
    find_colour_offsets(run, folder, built, profile) -> K x 3G^2 tensor (colour)
    find_class_patterns(run, folder, profile)       -> ClassPatterns   (patterns)
    find_noise(run, folder, profile)                -> SampleNoise     (noise)
    protect_images(run, folder, built, offsets, patterns, noise, profile, writer, names)
                                                    -> ExportCount     (spatial + export)

`pipeline.protect` and `pipeline.preview` compose them; the manifest lives in profile.py.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from .atomic import atomic_torch_save
from .class_patterns import (
    PATTERN_BATCH,
    PATTERN_JPEG_QUALITY,
    aim_heads,
    imagenet_classes,
    make_class_patterns,
    pattern_sample,
    pattern_side,
)
from .colour import ColourOffsetSearch, describe_offset, offset_values
from .config import (
    AUTO_ENSEMBLE,
    ProtectConfig,
    resolve_architectures,
    resolve_steps,
    resolve_surrogate_epochs,
)
from .data import (
    FolderError,
    FolderScan,
    ImageError,
    ImageItem,
    SkippedFile,
    decode_full,
    decode_square_crop,
    decode_working,
    file_digest,
    natural_size,
    photo_resolution,
    scan_folder,
)
from .eta import (
    WorkPlan,
    colour_units,
    pattern_units,
    spatial_units,
    surrogate_units,
)
from .export import compose, export_image, original_jnd, write_json_atomic
from .metrics import jnd_map
from .models import multiply_accumulates
from .noise import (
    NoiseMaker,
    NoiseState,
    image_passes,
    noise_for_new_images,
    round_passes,
)
from .profile import ImageRecord, ManifestWriter, Profile
from .progress import Reporter
from .shards import Shard
from .spatial import PGD_SHIFT, ChangeLimit, SpatialPGD
from .surrogates import (
    Ensemble,
    SurrogateMember,
    cache_key,
    data_fingerprint,
    default_cache_dir,
    load_cached,
    load_surrogate_file,
    members_from_checkpoints,
    obtain_checkpoints,
    surrogate_cache_path,
)
from .training import Augment, checkpoint_epochs, random_crop_flip, random_resized_crop_flip
from .views import CropFlipView, JpegView, OneOfView, View, grey_view

# Share of the colour search's cross-entropy scored on the grayscale view with `grey_robust`.
GREY_VIEW_WEIGHT = 0.5


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("CUDA was requested but no CUDA device is available "
                           "(choose device 'auto' or 'cpu')")
    return torch.device(name)


@dataclass
class Run:
    """What every stage of one run shares: the settings, where work runs, the callbacks."""

    config: ProtectConfig
    reporter: Reporter
    device: torch.device
    cache_dir: Path
    working_size: int = 32  # the resolution the surrogates work at (auto resolved)
    # (`config.steps` is resolved too, by choose_steps)
    photos: bool = False  # the folder holds photos (victims train on random resized crops)
    surrogate_epochs: int = 0  # their training epochs (auto resolved)
    architectures: tuple[str, ...] = ()  # the surrogates trained (auto resolved)
    timings: dict[str, float] = field(default_factory=dict)
    # checkpoints already read from the cache by surrogates_cached, by cache key, so that
    # build_ensemble does not read the same files again
    loaded_checkpoints: dict[str, dict[int, dict[str, torch.Tensor]]] = field(
        default_factory=dict)

    @classmethod
    def start(cls, config: ProtectConfig, reporter: Reporter) -> Run:
        return cls(config, reporter, resolve_device(config.device),
                   config.cache_dir or default_cache_dir(), config.working_size,
                   config.epochs)

    def choose_surrogate_epochs(self, scan: FolderScan, profile: Profile | None) -> int:
        """`epochs`, or with 0 (auto): what a profile being extended was trained with (its
        surrogates are reused), else from the folder's size (resolve_surrogate_epochs).
        Call after choose_architectures."""
        if not self.config.uses_ensemble:
            self.surrogate_epochs = 0  # no surrogates trained
            return 0
        if self.config.epochs:
            self.surrogate_epochs = self.config.epochs
        elif profile is not None and profile.surrogate_epochs:
            self.surrogate_epochs = profile.surrogate_epochs
        else:
            self.surrogate_epochs = resolve_surrogate_epochs(
                0, len(scan.items), self.working_size, self.architectures,
                self.config.checkpoints)
            self.reporter.info(f"surrogates train {self.surrogate_epochs} epochs "
                               f"({len(scan.items)} images)")
        return self.surrogate_epochs

    def choose_architectures(self, profile: Profile | None) -> tuple[str, ...]:
        """The surrogate architectures as named, or at auto: those of a profile being
        extended (its surrogates are reused), else by the working size
        (resolve_architectures). Call after choose_working_size."""
        auto = self.config.architectures == (AUTO_ENSEMBLE,)
        recorded = profile.architectures if profile is not None else None
        if not self.config.uses_ensemble:
            self.architectures = ()  # no branch of these settings needs surrogates
        elif auto and recorded is not None:
            self.architectures = recorded
        else:
            self.architectures = resolve_architectures(self.config.architectures,
                                                       self.working_size)
            if auto:
                self.reporter.info(f"surrogates: {', '.join(self.architectures)}")
        return self.architectures

    def choose_steps(self, profile: Profile | None) -> int:
        """`steps`, or with 0 (auto): what a profile being extended was made with, else by
        the folder (resolve_steps: fewer per round for the noise on photos). From here on
        the run's settings carry the count resolved. Call after choose_working_size."""
        cfg = self.config
        recorded = profile.steps if profile is not None else 0
        steps = resolve_steps(cfg.steps or recorded, cfg.uses_noise, self.photos)
        if not cfg.steps and not recorded and cfg.uses_spatial:
            self.reporter.info(f"PGD steps: {steps}" + (" per round of the noise (photos)"
                                                        if cfg.uses_noise and self.photos
                                                        else ""))
        self.config = replace(cfg, steps=steps)
        return steps

    def choose_working_size(self, scan: FolderScan, profile: Profile | None) -> int:
        """`working_size`, or with 0 (auto): the size a profile being extended was worked
        at; else small images at their own size and photos at the size victims train at
        (224 on a GPU; 128 on a CPU, to keep a photo folder's run to hours, not days).
        Whether the folder holds photos (`photos`) is read from it whatever the size."""
        side, photo_size = photo_resolution([item.path for item in scan.items],
                                            self.config.max_pixels, self.device.type == "cuda")
        self.photos = bool(photo_size)
        if self.config.working_size:
            self.working_size = self.config.working_size
        elif profile is not None and profile.manifest.get("working_size"):
            self.working_size = int(profile.manifest["working_size"])
        else:
            self.working_size = photo_size or max(8, side)
            self.reporter.info(f"working size {self.working_size} px (images about {side} px "
                               "on their short side)")
        return self.working_size


# ---- scan ----------------------------------------------------------------------------
@dataclass
class FolderData:
    """The usable images of the folder, their digests and (where needed) their
    working-resolution copies, and the shifted label of every class."""

    scan: FolderScan
    digests: dict[str, str]
    working: dict[str, torch.Tensor]  # rel -> 3 x R x R uint8, dropped once exported
    skipped: list[SkippedFile]
    label_shift: int
    targets: list[int]  # class index -> its shifted (target) class index
    # the images this run protects: not done by an earlier run and, for a shard
    # (shards.py), in its share; decided once, while the files are hashed
    pending: frozenset[str] = frozenset()
    _fingerprint: str | None = field(default=None, repr=False)

    @property
    def classes(self) -> list[str]:
        return self.scan.classes

    def fingerprint(self) -> str:
        if self._fingerprint is None:  # asked by the surrogate keys, the plan, the colour cache
            self._fingerprint = data_fingerprint([(item.rel, self.digests[item.rel], item.label)
                                                  for item in self.scan.items])
        return self._fingerprint

    def class_of(self, rel: str) -> str | None:
        top = rel.split("/", 1)[0]
        return top if top in self.scan.classes and "/" in rel else None

    def working_copy(self, item: ImageItem, max_pixels: int, size: int) -> torch.Tensor:
        """The item's working-resolution copy, decoded now if it was not kept (raises
        ImageError)."""
        if item.rel not in self.working:
            self.working[item.rel] = decode_working(item.path, size, max_pixels)
        return self.working[item.rel]


def list_classes(config: ProtectConfig) -> tuple[FolderScan, int]:
    """Scan the folder (nothing decoded) and check it can be protected: at least two
    classes and a valid label shift. Returns the scan and the shift used."""
    scan = scan_folder(config.input_dir)
    k = len(scan.classes)
    if k < 2:
        raise FolderError(class_count_problem(k, config.input_dir))
    try:
        shift = config.label_shift(k)
    except ValueError as exc:
        raise FolderError(str(exc)) from exc
    return scan, shift


def class_count_problem(k: int, root: Path) -> str:
    return (f"found {k} class folder{'s' if k != 1 else ''} in {root}; a labeled folder needs "
            "at least two (one subfolder per class)")


def empty_classes_problem(empty: list[str]) -> str:
    return (f"class folder{'s' if len(empty) > 1 else ''} {', '.join(repr(e) for e in empty)} "
            f"{'have' if len(empty) > 1 else 'has'} no usable image")


def read_folder(run: Run, scan: FolderScan, shift: int, profile: Profile | None,
                cached_surrogates: Callable[[], bool], shard: Shard | None = None
                ) -> FolderData:
    """Hash every file and decode what later stages need at the working size: every image
    when surrogates must be trained, else only those still to protect (of `shard`'s share,
    positions counted in the sorted folder before any file is found unreadable)."""
    cfg, rep = run.config, run.reporter
    start = time.monotonic()
    assigned = None if shard is None else frozenset(
        item.rel for position, item in enumerate(scan.items) if shard.takes(position))
    need_all = profile is None or not cached_surrogates()
    if shard is not None and (profile is None or need_all or (
            cfg.uses_colour and profile.colour_offsets(scan.classes) is None)
            or (cfg.uses_pattern and profile.pattern_key is None)
            or (cfg.uses_noise and profile.noise_key is None)):
        # checked before hashing the folder: a shard only ever extends a complete profile
        raise FolderError(shard_needs_profile(cfg.output_dir))
    skipped = list(scan.skipped)
    digests: dict[str, str] = {}
    n = len(scan.items)
    todo: list[ImageItem] = []
    for i, item in enumerate(scan.items):
        rep.check_cancel()
        try:
            digests[item.rel] = file_digest(item.path)
        except ImageError as exc:
            skipped.append(SkippedFile(item.rel, str(exc)))
            continue
        if ((assigned is None or item.rel in assigned)
                and (profile is None
                     or not profile.is_done(item.rel, digests[item.rel], cfg.output_dir))):
            todo.append(item)
        if i % 64 == 0 or i == n - 1:
            rep.stage("scan", i + 1, 2 * n, "checking files")
    if profile is not None and need_all:
        rep.warning("the cached surrogates of this profile are gone; they are retrained on "
                    "the folder as it is now")
    wanted = scan.items if need_all else todo
    working: dict[str, torch.Tensor] = {}
    for i, item in enumerate(wanted):
        rep.check_cancel()
        if item.rel in digests:
            try:
                working[item.rel] = decode_working(item.path, run.working_size, cfg.max_pixels)
            except ImageError as exc:
                skipped.append(SkippedFile(item.rel, str(exc)))
                del digests[item.rel]
                rep.warning(f"skipped {item.rel}: {exc}")
        if i % 64 == 0 or i == len(wanted) - 1:
            rep.stage("scan", n + int((i + 1) * n / max(1, len(wanted))), 2 * n,
                      "decoding images")
    rep.stage("scan", 2 * n, 2 * n, "decoding images")
    scan.items = [item for item in scan.items if item.rel in digests]
    empty = [name for name, count in zip(scan.classes, scan.counts(), strict=True)
             if count == 0]
    if empty:
        raise FolderError(empty_classes_problem(empty))
    k = len(scan.classes)
    folder = FolderData(scan, digests, working, skipped, shift,
                        [(y + shift) % k for y in range(k)],
                        frozenset(item.rel for item in todo))
    run.timings["scan"] = time.monotonic() - start
    rep.info(f"{len(scan.items)} images in {k} classes; {len(skipped)} files skipped")
    if cfg.uses_spatial and cfg.steps * cfg.step_size < cfg.eps * (1 - 1e-6):
        # e.g. the 16/255 budget with the paper's 30 steps of 0.5/255: the sign steps
        # cannot travel further than 15/255, so the larger budget buys nothing
        rep.warning(
            f"{cfg.steps} steps of {cfg.step_size * 255:g}/255 reach at most "
            f"{cfg.steps * cfg.step_size * 255:g}/255, less than the budget of "
            f"{cfg.eps * 255:g}/255: raise the step size (eps / 16 at 30 steps, eps / 4 at 10) "
            "or the perturbation will not use its budget")
    return folder


def shard_needs_profile(output_dir: Path) -> str:
    return (f"a shard needs the folder's protection profile in {output_dir} and its "
            "surrogates in the cache folder: protect with --profile-only first, with the "
            "same settings and --cache-dir on storage every machine reads")


# ---- surrogates ----------------------------------------------------------------------
@dataclass
class BuiltEnsemble:
    ensemble: Ensemble | None  # None: no branch of the settings needs surrogates
    cache_keys: list[str]  # one per trained architecture: where its checkpoints are cached

    @property
    def member_names(self) -> list[str]:
        return [m.name for m in self.ensemble.members] if self.ensemble is not None else []


def surrogate_keys(run: Run, folder: FolderData, profile: Profile | None) -> list[str]:
    config = run.config
    if profile is not None and profile.cache_keys:
        return profile.cache_keys
    keep = checkpoint_epochs(run.surrogate_epochs, config.checkpoints)
    fingerprint = folder.fingerprint()
    return [cache_key(fingerprint, arch, len(folder.classes), run.working_size,
                      run.surrogate_epochs, keep, config.seed, config.train_batch_size,
                      config.learning_rate) for arch in run.architectures]


def surrogates_cached(run: Run, profile: Profile | None) -> bool:
    """Every checkpoint the profile's surrogates need is still in the cache (or none are
    needed)."""
    if profile is not None and not run.config.uses_ensemble:
        return True
    if profile is None or not profile.cache_keys:
        return False
    keep = checkpoint_epochs(run.surrogate_epochs, run.config.checkpoints)
    for key in profile.cache_keys:
        cached = load_cached(surrogate_cache_path(run.cache_dir, key))
        if cached is None or not all(e in cached for e in keep):
            return False
        run.loaded_checkpoints[key] = cached
    return True


def build_ensemble(run: Run, folder: FolderData, profile: Profile | None) -> BuiltEnsemble:
    cfg, rep = run.config, run.reporter
    if not cfg.uses_ensemble:
        return BuiltEnsemble(None, [])
    start = time.monotonic()
    k = len(folder.classes)
    epochs = run.surrogate_epochs
    keep = checkpoint_epochs(epochs, cfg.checkpoints)
    keys = surrogate_keys(run, folder, profile)
    complete = len(folder.working) == len(folder.scan.items)
    images = labels = None
    if complete:  # else everything needed is cached (an incremental run)
        images = torch.stack([folder.working[item.rel] for item in folder.scan.items])
        labels = torch.tensor([item.label for item in folder.scan.items], dtype=torch.long)
    steps_per_epoch = -(-len(folder.working) // cfg.train_batch_size)
    per_arch = epochs * max(1, steps_per_epoch)
    total = per_arch * len(run.architectures)
    members: list[SurrogateMember] = []
    for i, (arch, key) in enumerate(zip(run.architectures, keys, strict=True)):
        ckpts = obtain_checkpoints(
            arch, images, labels, key, run.cache_dir, k, run.working_size, epochs, keep,
            cfg.seed + 1000 * i, cfg.train_batch_size, cfg.learning_rate, run.device, rep,
            i * per_arch, total, loaded=run.loaded_checkpoints.pop(key, None))
        members += members_from_checkpoints(arch, {e: ckpts[e] for e in keep}, k,
                                            run.working_size, run.device)
    rep.stage("surrogates", total, total, "ensemble ready")
    for spec in cfg.surrogate_files:
        member = load_surrogate_file(spec, k, run.working_size, run.device)
        if not member.differentiable:
            rep.info(f"{member.name}: ONNX surrogate joins the colour search only (the "
                     "spatial branch needs gradients)")
        members.append(member)
    run.timings["surrogates"] = time.monotonic() - start
    return BuiltEnsemble(Ensemble(members, run.device), keys)


# ---- the plan, for the whole run's ETA ----------------------------------------------
# A `small` learner's forward and backward cost about half an aim network's on a CPU
# (docs/performance.md, twenty-sixth session: the learners' seconds per pattern step). The
# other learners, plain convolution stacks like it, are weighed against it by their
# arithmetic, which matched the measured `vgg` learner there; counting operations across
# the two families would not do (the aim networks' depthwise layers are slower per one).
SMALL_LEARNER_NETWORKS = 0.5


def shortcut_learner_networks(run: Run) -> float:
    """The shortcut term's learners in aim networks' worth of work per pattern step."""
    cfg = run.config
    if cfg.pattern_shortcut <= 0:
        return 0.0
    # the learners train on crops of the victim's side
    return learner_networks(cfg.pattern_learners, run.working_size)


def learner_networks(architectures: tuple[str, ...], side: int) -> float:
    """Networks trained from scratch, in aim networks' (ensemble members') worth of work."""
    small = multiply_accumulates("small", side)
    return sum(SMALL_LEARNER_NETWORKS * multiply_accumulates(arch, side) / small
               for arch in architectures)


def plan_work(run: Run, folder: FolderData, profile: Profile | None) -> WorkPlan:
    """The work the stages after the scan will do, in image passes (see eta.py): nothing
    for surrogates or offsets already cached, only the images not yet protected."""
    cfg = run.config
    keys = surrogate_keys(run, folder, profile)
    keep = checkpoint_epochs(run.surrogate_epochs, cfg.checkpoints)
    pixels = (run.working_size / 32) ** 2
    trained = [key for key in keys
               if not surrogate_cache_path(run.cache_dir, key).exists()]
    members = len(run.architectures) * len(keep) + len(cfg.surrogate_files)
    n = len(folder.scan.items)
    todo = sum(1 for item in folder.scan.items if item.rel in folder.pending)
    colour_done = (not cfg.uses_colour
                   or (profile is not None and profile.colour_offsets(folder.classes)
                       is not None)
                   or colour_cache_path(run, folder, keys).exists())
    per_class = min(cfg.colour_sample, max(folder.scan.counts()))
    units = {
        "surrogates": surrogate_units(run.surrogate_epochs, n, len(trained), pixels),
        "colour": 0.0 if colour_done else colour_units(
            len(folder.classes), cfg.iterations, cfg.particles, per_class, members,
            2 if cfg.grey_robust else 1, pixels),
        "patterns": pattern_units(cfg.pattern_steps, PATTERN_BATCH,
                                  len(cfg.pattern_networks) + shortcut_learner_networks(run),
                                  n, pixels)
        if cfg.uses_pattern and not (
            pattern_cache_path(run, pattern_key(run, folder, profile)).exists()) else 0.0,
        # the rounds' image passes (noise.round_passes), through the learner at this size
        "noise": cfg.noise_rounds * round_passes(n, cfg.steps) * pixels
        * learner_networks((cfg.noise_learner,), run.working_size)
        if cfg.uses_noise and not noise_cache_path(
            run, noise_key(run, folder, profile)).exists() else 0.0,
        "spatial": spatial_units(todo, cfg.steps, members, 1, pixels)
        if cfg.uses_spatial and not cfg.uses_noise else 0.0,
        "export": float(todo),
    }
    return WorkPlan(units)


# ---- colour offsets ------------------------------------------------------------------
def find_colour_offsets(run: Run, folder: FolderData, built: BuiltEnsemble,
                        profile: Profile | None) -> torch.Tensor:
    """K x 3G^2 class offsets: zeros without a colour branch, the profile's when extending
    one, cached ones when a preview already searched, else a particle swarm per class."""
    cfg, rep = run.config, run.reporter
    k = len(folder.classes)
    if not cfg.uses_colour:
        return torch.zeros(k, offset_values(cfg.colour_grid))
    stored = profile.colour_offsets(folder.classes) if profile is not None else None
    if stored is not None:
        rep.info("colour offsets taken from the existing protection profile")
        return stored
    cache_path = colour_cache_path(run, folder, built.cache_keys)
    cached = read_offsets(cache_path, folder.classes, offset_values(cfg.colour_grid))
    if cached is not None:
        rep.info("colour offsets loaded from cache")
        rep.stage("colour", 1, 1, "cached")
        return cached
    start = time.monotonic()
    search = ColourOffsetSearch(cfg.colour, cfg.particles, cfg.iterations, cfg.colour_bound,
                                cfg.colour_init, cfg.penalty_weight,
                                grey_view_weight=GREY_VIEW_WEIGHT if cfg.grey_robust else 0.0,
                                grid=cfg.colour_grid, headroom=cfg.colour_headroom)
    offsets = torch.zeros(k, offset_values(cfg.colour_grid))
    total = k * cfg.iterations
    for label, name in enumerate(folder.classes):
        rep.check_cancel()
        generator = torch.Generator().manual_seed(cfg.seed * 7919 + label)
        rels = [item.rel for item in folder.scan.items if item.label == label]
        pick = torch.randperm(len(rels), generator=generator)[:cfg.colour_sample]
        sample = torch.stack([folder.working[rels[int(i)]] for i in pick])
        sample = sample.float().div_(255.0).to(run.device)

        def tick(it: int, value: float, label: int = label, name: str = name) -> None:
            rep.check_cancel()
            rep.stage("colour", label * cfg.iterations + it, total,
                      f"class {name}: objective {value:.3f}")

        result = search.search(sample, folder.targets[label], built.ensemble, generator, tick)
        offsets[label] = result.best
        rep.info(f"colour offset for {name}: {describe_offset(result.best)}")
    run.timings["colour"] = time.monotonic() - start
    write_json_atomic({name: offsets[i].tolist() for i, name in enumerate(folder.classes)},
                      cache_path)
    return offsets


def colour_cache_path(run: Run, folder: FolderData, surrogate_cache_keys: list[str]) -> Path:
    """Offsets depend on the surrogates (whose keys hash the data) and the search settings;
    caching them lets a preview and the full run that follows share one search."""
    cfg = run.config
    key = json.dumps({
        "surrogates": surrogate_cache_keys,
        "files": [_file_identity(f) for f in cfg.surrogate_files],
        "data": folder.fingerprint(), "colour": vars(cfg.colour), "seed": cfg.seed,
        "offset": folder.label_shift, "particles": cfg.particles,
        "iterations": cfg.iterations, "sample": cfg.colour_sample, "bound": cfg.colour_bound,
        "init": cfg.colour_init, "penalty": cfg.penalty_weight, "size": run.working_size,
        # the grid joins the key only when it is not the spec's single offset, so the
        # offsets cached before the option existed are still found
        "grey": cfg.grey_robust, **({"grid": cfg.colour_grid} if cfg.colour_grid > 1
                                    else {}),
        **({"headroom": True} if cfg.colour_headroom else {})}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    return run.cache_dir / "colour" / f"{digest}.json"


def read_offsets(path: Path, classes: list[str], values: int) -> torch.Tensor | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        offsets = torch.tensor([[float(v) for v in data[name]] for name in classes])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return offsets if offsets.shape[1] == values else None


def _file_identity(spec: str) -> str:
    path = Path(spec.split("=", 1)[-1])
    try:
        return file_digest(path)
    except ImageError:
        return spec


# ---- class patterns ------------------------------------------------------------------
@dataclass
class ClassPatterns:
    """The aimed class patterns of a run (class_patterns.py): K x 3 x S x S at the side
    they were made at (class_patterns.pattern_side), the cache key they are kept under
    (the profile records it) and, per folder class, the ImageNet class its pattern aims at
    (its target class's)."""

    patterns: torch.Tensor
    key: str
    aims: list[int]


PATTERN_FORMAT = 4  # bump when the way patterns are made changes: cached ones are remade


def pattern_key(run: Run, folder: FolderData, profile: Profile | None) -> str:
    """What the patterns depend on: the folder's images and labels, the pattern settings,
    the seed, the label shift and the working size, which is the victim's crop they are
    made through (a profile's key when extending it). The side they are made at follows
    from the images."""
    if profile is not None and profile.pattern_key:
        return profile.pattern_key
    cfg = run.config
    key = json.dumps({
        "format": PATTERN_FORMAT, "data": folder.fingerprint(), "eps": cfg.pattern_eps,
        "steps": cfg.pattern_steps, "networks": list(cfg.pattern_networks),
        "seed": cfg.seed, "shift": folder.label_shift, "size": run.working_size,
        "batch": PATTERN_BATCH, "device": run.device.type,
        **({"jpeg": PATTERN_JPEG_QUALITY} if cfg.pattern_jpeg else {}),
        **({"shortcut": cfg.pattern_shortcut} if cfg.pattern_shortcut else {}),
        # keys made before there was a choice of learners had the one `small` learner
        **({"learners": list(cfg.pattern_learners)}
           if cfg.pattern_shortcut and cfg.pattern_learners != ("small",) else {})},
        sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def pattern_cache_path(run: Run, key: str) -> Path:
    return run.cache_dir / "patterns" / f"{key}.pt"


def read_patterns(path: Path, k: int) -> ClassPatterns | None:
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
        patterns, aims = data["patterns"], [int(a) for a in data["aims"]]
    except Exception:
        return None  # missing or damaged: made again, never trusted
    if (patterns.dim() != 4 or tuple(patterns.shape[:2]) != (k, 3)
            or patterns.shape[2] != patterns.shape[3] or len(aims) != k):
        return None
    return ClassPatterns(patterns.float(), path.stem, aims)


def patterns_cached(run: Run, profile: Profile | None) -> bool:
    """The class patterns a profile was made with are still in the cache (or not used)."""
    if not run.config.uses_pattern:
        return True
    return (profile is not None and profile.pattern_key is not None
            and pattern_cache_path(run, profile.pattern_key).exists())


def find_class_patterns(run: Run, folder: FolderData, profile: Profile | None
                        ) -> ClassPatterns | None:
    """The aimed class patterns (None without them): from the cache (a preview, an earlier
    run, the profile being extended) or made now from every image of the folder."""
    cfg, rep = run.config, run.reporter
    if not cfg.uses_pattern:
        return None
    k = len(folder.classes)
    key = pattern_key(run, folder, profile)
    path = pattern_cache_path(run, key)
    cached = read_patterns(path, k)
    if cached is not None:
        rep.info("class patterns loaded from cache")
        rep.stage("patterns", 1, 1, "cached")
        return cached
    if profile is not None and profile.pattern_key:
        rep.warning("the class patterns of this profile are gone from the cache; they are "
                    "made again from the folder as it is now")
    start = time.monotonic()
    images, labels = pattern_images(run, folder)
    heads = aim_heads(cfg.pattern_networks, run.device)
    own = imagenet_classes(heads[0], images, labels, k, side=run.working_size)
    aims = own[torch.tensor(folder.targets)]
    for name, target, aim in zip(folder.classes, folder.targets, aims.tolist(), strict=True):
        rep.info(f"class pattern for {name}: aimed at ImageNet class {aim} (what "
                 f"{cfg.pattern_networks[0]} sees most in {folder.classes[target]})")

    def tick(step: int, loss: float) -> None:
        rep.check_cancel()
        rep.stage("patterns", step, cfg.pattern_steps, f"aim loss {loss:.3f}")

    views = ([OneOfView([JpegView(PATTERN_JPEG_QUALITY)], cfg.seed + 2)]
             if cfg.pattern_jpeg else [])
    patterns = make_class_patterns(images, labels, aims, heads, cfg.pattern_eps,
                                   cfg.pattern_steps, PATTERN_BATCH, cfg.seed, tick, views,
                                   victim_side=run.working_size,
                                   shortcut_weight=cfg.pattern_shortcut,
                                   learners=cfg.pattern_learners)
    result = ClassPatterns(patterns, key, aims.tolist())
    atomic_torch_save({"patterns": patterns, "aims": result.aims}, path)
    run.timings["patterns"] = time.monotonic() - start
    return result


def pattern_images(run: Run, folder: FolderData) -> tuple[torch.Tensor, torch.Tensor]:
    """The images the patterns are made from (at most PATTERN_IMAGES_PER_CLASS of each
    class) as the central square of each at the patterns' side (N x 3 x S x S uint8), and
    their labels: the square a victim's aspect-keeping resize and crop sees, at the detail
    the photos have (class_patterns.pattern_side)."""
    items = folder.scan.items
    side = pattern_side(natural_size([item.path for item in items], run.config.max_pixels))
    chosen = [items[i] for i in pattern_sample([item.label for item in items])]
    run.reporter.info(f"class patterns made at {side} px from {len(chosen)} images")
    images, labels = [], []
    for i, item in enumerate(chosen):
        run.reporter.check_cancel()
        try:
            images.append(decode_square_crop(item.path, side, run.config.max_pixels))
        except ImageError:
            continue  # decoded once already; a file changed since is left out here
        labels.append(item.label)
        if i % 64 == 0:
            run.reporter.stage("patterns", 0, run.config.pattern_steps, "decoding images")
    return torch.stack(images), torch.tensor(labels)


# ---- error-minimising noise -----------------------------------------------------------
@dataclass
class SampleNoise:
    """The error-minimising noise of a run (noise.py): each image's perturbation at the
    working size (3 x R x R, by relative path), the cache key it is kept under (the
    profile records it) and the learner's accuracy on the protected images after each
    round."""

    deltas: dict[str, torch.Tensor]
    key: str
    accuracy: list[float]


NOISE_FORMAT = 7  # bump when the way the noise is made (or bounded) changes: cached noise is remade
# Stored as int16 steps of eps / NOISE_LEVELS, truncated toward zero: half the size of
# float32, finer than any 8-bit output can show, and never past the bound it was made in.
NOISE_LEVELS = 32767


def noise_key(run: Run, folder: FolderData, profile: Profile | None) -> str:
    """What the noise depends on: every image and label of the folder, the spatial
    settings, the seed, the working size and whether the folder holds photos (a profile's
    key when extending it)."""
    if profile is not None and profile.noise_key:
        return profile.noise_key
    cfg = run.config
    key = json.dumps({
        "format": NOISE_FORMAT, "data": folder.fingerprint(), "eps": cfg.eps,
        "jnd": cfg.jnd_budget, "steps": cfg.steps, "step": cfg.step_size,
        "rounds": cfg.noise_rounds, "learner": cfg.noise_learner, "seed": cfg.seed,
        "size": run.working_size, "grey": cfg.grey_robust, "augment": cfg.pgd_augment,
        "photos": run.photos, "device": run.device.type}, sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def noise_cache_path(run: Run, key: str) -> Path:
    return run.cache_dir / "noise" / f"{key}.pt"


def noise_rounds_path(run: Run, key: str) -> Path:
    """The state after the last finished round, while the rounds are under way."""
    return run.cache_dir / "noise" / f"{key}.rounds.pt"


def noise_cached(run: Run, profile: Profile | None) -> bool:
    """The noise a profile was made with is still in the cache (or not used)."""
    if not run.config.uses_noise:
        return True
    return (profile is not None and profile.noise_key is not None
            and noise_cache_path(run, profile.noise_key).exists())


def noise_views(cfg: ProtectConfig, photos: bool) -> Callable[[int], list[View]]:
    """The views a round's steps see the images through, drawn afresh each round: the
    targeted objective's (SpatialPGD.views: the grey view, the victim's flip and shift);
    on photos the victim's random resized crop and flip in place of the shift, as photo
    victims train (training.random_resized_crop_flip): noise made only through the shift
    hardly misled a photo victim (docs/research-log.md, thirty-first and thirty-second
    sessions)."""
    if not photos:
        attack = spatial_attack(cfg, torch.device("cpu"))  # its views need no device
        return lambda round_: replace(attack, seed=cfg.seed + round_).views()

    def photo_views(round_: int) -> list[View]:
        views: list[View] = [grey_view] if cfg.grey_robust else []
        if cfg.pgd_augment:
            views.append(CropFlipView(cfg.seed + round_))
        return views
    return photo_views


def noise_augment(photos: bool) -> Augment:
    """What the learner trains on: the images as their victims see them in training."""
    if photos:
        return lambda x, generator: random_resized_crop_flip(x, generator, x.shape[-1])
    return random_crop_flip


def noise_bounds(cfg: ProtectConfig, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each pixel's bound (N x 1 x H x W: the perceptual budget, or eps everywhere) and
    step (in proportion, as the targeted objective's). Photos get the whole bound: 0.8 of
    it kept their SSIM over 0.95 while the bound let bands through on black; without them
    the whole bound keeps it (docs/research-log.md, thirty-second and thirty-third
    sessions)."""
    budget = pixel_budget(cfg, x)
    if budget is None:
        budget = torch.full_like(x[:, :1], cfg.eps)
    return budget, budget * (cfg.step_size / cfg.eps)


def find_noise(run: Run, folder: FolderData, profile: Profile | None) -> SampleNoise | None:
    """The error-minimising noise (None without it): from the cache (a preview, an earlier
    run, the profile being extended) or made now from every image of the folder, resuming
    after the last round an interrupted run finished."""
    cfg, rep = run.config, run.reporter
    if not cfg.uses_noise:
        return None
    key = noise_key(run, folder, profile)
    stored = read_noise(noise_cache_path(run, key), cfg.eps)
    if stored is not None:
        rep.info("error-minimising noise loaded from cache")
        rep.stage("noise", 1, 1, "cached")
        return extend_noise(run, folder, stored, key)
    if profile is not None and profile.noise_key:
        rep.warning("the error-minimising noise of this profile is gone from the cache; it is "
                    "made again from the folder as it is now")
    start = time.monotonic()
    if run.photos:
        rep.info("photos: the error-minimising noise is made through random resized crops, as "
                 "models trained on photos see them")
    items = folder.scan.items
    x = torch.stack([folder.working[item.rel] for item in items]).float().div_(255.0)
    y = torch.tensor([item.label for item in items])
    budget, step = noise_bounds(cfg, x)
    rounds_path = noise_rounds_path(run, key)
    state = read_noise_rounds(rounds_path, x.shape)
    if state is not None:
        rep.info(f"error-minimising noise resumed after round {state.rounds}")
        state.delta = state.delta.to(run.device)
    maker = NoiseMaker(x.to(run.device), y.to(run.device), len(folder.classes),
                       budget.to(run.device), step.to(run.device), cfg.steps,
                       cfg.noise_learner, cfg.seed, cfg.noise_rounds,
                       noise_views(cfg, run.photos), state, noise_augment(run.photos))
    # progress counted in images worked (a training step counts as the images whose steps
    # cost as much), so that the share done, and the run's estimate, follows the time spent
    per_image = image_passes(cfg.steps)
    per_round = round_passes(len(items), cfg.steps) / per_image
    total = math.ceil(cfg.noise_rounds * per_round)
    while maker.state.rounds < cfg.noise_rounds:
        done = maker.state.rounds

        def tick(passes: float, done: int = done) -> None:
            rep.check_cancel()
            rep.stage("noise", min(total, int(done * per_round + passes / per_image)), total,
                      f"round {done + 1} of {cfg.noise_rounds}")

        state = maker.run_round(tick)
        atomic_torch_save({"delta": state.delta.cpu(), "learner": state.learner,
                           "optimiser": state.optimiser, "generator": state.generator,
                           "accuracy": state.accuracy}, rounds_path)
        rep.info(f"error-minimising noise, round {state.rounds}: the learner is right on "
                 f"{state.accuracy[-1]:.0%} of the protected images")
    rep.stage("noise", total, total, "done")
    state = maker.state
    levels = quantised_noise(state.delta.cpu(), cfg.eps)
    atomic_torch_save({"rels": [item.rel for item in items],
                       "digests": [folder.digests[item.rel] for item in items],
                       "levels": levels, "learner": state.learner,
                       "accuracy": state.accuracy}, noise_cache_path(run, key))
    rounds_path.unlink(missing_ok=True)
    run.timings["noise"] = time.monotonic() - start
    delta = dequantised_noise(levels, cfg.eps)
    return SampleNoise({item.rel: delta[i] for i, item in enumerate(items)}, key,
                       state.accuracy)


def quantised_noise(delta: torch.Tensor, eps: float) -> torch.Tensor:
    """int16 steps of eps / NOISE_LEVELS, truncated toward zero (never past the bound, and
    x + delta stays between x and where the rounds left it, so within [0, 1])."""
    return (delta * (NOISE_LEVELS / eps)).trunc_().clamp_(-NOISE_LEVELS, NOISE_LEVELS
                                                         ).to(torch.int16)


def dequantised_noise(levels: torch.Tensor, eps: float) -> torch.Tensor:
    return levels.float() * (eps / NOISE_LEVELS)


@dataclass
class StoredNoise:
    deltas: dict[str, tuple[str, torch.Tensor]]  # rel -> (digest, 3 x R x R)
    learner: list[dict]
    accuracy: list[float]


def read_noise(path: Path, eps: float) -> StoredNoise | None:
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
        delta = dequantised_noise(data["levels"], eps)
        deltas = {rel: (digest, delta[i]) for i, (rel, digest)
                  in enumerate(zip(data["rels"], data["digests"], strict=True))}
        return StoredNoise(deltas, list(data["learner"]), [float(a) for a in data["accuracy"]])
    except Exception:
        return None  # missing or damaged: made again, never trusted


def read_noise_rounds(path: Path, shape: torch.Size) -> NoiseState | None:
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
        state = NoiseState(data["delta"], list(data["learner"]), list(data["optimiser"]),
                           data["generator"], [float(a) for a in data["accuracy"]])
    except Exception:
        return None  # none, or damaged: the rounds start again
    return state if state.delta.shape == shape else None


def extend_noise(run: Run, folder: FolderData, stored: StoredNoise, key: str) -> SampleNoise:
    """The stored noise of every image it was made for, unchanged since; images added (or
    changed) after it was made and still to protect get theirs from its last learner."""
    cfg = run.config
    deltas = {rel: delta for rel, (digest, delta) in stored.deltas.items()
              if folder.digests.get(rel) == digest}
    new = [item for item in folder.scan.items
           if item.rel in folder.pending and item.rel not in deltas]
    if new:
        run.reporter.info(f"{len(new)} image(s) new since the noise was made get theirs from "
                          "its learner")
        x = torch.stack([folder.working_copy(item, cfg.max_pixels, run.working_size)
                         for item in new]).float().div_(255.0)
        budget, step = noise_bounds(cfg, x)
        y = torch.tensor([item.label for item in new])
        made = noise_for_new_images(
            x.to(run.device), y.to(run.device), len(folder.classes), budget.to(run.device),
            step.to(run.device), cfg.steps, cfg.noise_learner, cfg.seed, stored.learner,
            noise_views(cfg, run.photos)(len(stored.accuracy))).cpu()
        made = dequantised_noise(quantised_noise(made, cfg.eps), cfg.eps)
        deltas.update({item.rel: made[i] for i, item in enumerate(new)})
    return SampleNoise(deltas, key, stored.accuracy)


# ---- spatial + export ----------------------------------------------------------------
def spatial_attack(cfg: ProtectConfig, device: torch.device) -> SpatialPGD:
    """The spatial branch's hyper-parameters from the config: one place for the export,
    the preview and the benches, so a preview shows exactly what the export writes."""
    return SpatialPGD(cfg.eps, cfg.step_size, cfg.steps, through_grey_view=cfg.grey_robust,
                      augment_shift=PGD_SHIFT if cfg.pgd_augment else 0, seed=cfg.seed,
                      pad_to=cfg.batch_size if device.type == "cuda" else 0)


def spatial_deltas(run: Run, folder: FolderData, built: BuiltEnsemble,
                   items: list[ImageItem], noise: SampleNoise | None = None
                   ) -> torch.Tensor | None:
    """Working-resolution perturbations of `items` (None without a spatial branch): the
    error-minimising noise made before, or the targeted PGD now."""
    if not run.config.uses_spatial or not items:
        return None
    if noise is not None:
        return torch.stack([noise.deltas[item.rel] for item in items])
    assert built.ensemble is not None  # the targeted objective needs the ensemble
    x = torch.stack([folder.working[i.rel] for i in items]).float().div_(255.0)
    y = torch.tensor([folder.targets[i.label] for i in items])
    attack = spatial_attack(run.config, run.device)
    return attack.perturb(x.to(run.device), y.to(run.device), built.ensemble,
                          budget=pixel_budget(run.config, x)).cpu()


def change_limit(config: ProtectConfig) -> ChangeLimit | None:
    """The perceptual bound of the spatial change, which the PGD keeps at the working size
    and the export again in the file (None: eps alone, which the change brought up from
    the working size already keeps)."""
    return ChangeLimit(config.jnd_budget, config.eps) if config.jnd_budget > 0 else None


def pixel_budget(config: ProtectConfig, x: torch.Tensor) -> torch.Tensor | None:
    """Per-pixel bound of the spatial perturbation (N x 1 x H x W) with a perceptual budget:
    `jnd_budget` just-noticeable changes of each image at that place, never above eps;
    None: eps everywhere (the paper's L-inf ball)."""
    limit = change_limit(config)
    return None if limit is None else limit.bound(jnd_map(x))


@dataclass
class ExportCount:
    written: int  # by this run
    reused: int  # protected by an earlier run of the same profile


def export_workers(device: torch.device) -> int:
    """Threads that write a batch's images while the next batch's PGD runs (0: written in
    the calling thread, between batches). On a CPU the PGD keeps every core busy and
    writing beside it only slows it down by as much (docs/performance.md, thirteenth
    session), so the export waits its turn; on a GPU the CPU is otherwise idle and the
    export is the slower side. Decoding, PNG encoding and the perceptual measures release
    the GIL."""
    cores = os.cpu_count() or 1
    return 0 if device.type != "cuda" else max(1, min(8, cores // 2))


def protect_images(run: Run, folder: FolderData, built: BuiltEnsemble, offsets: torch.Tensor,
                   patterns: ClassPatterns | None, noise: SampleNoise | None,
                   profile: Profile | None, writer: ManifestWriter, names: dict[str, str]
                   ) -> ExportCount:
    """Protect every image not yet done, one batch at a time, recording each finished
    image with `writer` as soon as it is written. Where export_workers says so, a batch's
    images are written by threads while the next batch's PGD runs; the files and the
    manifest are the same whatever the number."""
    cfg, rep = run.config, run.reporter
    todo: list[ImageItem] = []
    reused = 0
    for item in folder.scan.items:
        if item.rel in folder.pending:
            todo.append(item)
        elif profile is not None and profile.is_done(item.rel, folder.digests.get(item.rel),
                                                     cfg.output_dir):
            writer.records[item.rel] = profile.records[item.rel]
            reused += 1
    total = len(todo)
    exports = BackgroundExports(run, writer, export_workers(run.device))
    spatial_time = 0.0
    rep.stage("spatial", 0, total)
    rep.stage("export", 0, total)
    try:
        for start in range(0, total, cfg.batch_size):
            rep.check_cancel()
            batch = todo[start:start + cfg.batch_size]
            t0 = time.monotonic()
            ok = [item for item in batch if _decodable(run, folder, item, writer)]
            deltas = spatial_deltas(run, folder, built, ok, noise)
            spatial_time += (dt := time.monotonic() - t0)
            rep.spent("spatial", dt)
            rep.stage("spatial", start + len(batch), total)
            if exports.in_background:  # the last batch's, written while this PGD ran
                exports.finish()
                rep.stage("export", start, total)
            rep.check_cancel()  # a cancel during the PGD: nothing more is written
            for j, item in enumerate(ok):
                exports.submit(folder, item, names[item.rel],
                               deltas[j] if deltas is not None else None,
                               offsets[item.label] if cfg.uses_colour else None,
                               patterns.patterns[item.label] if patterns is not None else None)
                folder.working.pop(item.rel, None)  # keep memory flat while streaming
            if not exports.in_background:  # written already
                rep.stage("export", start + len(batch), total)
        exports.finish()
        rep.stage("export", total, total)
    finally:
        # a cancel or an error still waits for the images being written and records them:
        # finished work that a resumed run need not redo
        exports.close()
        run.timings["spatial"] = spatial_time
        run.timings["export"] = exports.waited
        if exports.in_background:  # its own work, most of it hidden behind the PGD
            run.timings["export-threads"] = exports.busy
        writer.flush()
    return ExportCount(exports.written, reused)


class BackgroundExports:
    """Writes images in worker threads (none: at once, in the calling thread). Each image
    is journaled by the thread that wrote it as soon as it is written, so a kill loses at
    most the images being written; the manifest is sorted, so it does not depend on the
    threads. Only the calling thread reports (counts, warnings, time)."""

    def __init__(self, run: Run, writer: ManifestWriter, workers: int) -> None:
        self.run, self.writer = run, writer
        self.pool = (ThreadPoolExecutor(workers, thread_name_prefix="dune-export")
                     if workers > 0 else None)
        self.in_background = self.pool is not None
        self.pending: list[Future[tuple[ImageRecord, float]]] = []
        self.written = 0
        self.waited = 0.0  # seconds the calling thread spent exporting or waiting for it
        self.busy = 0.0  # seconds of export work, wherever it ran

    def submit(self, folder: FolderData, item: ImageItem, out_rel: str,
               delta: torch.Tensor | None, offset: torch.Tensor | None,
               pattern: torch.Tensor | None) -> None:
        job = (self.run, self.writer, folder, item, out_rel, delta, offset, pattern)
        if self.pool is not None:
            self.pending.append(self.pool.submit(_timed_export, *job))
            return
        rec, seconds = _timed_export(*job)
        self.waited += seconds
        self.run.reporter.spent("export", seconds)
        self._record(rec, seconds)

    def finish(self) -> None:
        """Wait for every submitted image and record it; an error (the disk is full) is
        raised once the images written before it are recorded."""
        start = time.monotonic()
        pending, self.pending = self.pending, []
        error: BaseException | None = None
        for future in pending:
            try:
                rec, seconds = future.result()
            except Exception as exc:
                error = error or exc
                continue
            self._record(rec, seconds)
        waited = time.monotonic() - start
        self.waited += waited
        self.run.reporter.spent("export", waited)
        if error is not None:
            raise error

    def close(self) -> None:
        # called on the way out of a cancel or an error: what is being written is recorded,
        # and an export error behind that one is not raised over it
        try:
            with suppress(Exception):
                self.finish()
        finally:
            if self.pool is not None:
                self.pool.shutdown(wait=True)

    def _record(self, rec: ImageRecord, seconds: float) -> None:
        self.busy += seconds
        self.written += rec.status == "done"
        if rec.status == "skipped":
            self.run.reporter.warning(f"skipped {rec.source}: {rec.reason}")
        self.writer.maybe_flush()


def _timed_export(run: Run, writer: ManifestWriter, folder: FolderData, item: ImageItem,
                  out_rel: str, delta: torch.Tensor | None, offset: torch.Tensor | None,
                  pattern: torch.Tensor | None) -> tuple[ImageRecord, float]:
    start = time.monotonic()
    rec = export_one(run, folder, item, out_rel, delta, offset, pattern)
    writer.add(rec)
    return rec, time.monotonic() - start


def _decodable(run: Run, folder: FolderData, item: ImageItem, writer: ManifestWriter) -> bool:
    try:
        folder.working_copy(item, run.config.max_pixels, run.working_size)
        return True
    except ImageError as exc:
        writer.add(ImageRecord(item.rel, None, folder.class_of(item.rel), "skipped",
                               str(exc)))
        run.reporter.warning(f"skipped {item.rel}: {exc}")
        return False


def export_one(run: Run, folder: FolderData, item: ImageItem, out_rel: str,
               delta: torch.Tensor | None, offset: torch.Tensor | None,
               pattern: torch.Tensor | None = None) -> ImageRecord:
    cfg = run.config
    cls = folder.classes[item.label]
    try:
        image = decode_full(item.path, cfg.max_pixels)
    except ImageError as exc:  # the caller reports it (this may run in a worker thread)
        return ImageRecord(item.rel, None, cls, "skipped", str(exc))
    out_path = cfg.output_dir / out_rel
    try:
        limit = change_limit(cfg)
        jnd = original_jnd(image, delta, limit)
        metrics = export_image(image, compose(image, delta, offset, cfg.colour_headroom,
                                              pattern, limit, jnd),
                               out_path, cfg.quality, cfg.keep_metadata, cfg.strip_gps, jnd)
    except OSError as exc:
        raise FolderError(f"cannot write {out_path}: {exc.strerror or exc}") from exc
    return ImageRecord(item.rel, out_rel, cls, "done", None, metrics,
                       folder.digests.get(item.rel))
