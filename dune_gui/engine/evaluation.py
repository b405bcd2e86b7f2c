"""Verification: does the protection work? Train fresh victims on protected folders (under
adversary defences) and measure their accuracy on clean held-out images.

    evaluate(EvaluateConfig(...), progress, log, cancel) -> EvaluationReport

Folders are read at the working resolution; victims train with the standard recipe (SGD +
momentum, one-cycle schedule, random crop + flip). Deterministic for a seed on the CPU.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import torch

from .atomic import atomic_write
from .config import COLOUR_PRESETS, DEFAULTS, ProtectConfig, migrate_settings
from .cpu_memory import releases_cpu_memory
from .data import (
    SMALL_IMAGE_SIDE,
    FolderError,
    FolderScan,
    ImageError,
    decode_square_crop,
    decode_working,
    photo_resolution,
    scan_folder,
)
from .defences import DEFENCES, Defence, adversarial_examples
from .export import write_json_atomic
from .metrics import (
    DELTA_E_MEANING,
    MEASURES,
    delta_e2000_mean_p99,
    psnr,
    set_means,
    ssim,
    visible_share,
)
from .models import PRETRAINED_ARCHS, PROBES, build_model
from .peers import apply_lsp, apply_ops
from .pipeline import protect
from .plots import plot_tradeoff
from .profile import MANIFEST_NAME
from .progress import Cancelled, CancelToken, LogCallback, ProgressCallback, Reporter
from .stages import resolve_device
from .training import centre_crop, random_crop_flip, random_resized_crop_flip, train_classifier
from .training_memory import available_bytes, too_large_reason, training_step_bytes
from .verification_time import (
    VerificationEstimate,
    estimate_verification,
    record_step_seconds,
)
from .victim_results import (
    VictimRecipe,
    folder_signature,
    load_result,
    plan_key,
    planned_result_kept,
    remember_plan,
    store_result,
    tensor_digest,
    victim_key,
)
from .views import stored_photo_side

# Each kind of victim's peak learning rate (SGD, one-cycle) when the caller sets none.
# Verification should face the strongest adversary it can train: a network from scratch
# needs the large rate, but a pretrained network fine-tuned at it loses much of its
# ImageNet features mid-training and ends a weaker classifier (and one more easily led by
# a shortcut) than the same network fine-tuned gently. Chosen on validation photos from
# clean victims, never on test photos or protected sets (docs/research-log.md, nineteenth
# session; docs/verification-photos.md, run 13).
VICTIM_LEARNING_RATES = {"scratch": 0.05, "fine-tune": 0.01, "probe": 0.01}


def victim_kind(arch: str) -> str:
    if arch in PROBES:
        return "probe"
    return "fine-tune" if arch in PRETRAINED_ARCHS else "scratch"


def victim_learning_rate(arch: str, chosen: float | None = None) -> float:
    """The peak learning rate `arch`'s victims train at: `chosen`, else its kind's."""
    return chosen if chosen is not None else VICTIM_LEARNING_RATES[victim_kind(arch)]


TRAINING_FREE_PEERS = ("lsp", "ops")
ABLATION_PEERS = ("spatial", "colour")
PEERS = TRAINING_FREE_PEERS + ABLATION_PEERS
# the strong colour preset's floor (the paper's constraint), for runs without DUNE settings
DEFAULT_LSP_PSNR = COLOUR_PRESETS["strong"].psnr_min


@dataclass(frozen=True)
class EvaluateConfig:
    clean_dir: Path
    protected: tuple[tuple[str, Path], ...] = ()  # (method name, protected folder)
    test_dir: Path | None = None  # None: hold out a stratified part of clean_dir
    peers: tuple[str, ...] = ()
    defences: tuple[str, ...] = ("none",)
    archs: tuple[str, ...] = ("small",)
    epochs: int = 30
    seed: int = 0
    working_size: int = 32
    # Resolution the victims train and test at; 0 = from the folder: small images at their
    # natural size (the working size), photos at 224 on a GPU and 128 on a CPU.
    victim_size: int = 0
    holdout: float = 0.2
    batch_size: int = 128
    # None: each victim at its kind's rate (VICTIM_LEARNING_RATES)
    learning_rate: float | None = None
    device: str = "auto"
    report_dir: Path | None = None
    # Settings used to generate the ablation peers (spatial / colour) on clean_dir.
    protect_settings: dict[str, Any] = field(default_factory=dict)
    # Distortion budget of the LSP peer (PSNR of its pattern, dB). None: the PSNR floor of
    # the colour preset in protect_settings (DUNE's own budget), else the strong preset's.
    lsp_psnr: float | None = None
    max_pixels: int = DEFAULTS.max_pixels
    # Where finished victims' results are kept and reused when the very same victim (same
    # images, recipe, seed, code) is asked for again; None: every victim trains
    victim_results_dir: Path | None = None
    # where the seconds per training step measured are kept for later estimates (None: the
    # user's cache folder)
    rates_dir: Path | None = None

    def lsp_budget(self) -> float:
        if self.lsp_psnr is not None:
            return self.lsp_psnr
        return float(migrate_settings(self.protect_settings).get("psnr_min", DEFAULT_LSP_PSNR))

    def __post_init__(self) -> None:
        unknown = [d for d in self.defences if d not in DEFENCES]
        if unknown:
            raise ValueError(f"unknown defence {', '.join(unknown)}; choose from "
                             f"{', '.join(DEFENCES)}")
        bad_peers = [p for p in self.peers if p not in PEERS]
        if bad_peers:
            raise ValueError(f"unknown peer method {', '.join(bad_peers)}; choose from "
                             f"{', '.join(PEERS)}")
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise ValueError("the victims' learning rate must be positive")
        if not 0 < self.holdout < 1:
            raise ValueError("holdout must be between 0 and 1")


@dataclass
class LabeledTensors:
    images: torch.Tensor  # N x 3 x R x R uint8
    labels: torch.Tensor
    keys: list[str]  # relative path without extension: matches protected copies to sources


@dataclass
class EvaluationReport:
    chance: float
    settings: dict[str, Any]
    runs: list[dict[str, Any]]
    status: str = "completed"
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"chance": self.chance, "settings": self.settings, "runs": self.runs,
                "status": self.status, "notes": self.notes}

    def accuracy(self, train: str, defence: str = "none", arch: str | None = None) -> float:
        for run in self.runs:
            if run["train"] == train and run["defence"] == defence and \
                    (arch is None or run["arch"] == arch):
                return float(run["test_accuracy"])
        raise KeyError((train, defence, arch))


def load_labeled(folder: Path, classes: list[str] | None, size: int, reporter: Reporter,
                 max_pixels: int = DEFAULTS.max_pixels, photo: bool = False
                 ) -> tuple[LabeledTensors, list[str]]:
    """Every image of a labeled folder as uint8 at size x size: squashed to the working
    size for small images, or (photo) short side resized and the centre square kept."""
    scan = scan_folder(folder)
    if classes is not None and scan.classes != classes:
        raise FolderError(f"{folder} has classes {scan.classes}, expected {classes}")
    images, labels, keys = [], [], []
    for item in scan.items:
        reporter.check_cancel()
        try:
            images.append(decode_square_crop(item.path, size, max_pixels) if photo
                          else decode_working(item.path, size, max_pixels))
        except ImageError as exc:
            reporter.warning(f"skipped {item.rel}: {exc}")
            continue
        labels.append(item.label)
        keys.append(str(PurePosixPath(item.rel).with_suffix("")))
    if not images:
        raise FolderError(f"{folder} has no usable images")
    return LabeledTensors(torch.stack(images), torch.tensor(labels), keys), scan.classes


def stratified_split(data: LabeledTensors, fraction: float, generator: torch.Generator
                     ) -> tuple[LabeledTensors, LabeledTensors]:
    test_idx: list[int] = []
    for k in sorted(set(data.labels.tolist())):
        idx = (data.labels == k).nonzero().flatten()
        idx = idx[torch.randperm(len(idx), generator=generator)]
        test_idx += idx[:max(1, round(len(idx) * fraction))].tolist()
    test_set = set(test_idx)
    train_idx = [i for i in range(len(data.keys)) if i not in test_set]
    return _subset(data, train_idx), _subset(data, sorted(test_idx))


def _subset(data: LabeledTensors, idx: list[int]) -> LabeledTensors:
    t = torch.tensor(idx, dtype=torch.long)
    return LabeledTensors(data.images[t], data.labels[t], [data.keys[i] for i in idx])


def _without(data: LabeledTensors, keys: set[str]) -> LabeledTensors:
    return _subset(data, [i for i, k in enumerate(data.keys) if k not in keys])


def train_victim(arch: str, train: LabeledTensors, test: LabeledTensors, defence: Defence,
                 epochs: int, seed: int, device: torch.device, num_classes: int,
                 batch_size: int, learning_rate: float, reporter: Reporter,
                 progress_offset: int = 0, progress_total: int | None = None,
                 photo_size: int = 0) -> tuple[float, list[float]]:
    """Train one victim on `train` (defence applied) and score it on clean `test` images.
    With `photo_size` the stored images are larger squares: training takes random resized
    crops of photo_size, testing the centre crop, the defences act on the stored images."""
    images = defence.dataset(train.images) if defence.dataset else train.images
    test_images = defence.test(test.images) if defence.test else test.images
    if photo_size:
        test_images = centre_crop(test_images, photo_size)
    generator = torch.Generator().manual_seed(seed)
    size = photo_size or images.shape[-1]
    model = build_model(arch, num_classes, size, generator)

    def augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        x = random_resized_crop_flip(x, g, photo_size) if photo_size else random_crop_flip(x, g)
        return defence.batch(x, g) if defence.batch else x

    adv_gen = torch.Generator().manual_seed(seed + 1)
    batch_transform = None
    if defence.adversarial:
        def batch_transform(m: torch.nn.Module, x: torch.Tensor, y: torch.Tensor
                            ) -> torch.Tensor:
            return adversarial_examples(m, x, y, adv_gen)

    result = train_classifier(
        model, images, train.labels, epochs, generator, device, batch_size=batch_size,
        learning_rate=learning_rate, augment=augment, batch_transform=batch_transform,
        eval_data=(test_images, test.labels), reporter=reporter, stage="verify",
        progress_offset=progress_offset, progress_total=progress_total,
        recalibrate=arch not in PRETRAINED_ARCHS)
    return result.curve[-1], result.curve


@releases_cpu_memory
def evaluate(config: EvaluateConfig, progress: ProgressCallback | None = None,
             log: LogCallback | None = None, cancel: CancelToken | None = None
             ) -> EvaluationReport:
    reporter = Reporter(progress, log, cancel)
    device = resolve_device(config.device)
    photo_size = victim_resolution(config, device)
    size = stored_photo_side(photo_size) or config.working_size
    if photo_size:
        reporter.info(f"photos: victims train on random {photo_size}-px crops of the images "
                      f"resized to {size} px (short side), and test on the centre crop")

    def load(folder: Path, classes: list[str] | None) -> tuple[LabeledTensors, list[str]]:
        return load_labeled(folder, classes, size, reporter, config.max_pixels,
                            photo=bool(photo_size))

    clean, classes = load(config.clean_dir, None)
    k = len(classes)
    notes: list[str] = []
    split_gen = torch.Generator().manual_seed(config.seed)
    if config.test_dir is not None:
        test, _ = load(config.test_dir, classes)
        clean_train = clean
    else:
        clean_train, test = stratified_split(clean, config.holdout, split_gen)
        notes.append(f"no test folder: {len(test.keys)} clean images "
                     f"({config.holdout:.0%} per class) held out as the test set; their "
                     "protected copies are excluded from every training set")
    held_out = set(test.keys) if config.test_dir is None else set()
    train_sets: list[tuple[str, LabeledTensors]] = [("clean", clean_train)]
    for name, folder in config.protected:
        data, _ = load(folder, classes)
        train_sets.append((name, _without(data, held_out)))
    peer_gen = peer_generator(config.seed)
    for peer in config.peers:
        if peer == "lsp":
            images = apply_lsp(clean_train.images, clean_train.labels, k, peer_gen,
                               psnr=config.lsp_budget())
        elif peer == "ops":
            images = apply_ops(clean_train.images, clean_train.labels, k)
        else:
            images = _ablation(config, peer, clean_train, reporter, size, bool(photo_size))
        train_sets.append((peer, LabeledTensors(images, clean_train.labels, clean_train.keys)))

    distortion = {name: distortion_against(clean_train, data)
                  for name, data in train_sets if name != "clean"}
    protected_sets = train_sets[1:1 + len(config.protected)]  # after clean, before peers
    written = {name: d for (name, folder), (_, data) in zip(config.protected, protected_sets,
                                                            strict=True)
               if (d := written_distortion(folder, data.keys))}
    runs: list[dict[str, Any]] = []
    status = "completed"
    recipes = _recipes(config, [name for name, _ in train_sets], photo_size or size,
                       bool(photo_size), device.type)
    set_data = dict(train_sets)
    victims = [(name, set_data[name], defence_name, arch)
               for name, defence_name, arch in recipes]  # in the recipes' training order
    total = len(victims)
    keys, kept = _kept_results(config.victim_results_dir, train_sets, test, recipes)
    plans: dict[Victim, str] = {}
    if config.victim_results_dir is not None:
        plans = _plans(config, recipes)
        for victim in kept:  # found by its images: its plan may be new (a copied folder)
            if victim in plans:
                remember_plan(config.victim_results_dir, plans[victim], keys[victim])
    # one count for the whole verification (every victim's training steps, less those whose
    # result is kept), so its one progress bar and ETA cover the run rather than restarting
    # with each victim
    steps = {name: config.epochs * max(1, -(-len(data.keys) // config.batch_size))
             for name, data in train_sets}
    all_steps = sum(steps[name] for name, _, defence_name, arch in victims
                    if (name, defence_name, arch) not in kept)
    steps_done = 0
    started = time.monotonic()
    # arch -> why its victims are skipped (None: they fit), decided before its first victim,
    # while the process has not yet grown to train it
    too_large: dict[str, str | None] = {}
    largest_set = max(len(data.keys) for _, data in train_sets)  # a batch is never larger
    try:
        for name, data, defence_name, arch in victims:
            reporter.check_cancel()
            victim = (name, defence_name, arch)
            if victim in kept:
                reporter.info(f"victim {arch} on {name}, defence {defence_name}: trained "
                              "before on the same images with the same recipe; its result "
                              "reused")
                acc, curve = kept[victim]
            else:
                if arch not in too_large:
                    too_large[arch] = victim_memory_shortfall(
                        arch, k, photo_size or size, min(config.batch_size, largest_set),
                        device)
                    if too_large[arch]:
                        notes.append(too_large[arch])
                        reporter.warning(too_large[arch])
                if too_large[arch]:
                    steps_done += steps[name]
                    continue
                reporter.info(f"victim {arch} on {name}, defence {defence_name}: "
                              f"{config.epochs} epochs on {len(data.keys)} images")
                trained_at = time.monotonic()
                acc, curve = train_victim(
                    arch, data, test, DEFENCES[defence_name], config.epochs, config.seed,
                    device, k, config.batch_size, recipes[victim].learning_rate, reporter,
                    steps_done, all_steps, photo_size)
                steps_done += steps[name]
                if not DEFENCES[defence_name].adversarial:  # for the next estimate
                    record_step_seconds(arch, photo_size or size, config.batch_size,
                                        device.type,
                                        (time.monotonic() - trained_at) / steps[name],
                                        config.rates_dir)
                if config.victim_results_dir is not None:
                    store_result(config.victim_results_dir, keys[victim], recipes[victim],
                                 acc, curve)
                    if victim in plans:
                        remember_plan(config.victim_results_dir, plans[victim],
                                      keys[victim])
            runs.append({"train": name, "defence": defence_name, "arch": arch,
                         "epochs": config.epochs,
                         "learning_rate": recipes[victim].learning_rate,
                         "test_accuracy": acc,
                         "victim_size": photo_size or size, "curve": curve,
                         "reused": victim in kept})
            if config.report_dir is not None:  # a long matrix keeps what it measured
                write_report(EvaluationReport(1.0 / k, {}, runs, "running", notes),
                             config.report_dir)
            reporter.info(f"victim {len(runs)} of {total} ({name} / {defence_name} / "
                          f"{arch}): {acc:.1%} on clean test images")
    except Cancelled:
        status = "cancelled"
    if kept:
        notes.append(f"{len(kept)} of {total} victims were trained before on the same images "
                     "with the same recipe, seed and code; their results are reused (train "
                     "every victim anew: dune-cli evaluate --fresh-victims)")
    settings = {f.name: _plain(getattr(config, f.name)) for f in dataclasses.fields(config)}
    settings.update({"lsp_psnr": config.lsp_budget(), "distortion": distortion,
                     "distortion_written": written,
                     "classes": classes, "train_images": len(clean_train.keys),
                     "test_images": len(test.keys), "device": str(device),
                     "seconds": round(time.monotonic() - started, 1)})
    report = EvaluationReport(1.0 / k, settings, runs, status, notes)
    if config.report_dir is not None:
        write_report(report, config.report_dir)
    return report


Victim = tuple[str, str, str]  # (training set name, defence, architecture)


def _recipes(config: EvaluateConfig, set_names: list[str], size: int, photo: bool,
             device_type: str) -> dict[Victim, VictimRecipe]:
    """Every victim the run trains (set x defence x architecture, in training order) and
    its recipe."""
    return {(name, defence, arch): VictimRecipe(
        arch, defence, config.epochs, config.seed, config.batch_size,
        victim_learning_rate(arch, config.learning_rate), size, photo, device_type)
        for name in set_names for defence in config.defences for arch in config.archs}


def _plans(config: EvaluateConfig, recipes: dict[Victim, VictimRecipe],
           clean_scan: FolderScan | None = None) -> dict[Victim, str]:
    """The victims' names from their folders' signatures (no image decoded), for the
    estimate to tell which are kept; ablation peers (a protect run each) have none."""
    clean = folder_signature(config.clean_dir, clean_scan)
    test = (folder_signature(config.test_dir) if config.test_dir is not None
            else f"holdout {config.holdout}")
    common = [f"max_pixels {config.max_pixels}", f"working_size {config.working_size}",
              clean, test]
    sources = {"clean": common}
    for name, folder in config.protected:
        sources[name] = [*common, folder_signature(folder)]
    for peer in config.peers:
        if peer == "lsp":
            sources[peer] = [*common, f"lsp at {config.lsp_budget()} dB"]
        elif peer == "ops":
            sources[peer] = [*common, "ops"]
    return {victim: plan_key(recipe, sources[victim[0]])
            for victim, recipe in recipes.items() if victim[0] in sources}


def _kept_results(folder: Path | None, train_sets: list[tuple[str, LabeledTensors]],
                  test: LabeledTensors, recipes: dict[Victim, VictimRecipe]
                  ) -> tuple[dict[Victim, str], dict[Victim, tuple[float, list[float]]]]:
    """Each victim's key in the kept results, and the results kept for the victims that
    were trained before (none without a folder)."""
    if folder is None:
        return {}, {}
    test_digest = tensor_digest(test.images, test.labels)
    digests = {name: tensor_digest(data.images, data.labels) for name, data in train_sets}
    keys = {victim: victim_key(recipe, digests[victim[0]], test_digest)
            for victim, recipe in recipes.items()}
    kept = {victim: result for victim, key in keys.items()
            if (result := load_result(folder, key)) is not None}
    return keys, kept


def victim_memory_shortfall(arch: str, num_classes: int, size: int, batch: int,
                            device: torch.device) -> str | None:
    """Why a victim cannot train in the memory free now (one line), or None when it fits
    or nobody can tell (a GPU's memory is not the system's; a system that does not say)."""
    if device.type != "cpu":
        return None
    free = available_bytes()
    if free is None:
        return None
    with torch.random.fork_rng(devices=[]):  # the victims' draws stay as without the check
        need = training_step_bytes(build_model(arch, num_classes, size), size, batch)
    return too_large_reason(arch, size, batch, need, free) if need > free else None


def distortion_against(clean: LabeledTensors, protected: LabeledTensors) -> dict[str, float]:
    """Mean PSNR / SSIM / CIEDE2000 of a training set against its clean sources at the
    working size, so that methods are compared at a stated visual cost."""
    where = {key: i for i, key in enumerate(clean.keys)}
    pairs = [(where[key], i) for i, key in enumerate(protected.keys) if key in where]
    if not pairs:
        return {}
    x = clean.images[torch.tensor([a for a, _ in pairs])].float() / 255
    y = protected.images[torch.tensor([b for _, b in pairs])].float() / 255
    delta_e, delta_e_p99 = delta_e2000_mean_p99(x, y)
    return set_means({"psnr": psnr(x, y).mean(), "ssim": ssim(x, y).mean(),
                      "delta_e": delta_e.mean(), "delta_e_p99": delta_e_p99.mean(),
                      "visible_share": visible_share(x, y).mean()})


def written_distortion(folder: Path, keys: list[str] | None = None) -> dict[str, float]:
    """Mean distortion of the files of a protected folder that victims train on (`keys`:
    relative paths without extension; None: every file it wrote), as its protect run
    measured each file when writing it, at full resolution (the folder's manifest): what
    a person looking at the published photos sees, where `distortion_against` measures
    the images as a victim sees them. Empty when the folder has no readable manifest or
    it records none of those files (e.g. a peer's folder, or a copy made by other
    tools)."""
    try:
        records = json.loads((folder / MANIFEST_NAME).read_text(encoding="utf-8"))["images"]
        by_key = {str(PurePosixPath(r["output"]).with_suffix("")): r for r in records
                  if r.get("status") == "done" and all(m in r for m in MEASURES)}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}  # missing or not a manifest: nothing known, never a guess
    keys = list(by_key) if keys is None else keys
    chosen = [by_key[key] for key in keys if key in by_key]
    if not chosen:
        return {}
    means = set_means({m: sum(float(r[m]) for r in chosen) / len(chosen) for m in MEASURES})
    return {**means, "files": len(chosen), "of": len(keys)}


def peer_generator(seed: int) -> torch.Generator:
    """The random source of the training-free peers (LSP's patterns) for a run's seed, so
    a picture or a script can regenerate exactly the peer a report measured."""
    return torch.Generator().manual_seed(seed + 17)


def estimate_evaluate(config: EvaluateConfig, measure: bool = True) -> VerificationEstimate:
    """How long `evaluate(config)` will take (verification_time): `measure` allows timing a
    training step now for an architecture no earlier verification priced."""
    device = resolve_device(config.device)
    # listed once for the signature and the counts (victim_resolution lists it again at
    # an auto victim size: its source is part of every kept victim's key, see
    # victim_results, and changing it would retrain them all)
    clean = scan_folder(config.clean_dir)
    photo_size = victim_resolution(config, device)
    size = photo_size or config.working_size
    set_names = ["clean", *(name for name, _ in config.protected), *config.peers]
    recipes = _recipes(config, set_names, size, bool(photo_size), device.type)
    reused: set[Victim] = set()
    if config.victim_results_dir is not None:
        folder = config.victim_results_dir
        reused = {victim for victim, plan in _plans(config, recipes, clean).items()
                  if planned_result_kept(folder, plan)}
    return estimate_verification(
        clean, config.test_dir, config.holdout,
        victims=[(arch, defence) for (name, defence, arch) in recipes
                 if (name, defence, arch) not in reused],
        reused=len(reused), epochs=config.epochs, batch=config.batch_size, size=size,
        stored_size=stored_photo_side(photo_size),
        device=device, measure=measure, cache_dir=config.rates_dir,
        excludes_ablations=any(peer in ABLATION_PEERS for peer in config.peers))


def victim_resolution(config: EvaluateConfig, device: torch.device) -> int:
    """The photo crop size victims train at, or 0 for small images trained at their own
    (working) size, CIFAR-style."""
    if config.victim_size:
        return 0 if config.victim_size <= SMALL_IMAGE_SIDE else config.victim_size
    scan = scan_folder(config.clean_dir)
    return photo_resolution([item.path for item in scan.items], config.max_pixels,
                            device.type == "cuda")[1]


def _ablation(config: EvaluateConfig, mode: str, clean_train: LabeledTensors,
              reporter: Reporter, size: int, photo: bool) -> torch.Tensor:
    """Generate a spatial-only / colour-only protected copy of the clean training images
    with the real engine (same budget and surrogates as the DUNE run's settings)."""
    assert config.report_dir is not None, "ablation peers need a report folder"
    out = config.report_dir / "peers" / mode
    pc = ProtectConfig.from_dict(config.protect_settings, input_dir=config.clean_dir,
                                 output_dir=out, mode=mode, working_size=config.working_size,
                                 seed=config.seed)
    reporter.info(f"generating the {mode}-only ablation into {out}")
    result = protect(pc, cancel=reporter.cancel)
    if result.status != "completed":
        reporter.check_cancel()
    data, _ = load_labeled(out, None, size, reporter, config.max_pixels, photo=photo)
    by_key = dict(zip(data.keys, range(len(data.keys)), strict=True))
    return data.images[torch.tensor([by_key[k] for k in clean_train.keys])]


def _plain(value: Any) -> Any:
    """JSON-safe copy of a settings value (paths, tuples, nested dicts, dataclasses)."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain(dataclasses.asdict(value))
    return value


def write_report(report: EvaluationReport, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    write_json_atomic(report.to_json(), folder / "report.json")
    with atomic_write(folder / "report.md", "w") as fh:
        fh.write(markdown_table(report))
    plot_report(report, folder / "report.png")
    points = tradeoff_points(report)
    if points:
        clean = next((100 * r["test_accuracy"] for r in report.runs
                      if r["train"] == "clean" and r["defence"] == "none"), None)
        plot_tradeoff(points, folder / "tradeoff.png", 100 * report.chance, clean,
                      "No defence: accuracy on new images vs how much each set changed")


def tradeoff_points(report: EvaluationReport) -> list[tuple[str, float, float]]:
    """(set, PSNR, accuracy %) with no defence for every set whose distortion is known."""
    distortion = report.settings.get("distortion") or {}
    points = []
    for name, d in distortion.items():
        accuracy = next((r["test_accuracy"] for r in report.runs
                         if r["train"] == name and r["defence"] == "none"), None)
        if d and accuracy is not None:
            points.append((name, float(d["psnr"]), 100 * float(accuracy)))
    return points


def _distortion_text(d: dict[str, float]) -> str:
    return (f"PSNR {d['psnr']:.2f} dB, SSIM {d['ssim']:.3f}, CIEDE2000 {d['delta_e']:.2f}"
            + (f" (99th percentile {d['delta_e_p99']:.2f}, {d['visible_share']:.1%} of "
               "pixels beyond notice)" if "delta_e_p99" in d else ""))


def markdown_table(report: EvaluationReport) -> str:
    trains = list(dict.fromkeys(r["train"] for r in report.runs))
    defences = list(dict.fromkeys(r["defence"] for r in report.runs))
    archs = list(dict.fromkeys(r["arch"] for r in report.runs))
    lines = ["# Protection report", "",
             f"Clean-test accuracy of victims trained on each set (lower = stronger "
             f"protection). Chance = {report.chance:.1%}.", ""]
    for note in report.notes:
        lines.append(f"- {note}")
    distortion = report.settings.get("distortion") or {}
    if distortion:
        lines += ["", "Distortion of each training set against its clean images (mean, as "
                  "the victims see them: at the working size):", ""]
        lines += [f"- {name}: {_distortion_text(d)}" for name, d in distortion.items() if d]
    written = report.settings.get("distortion_written") or {}
    if written:
        lines += ["", "Distortion of each protected folder's files as written, at full "
                  "resolution (mean over the files the victims trained on, as measured when "
                  "they were written; the folder's manifest):", ""]
        lines += [f"- {name}: {_distortion_text(d)}"
                  + (f"; {d['files']} of {d['of']} files" if d["files"] < d["of"] else "")
                  for name, d in written.items()]
    for arch in archs:
        lines += ["", f"## Victim `{arch}`", ""]
        first = next(r for r in report.runs if r["arch"] == arch)
        if "learning_rate" in first:  # reports from before it was recorded lack it
            lines += [f"Trained {first['epochs']} epochs at {first['victim_size']} px, peak "
                      f"learning rate {first['learning_rate']:g}.", ""]
        lines += ["| train set | " + " | ".join(defences) + " | mean |",
                  "|---" * (len(defences) + 2) + "|"]
        for train in trains:
            if not any(r["train"] == train and r["arch"] == arch for r in report.runs):
                continue  # e.g. a transfer victim trained on some sets only
            cells = []
            values = []
            for d in defences:
                match = [r for r in report.runs
                         if r["train"] == train and r["defence"] == d and r["arch"] == arch]
                if match:
                    values.append(match[0]["test_accuracy"])
                    cells.append(f"{match[0]['test_accuracy']:.1%}")
                else:
                    cells.append("–")
            mean = f"{sum(values) / len(values):.1%}" if values else "–"
            lines.append(f"| {train} | " + " | ".join(cells) + f" | {mean} |")
    return "\n".join(lines) + "\n"


def plot_report(report: EvaluationReport, path: Path) -> None:
    """Grouped bar chart (defence groups, one bar per train set), drawn with Pillow."""
    from PIL import Image, ImageDraw, ImageFont

    trains = list(dict.fromkeys(r["train"] for r in report.runs))
    defences = list(dict.fromkeys(r["defence"] for r in report.runs))
    arch = report.runs[0]["arch"] if report.runs else ""
    # clean's grey first, then the ten tab10 hues (olive replaces tab10's own grey): a merged
    # report with ten or more sets still gives every set its own colour
    palette = [(90, 90, 90), (214, 39, 40), (31, 119, 180), (255, 127, 14), (44, 160, 44),
               (148, 103, 189), (140, 86, 75), (227, 119, 194), (23, 190, 207),
               (188, 189, 34), (0, 0, 128), (255, 187, 120)]
    width, height = max(640, 110 * len(defences) + 160), 460
    left, right, top, bottom = 60, 20, 50, 110
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    try:
        font = ImageFont.load_default(size=13)
    except TypeError:
        font = ImageFont.load_default()
    plot_h = height - top - bottom
    draw.text((left, 12), f"Clean-test accuracy of victim '{arch}' (lower = better protection)",
              fill="black", font=font)
    for tick in range(0, 101, 20):
        y = top + plot_h * (1 - tick / 100)
        draw.line([(left, y), (width - right, y)], fill=(225, 225, 225))
        draw.text((8, y - 7), f"{tick}%", fill="black", font=font)
    group_w = (width - left - right) / max(1, len(defences))
    bar_w = group_w * 0.8 / max(1, len(trains))
    for gi, d in enumerate(defences):
        x0 = left + gi * group_w + group_w * 0.1
        for ti, t in enumerate(trains):
            match = [r for r in report.runs
                     if r["train"] == t and r["defence"] == d and r["arch"] == arch]
            if not match:
                continue
            acc = match[0]["test_accuracy"]
            xa = x0 + ti * bar_w
            draw.rectangle([xa, top + plot_h * (1 - acc), xa + bar_w - 2, top + plot_h],
                           fill=palette[ti % len(palette)])
        draw.text((x0, top + plot_h + 6), d[:16], fill="black", font=font)
    # drawn over the bars, labelled in the axis margin, so neither hides the other
    chance_y = top + plot_h * (1 - report.chance)
    draw.line([(left, chance_y), (width - right, chance_y)], fill=(0, 0, 0), width=1)
    draw.text((8, chance_y + 4), "chance", fill="black", font=font)
    for ti, t in enumerate(trains):
        lx = left + (ti % 4) * 150
        ly = height - 60 + (ti // 4) * 20
        draw.rectangle([lx, ly, lx + 12, ly + 12], fill=palette[ti % len(palette)])
        draw.text((lx + 18, ly - 1), t, fill="black", font=font)
    with atomic_write(path) as fh:
        img.save(fh, format="PNG")


# What each defence means to someone who is not a machine-learning researcher.
DEFENCE_IN_WORDS = {
    "none": "trained on your images as they are",
    "jpeg10": "re-saved your images as heavily compressed JPEGs first",
    "grayscale": "trained on black-and-white copies",
    "jpeg10+grayscale": "compressed them and made them black and white",
    "adv-training": "trained to resist small pixel changes (adversarial training)",
    "shift-noise": "added random colour shifts and noise while training",
    "coin": "jittered every pixel by up to two pixels while training",
    "posterise": "reduced the images to 8 shades per colour",
    "blur": "blurred the images slightly",
    "normalise": "evened out each image's brightness and colour",
}


def plain_summary(report: EvaluationReport, protected: str = "dune") -> list[str]:
    """The result in sentences, first the one that matters: how a model trained on the
    protected images does on new clean images, against one trained on the originals."""
    runs = report.runs
    archs = list(dict.fromkeys(r["arch"] for r in runs))
    chance = f"{report.chance:.0%}"
    lines: list[str] = []
    for arch in archs:
        def acc(train: str, defence: str, arch: str = arch) -> float | None:
            return next((r["test_accuracy"] for r in runs if r["train"] == train
                         and r["defence"] == defence and r["arch"] == arch), None)

        ours, clean = acc(protected, "none"), acc("clean", "none")
        if ours is not None and clean is not None:
            who = "A model" if len(archs) == 1 else f"A model ({arch})"
            lines.append(f"{who} trained on your protected images recognised {ours:.0%} of "
                         f"new images, against {clean:.0%} when trained on the originals; "
                         f"chance is {chance}.")
        for defence in dict.fromkeys(r["defence"] for r in runs):
            if defence == "none":
                continue
            ours, clean = acc(protected, defence), acc("clean", defence)
            if ours is not None and clean is not None:
                lines.append(f"If whoever trains it {DEFENCE_IN_WORDS.get(defence, defence)}: "
                             f"{ours:.0%} (originals: {clean:.0%}).")
    written = (report.settings.get("distortion_written") or {}).get(protected)
    if written:
        lines.append(f"The protected files as written differ from the originals by a colour "
                     f"difference (CIEDE2000) of {written['delta_e']:.1f} on average "
                     f"({DELTA_E_MEANING}), PSNR {written['psnr']:.1f} dB and SSIM "
                     f"{written['ssim']:.2f}, at full resolution.")
    return lines
