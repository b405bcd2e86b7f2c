"""Where bundled assets live: the source tree, an installed copy, or a PyInstaller bundle."""

from __future__ import annotations

import sys
from pathlib import Path


def assets_dir() -> Path:
    candidates = []
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        candidates.append(Path(bundle) / "assets")
    here = Path(__file__).resolve().parent
    candidates += [here / "assets", here.parent / "assets"]
    for c in candidates:
        if (c / "icons").is_dir():
            return c
    return candidates[-1]


def sample_folder() -> Path:
    return assets_dir() / "sample"


def icon_paths() -> list[Path]:
    return sorted((assets_dir() / "icons").glob("dune-protect-*.png"))
