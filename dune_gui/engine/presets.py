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
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and abs(float(a) - float(b)) < 1e-9
    return a == b


PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset("light", "Light",
           "The smallest change: a faint grain on flat areas and a subtle colour shift. "
           "Weakest protection, above all against JPEG and noise.",
           {"eps": 4 / 255, "step_size": 0.25 / 255, "steps": 30, "psnr_min": 32.0,
            "ssim_min": 0.95, "delta_e_max": 3.0, "colour_grid": 1}),
    Preset("standard", "Standard (the paper's)",
           "The published method's limits: grain on flat areas and a colour cast you can "
           "see next to the original. Strong against models trained from scratch.",
           {"eps": 8 / 255, "step_size": 0.5 / 255, "steps": 30, "psnr_min": 20.0,
            "ssim_min": 0.8, "delta_e_max": 20.0, "colour_grid": 1}),
    Preset("strong", "Strong",
           "Visible grain and a colour grade that varies across the picture. The strongest "
           "protection, also against JPEG, blur and grayscale training.",
           {"eps": 16 / 255, "step_size": 1 / 255, "steps": 30, "psnr_min": 20.0,
            "ssim_min": 0.8, "delta_e_max": 20.0, "colour_grid": 2}),
)}
DEFAULT_PRESET = "standard"


def preset_of(settings: dict[str, Any]) -> str | None:
    """The preset these settings match, or None (custom)."""
    return next((name for name, p in PRESETS.items() if p.matches(settings)), None)
