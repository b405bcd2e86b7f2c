"""Settings for one protection run, shared by the CLI, the GUI and settings files."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

MODES = ("dune", "spatial", "colour")
FORMATS = ("png", "keep")
DEVICES = ("auto", "cpu", "cuda")


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


# Method settings added after the first release, with the value that reproduces what a
# folder protected before they existed was computed with (its manifest lacks the key).
LEGACY_METHOD_VALUES: dict[str, Any] = {"grey_robust": False, "pgd_augment": False,
                                         "colour_grid": 1}


def with_legacy_values(method: dict[str, Any]) -> dict[str, Any]:
    return {**LEGACY_METHOD_VALUES, **method}


@dataclass(frozen=True)
class ProtectConfig:
    input_dir: Path
    output_dir: Path
    mode: str = "dune"
    # Spatial branch (L-inf PGD), in 0..1 units.
    eps: float = 8 / 255
    step_size: float = 0.5 / 255
    steps: int = 30
    label_offset: int = 3
    # Optimise both branches also through a grayscale view of the images, so the protection
    # survives an adversary who trains on grayscale copies (the defence that strips the most
    # of a colour shortcut).
    grey_robust: bool = True
    # PGD scores every step through a random flip and 2-pixel shift, the augmentation a
    # victim trains with, so the perturbation keeps working on the views the victim sees.
    pgd_augment: bool = True
    # Surrogate ensemble: every architecture contributes `checkpoints` evenly spaced
    # checkpoints of one training run of `epochs` epochs.
    architectures: tuple[str, ...] = ("fast", "vgg")
    checkpoints: int = 3
    epochs: int = 15
    surrogate_files: tuple[str, ...] = ()
    working_size: int = 32
    # Colour branch (particle swarm).
    colour: ColourConstraints = field(default_factory=ColourConstraints)
    particles: int = 10
    iterations: int = 10
    colour_sample: int = 32
    colour_bound: float = 0.25
    colour_init: float = 0.1
    penalty_weight: float = 10.0
    # 1: the spec's one RGB offset per class. G > 1: a G x G grid of offsets per class pinned
    # to the image's corners and blended bilinearly, which survives JPEG, blur and pixel
    # jitter as a uniform cast does but is a far easier shortcut to learn (README).
    colour_grid: int = 1
    # Output.
    format: str = "png"
    quality: int = 95
    keep_metadata: bool = False
    strip_gps: bool = True  # with keep_metadata: drop the GPS block (where a photo was taken)
    # Execution.
    device: str = "auto"
    seed: int = 0
    batch_size: int = 64
    train_batch_size: int = 128
    learning_rate: float = 0.05
    max_pixels: int = 100_000_000
    cache_dir: Path | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_dir", Path(self.input_dir))
        object.__setattr__(self, "output_dir", Path(self.output_dir))
        if self.cache_dir is not None:
            object.__setattr__(self, "cache_dir", Path(self.cache_dir))
        object.__setattr__(self, "architectures", tuple(self.architectures))
        object.__setattr__(self, "surrogate_files", tuple(str(p) for p in self.surrogate_files))
        if isinstance(self.colour, dict):
            object.__setattr__(self, "colour", ColourConstraints(**self.colour))
        self.validate()

    def validate(self) -> None:
        problems = []
        if self.mode not in MODES:
            problems.append(f"mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if self.format not in FORMATS:
            problems.append(f"format must be one of {', '.join(FORMATS)}, not {self.format!r}")
        if self.device not in DEVICES:
            problems.append(f"device must be one of {', '.join(DEVICES)}, not {self.device!r}")
        if not 0 < self.eps <= 1:
            problems.append("eps must be in (0, 1] (0..1 units, e.g. 8/255 = 0.0314)")
        if not 0 < self.step_size <= 1:
            problems.append("step size must be in (0, 1]")
        if self.steps < 1:
            problems.append("steps must be at least 1")
        if self.checkpoints < 1 or self.epochs < 1:
            problems.append("checkpoints and epochs must be at least 1")
        if self.checkpoints > self.epochs:
            problems.append("cannot keep more checkpoints than there are epochs")
        if not self.architectures and not self.surrogate_files:
            problems.append("the ensemble is empty: choose an architecture or a surrogate file")
        if not 8 <= self.working_size <= 512:
            problems.append("working size must be between 8 and 512 pixels")
        if self.particles < 1 or self.iterations < 1 or self.colour_sample < 1:
            problems.append("particles, iterations and colour sample must be at least 1")
        if not 1 <= self.colour_grid <= 8:
            problems.append("colour grid must be between 1 (one offset) and 8 (an 8 x 8 field)")
        if not 1 <= self.quality <= 100:
            problems.append("quality must be between 1 and 100")
        if self.batch_size < 1 or self.train_batch_size < 1:
            problems.append("batch sizes must be at least 1")
        if problems:
            raise ValueError("; ".join(problems))

    # The fields that decide what the protected pixels are. A folder's protection profile
    # (manifest) is only extended by a run that agrees on all of them.
    METHOD_FIELDS: ClassVar[tuple[str, ...]] = (
        "mode", "eps", "step_size", "steps", "label_offset", "grey_robust", "pgd_augment",
        "architectures", "checkpoints", "epochs", "surrogate_files", "working_size", "colour",
        "particles", "iterations", "colour_sample", "colour_bound", "colour_init",
        "penalty_weight", "colour_grid", "format", "quality", "keep_metadata", "strip_gps", "seed",
        "batch_size", "train_batch_size", "learning_rate",
    )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Path):
                value = str(value)
            elif isinstance(value, ColourConstraints):
                value = dataclasses.asdict(value)
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    def method_dict(self) -> dict[str, Any]:
        full = self.to_dict()
        return {k: full[k] for k in self.METHOD_FIELDS}

    @classmethod
    def from_dict(cls, data: dict[str, Any], **overrides: Any) -> ProtectConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown settings: {', '.join(unknown)}")
        merged = {**data, **overrides}
        merged.setdefault("input_dir", ".")
        merged.setdefault("output_dir", ".")
        return cls(**merged)

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path, **overrides: Any) -> ProtectConfig:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if "config" in data and "images" in data:  # a manifest: reuse its method settings
            stored = data["config"]
            data = {**with_legacy_values(stored.get("method", {})),
                    "input_dir": stored.get("input_dir", "."),
                    "output_dir": stored.get("output_dir", ".")}
        return cls.from_dict(data, **overrides)

    @property
    def ensemble_size(self) -> int:
        return len(self.architectures) * self.checkpoints + len(self.surrogate_files)
