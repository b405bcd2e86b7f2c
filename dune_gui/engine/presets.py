"""Named protection levels: what a user chooses instead of a dozen settings. Each sets a
few rows of the settings table and leaves the rest as they are. The descriptions say what a
person sees and what it buys, in words; measured figures live in docs/ (they go stale)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Preset:
    name: str
    title: str
    summary: str  # what it costs in visibility and buys in protection, in words
    values: dict[str, Any]

    def matches(self, settings: dict[str, Any]) -> bool:
        return all(_same(settings.get(k), v) for k, v in self.values.items())


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return tuple(a) == tuple(b)  # names, as a settings file (list) or a config (tuple)
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and abs(float(a) - float(b)) < 1e-9
    return a == b


# The colour search's box and start range for the paper's limits (a cast of up to ~64/255)
# and for a change below notice (a few /255): the swarm must start where the answer is.
WIDE_COLOUR = {"colour_bound": 0.25, "colour_init": 0.1}
NARROW_COLOUR = {"colour_bound": 0.05, "colour_init": 0.02}
# The paper's method: a plain L-inf ball, its colour limits, a plain (clipped) shift, and
# three checkpoints per architecture: the visible levels were measured with six members;
# four (the Invisible level's, where they protect as well as six) are unmeasured there.
PAPER = {"spatial_objective": "targeted", "jnd_budget": 0.0, "steps": 30, "psnr_min": 20.0,
         "ssim_min": 0.8, "delta_e_max": 20.0, "colour_headroom": False, "checkpoints": 3,
         **WIDE_COLOUR}

# The visible levels and the Invisible one make no class pattern: a user who leaves the
# level against pretrained models for another leaves its pattern too.
NO_PATTERN = {"pattern_eps": 0.0, "pattern_shortcut": 0.0, "pattern_learners": ("small",)}
# Its spatial branch is error-minimising noise: at this budget it misled three kinds of
# network trained from scratch further than the targeted PGD, and held under grayscale
# (docs/research-log.md, twenty-ninth and thirtieth sessions). Its rounds fill more of
# each pixel's bound than the targeted steps did: 0.95 of a just-noticeable change keeps
# the perceptual issue's PSNR floor of 32 dB, which one whole change fell just under.
INVISIBLE = {"mode": "spatial", "spatial_objective": "error-minimising", "eps": 8 / 255,
             "jnd_budget": 0.95, "steps": 0,
             "step_size": 2 / 255, "checkpoints": 2,
             "psnr_min": 36.0, "ssim_min": 0.98, "delta_e_max": 1.0, "colour_grid": 2,
             "colour_headroom": True, **NARROW_COLOUR}

PRESETS: dict[str, Preset] = {p.name: p for p in (
    # No colour branch at this level: within its limits the class casts are too faint to
    # become a shortcut and protected nothing measured (docs/verification.md, eighth and
    # ninth sessions), while the search cost most of a small folder's run. Its colour limits
    # stay, for a user who turns the colour branch back on (mode dune).
    Preset("invisible", "Invisible",
           "Changes kept below what people notice: every picture gets a faint grain of its "
           "own that follows its texture, stays off flat areas and leaves the colours "
           "alone, made to be what a model trained on your folder learns instead of the "
           "pictures. Strong JPEG compression washes it out, and on photos it does not yet "
           "hold: a model pretrained on photos learns through it, and it sets back only "
           "some kinds of model trained from scratch.",
           {**INVISIBLE, **NO_PATTERN}),
    Preset("standard", "Standard (the paper's)",
           "The published method's limits: grain on flat areas and a colour cast you can "
           "see next to the original. Stronger protection against models trained from "
           "scratch.",
           {**PAPER, "mode": "dune", "eps": 8 / 255, "step_size": 0.5 / 255,
            "colour_grid": 1, **NO_PATTERN}),
    Preset("strong", "Strong",
           "Visible grain and a colour grade that varies across the picture. The strongest "
           "protection against models trained from scratch, also under JPEG, blur and "
           "grayscale; a network pretrained on photos still learns through it.",
           {**PAPER, "mode": "dune", "eps": 16 / 255, "step_size": 1 / 255,
            "colour_grid": 2, **NO_PATTERN}),
    # A grain below notice (the targeted steps it was measured with, at one just-noticeable
    # change) plus the aimed class pattern (class_patterns.py): the only change
    # measured to move a network pretrained on ImageNet and fine-tuned or probed on the
    # photos. Its bound is the largest the photo issue's distortion floor (PSNR 21 dB at
    # full resolution) allows, not a figure tuned to a result; half of it (made at 128 px)
    # moved the victims a few points only (docs/verification-photos.md, runs 14 and 15).
    # Its steps were chosen on the validation photos: the aim networks' loss still falls
    # at 600, and 1,200 misled both victims further at the same distortion (research log,
    # twenty-third session); the stage costs in proportion, once per folder. At 1,200
    # steps 32/255 fell 0.12 dB under the floor, so 31/255 (validation: as strong). The
    # shortcut term (weight 2, between the two screened) misled the from-scratch victim on
    # the validation photos much further and left the pretrained ones and the distortion
    # as they were (research log, twenty-fourth session), at a longer pattern stage
    # (docs/performance.md). A `vgg` learner beside the `small` one carried the patterns
    # further into a ResNet-18 trained from scratch (a learner in neither) and left the
    # other victims and the distortion where they were, on the validation photos (research
    # log, twenty-eighth session), at a longer pattern stage again (docs/performance.md).
    Preset("pretrained", "Against pretrained models",
           "For photos. Lays a texture of its own over every picture of a class, "
           "plain to see everywhere (as strong a change as the Standard level's colour "
           "cast), on top of a faint grain per picture kept below notice, as at the Invisible "
           "level. It misleads models fine-tuned "
           "from networks pretrained on photos, which the other levels barely touch.",
           # its per-image perturbation stays the targeted one it was measured with
           {**INVISIBLE, "spatial_objective": "targeted", "jnd_budget": 1.0,
            "pattern_eps": 31 / 255, "pattern_steps": 1200,
            "pattern_networks": ("lite0", "lite1"), "pattern_shortcut": 2.0,
            "pattern_learners": ("small", "vgg")}),
)}
DEFAULT_PRESET = "invisible"


def preset_of(settings: dict[str, Any]) -> str | None:
    """The preset these settings match, or None (custom)."""
    return next((name for name, p in PRESETS.items() if p.matches(settings)), None)
