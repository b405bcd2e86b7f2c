"""Writing protected images and the manifest: mirrored tree, atomic writes, mode kept."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import torch
from PIL import Image

from .atomic import TEMP_PREFIX, TEMP_SUFFIX, atomic_write
from .class_patterns import place_pattern
from .colour import add_colour, expand_offsets
from .data import DecodedImage
from .metrics import delta_e2000_mean_p99, jnd_map, psnr, ssim, visible_share
from .spatial import ChangeLimit, upsample_delta

# What each writable suffix is saved as; the one list of which formats are lossy.
SUFFIX_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".jpe": "JPEG",
                  ".jfif": "JPEG", ".webp": "WEBP", ".bmp": "BMP", ".dib": "BMP",
                  ".tif": "TIFF", ".tiff": "TIFF"}
KEEPABLE_SUFFIXES = frozenset(SUFFIX_FORMATS)
LOSSY_FORMATS = frozenset({"JPEG", "WEBP"})
SIXTEEN_BIT_SUFFIXES = frozenset({".png", ".tif", ".tiff"})  # formats that hold 16-bit grey


def is_lossy(path: Path) -> bool:
    return SUFFIX_FORMATS.get(path.suffix.lower()) in LOSSY_FORMATS


METRIC_MAX_PIXELS = 4_000_000  # full-res metrics above this are measured on a downscale
PNG_COMPRESS_LEVEL = 1  # zlib's fastest (save_image_atomic says why)


def output_names(rels: Sequence[str], fmt: str) -> dict[str, str]:
    """Map each input's relative path to its output relative path.

    Same folders and stems; the extension becomes .png (or stays, with fmt="keep").
    Inputs whose outputs would collide (a.jpg and a.png in one folder) keep their source
    extension in the name (a.jpg.png, a.png.png) so nothing is overwritten.
    """
    proposed: dict[str, str] = {}
    for rel in rels:
        p = PurePosixPath(rel)
        proposed[rel] = str(p.with_suffix(output_extension(p.suffix, fmt)))
    counts: dict[str, int] = {}
    for out in proposed.values():
        counts[out.lower()] = counts.get(out.lower(), 0) + 1
    for rel, out in proposed.items():
        if counts[out.lower()] > 1:
            p = PurePosixPath(rel)
            proposed[rel] = str(p.parent / (p.name + PurePosixPath(out).suffix))
    return proposed


def output_extension(source_suffix: str, fmt: str) -> str:
    """PNG unless the user keeps the source format and that format can hold the pixels
    (GIF is palette-based, the perturbation would be quantised away, so it becomes PNG)."""
    suffix = source_suffix.lower()
    if fmt == "keep" and suffix in KEEPABLE_SUFFIXES:
        return suffix
    return ".png"


def compose(image: DecodedImage, delta: torch.Tensor | None, offset: torch.Tensor | None,
            headroom: bool = False, pattern: torch.Tensor | None = None,
            limit: ChangeLimit | None = None, jnd: torch.Tensor | None = None
            ) -> torch.Tensor:
    """x_ue = clip01(clip01(x + up(delta) + place(p_y)) + d_y) at the image's own
    resolution (3 x H x W): the spatial perturbation brought up from the working size
    (within `limit` at this size, when its bound is perceptual), the class's aimed pattern
    laid over the image at its short side (class_patterns.place_pattern), then the class's
    colour offset, a G x G field spread over the image's own size; with `headroom` the
    colour shift is scaled so that no pixel clips (colour.add_colour). `jnd`: the image's
    jnd_map (1 x H x W), where the caller has it already (original_jnd)."""
    x = torch.from_numpy(image.rgb).permute(2, 0, 1)
    out = x
    if delta is not None or pattern is not None:
        out = x.clone()
        if delta is not None:
            full = upsample_delta(delta.float().cpu(), x.shape[1], x.shape[2])
            out += full if limit is None else limit.written(full, x, jnd)
        if pattern is not None:
            out += place_pattern(pattern.float().cpu(), x.shape[1], x.shape[2])
        out.clamp_(0, 1)
    if offset is not None:
        field = expand_offsets(offset.float().cpu().unsqueeze(0), x.shape[1], x.shape[2])[0]
        out = add_colour(out, field, headroom)
    return out


def to_pil(protected: torch.Tensor, image: DecodedImage) -> Image.Image:
    """Quantise by rounding (the reference floors, biasing every pixel down) into the
    source's pixel family; alpha is reattached unchanged."""
    arr = protected.permute(1, 2, 0).numpy()
    if image.kind == "I;16":
        grey = np.rint(arr.mean(axis=2) * 65535.0).astype(np.uint16)
        return Image.fromarray(grey)
    if image.kind == "L":
        grey = np.rint(arr.mean(axis=2) * 255.0).astype(np.uint8)
        if image.alpha is not None:
            return Image.fromarray(np.dstack([grey, image.alpha]), "LA")
        return Image.fromarray(grey, "L")
    rgb = np.rint(arr * 255.0).astype(np.uint8)
    if image.alpha is not None:
        return Image.fromarray(np.dstack([rgb, image.alpha]), "RGBA")
    return Image.fromarray(rgb, "RGB")


def measured_pair(original: torch.Tensor, protected: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """The two images as the measures take them (1 x 3 x H x W): area-downscaled to at
    most METRIC_MAX_PIXELS, so a 50-MP scan's measures cost what a 4-MP photo's do."""
    a, b = original.unsqueeze(0), protected.unsqueeze(0)
    pixels = a.shape[-1] * a.shape[-2]
    if pixels > METRIC_MAX_PIXELS:
        scale = math.sqrt(METRIC_MAX_PIXELS / pixels)
        size = (max(8, int(a.shape[-2] * scale)), max(8, int(a.shape[-1] * scale)))
        a = torch.nn.functional.interpolate(a, size=size, mode="area")
        b = torch.nn.functional.interpolate(b, size=size, mode="area")
    return a, b


def original_jnd(image: DecodedImage, delta: torch.Tensor | None,
                 limit: ChangeLimit | None) -> torch.Tensor | None:
    """The just-noticeable change of the image at its own size (1 x H x W) where `limit`
    reads it for the spatial change `delta`; the measure of pixels beyond notice reads it
    too, so it is made once (None: no limit applies, the measure makes its own)."""
    if limit is None or delta is None:
        return None
    return jnd_map(torch.from_numpy(image.rgb).permute(2, 0, 1).unsqueeze(0))[0]


def quality_metrics(original: torch.Tensor, protected: torch.Tensor,
                    jnd: torch.Tensor | None = None) -> dict[str, float]:
    """Perceptual measures between the original and the written pixels (see
    docs/perceptual.md for what each threshold means to a viewer): PSNR, SSIM, mean and
    99th-percentile CIEDE2000, and the share of pixels changed beyond notice. `jnd`: the
    original's jnd_map (1 x H x W), where the caller has it (unused when the measures
    take a downscale)."""
    a, b = measured_pair(original, protected)
    if a.shape[-2:] != original.shape[-2:]:
        jnd = None
    delta_e, delta_e_p99 = delta_e2000_mean_p99(a, b)
    return {"psnr": round(float(psnr(a, b)[0]), 3), "ssim": round(float(ssim(a, b)[0]), 5),
            "delta_e": round(float(delta_e[0]), 4),
            "delta_e_p99": round(float(delta_e_p99[0]), 4),
            "visible_share": round(float(visible_share(
                a, b, None if jnd is None else jnd.unsqueeze(0))[0]), 5)}


def read_back(img: Image.Image, image: DecodedImage) -> torch.Tensor:
    """The pixels as written (after quantisation), as 3 x H x W float, for honest metrics."""
    if image.kind == "I;16":
        grey = np.asarray(img, dtype=np.float32) / 65535.0
        arr = np.repeat(grey[:, :, None], 3, axis=2)
    elif image.kind == "L":
        grey = np.asarray(img.convert("L"), dtype=np.float32) / 255.0
        arr = np.repeat(grey[:, :, None], 3, axis=2)
    else:
        arr = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1)


def save_image_atomic(img: Image.Image, path: Path, image: DecodedImage, quality: int,
                      keep_metadata: bool, strip_gps: bool = True) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over the final name,
    so a half-written file never appears under the final name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = SUFFIX_FORMATS.get(path.suffix.lower(), "PNG")
    params: dict[str, Any] = {}
    if image.icc_profile and fmt in ("PNG", "JPEG", "WEBP", "TIFF"):
        params["icc_profile"] = image.icc_profile  # colour management is not metadata to drop
    if keep_metadata and image.exif and fmt in ("PNG", "JPEG", "WEBP", "TIFF"):
        params["exif"] = without_gps(image.exif) if strip_gps else image.exif
    if fmt in LOSSY_FORMATS:
        params["quality"] = quality
        if fmt == "JPEG":
            params["subsampling"] = 0  # 4:2:0 would smear the per-pixel perturbation
            if img.mode == "RGBA" or img.mode == "LA":
                img = img.convert("RGB" if img.mode == "RGBA" else "L")
    if fmt == "BMP" and img.mode == "LA":
        img = img.convert("RGBA")
    if fmt == "PNG":
        # zlib's fastest level: a protected image's perturbation is noise that no level
        # compresses well, so the default level 6 costs several times the encoding time
        # for files only somewhat smaller (docs/performance.md: `python -m
        # dune_gui.bench.export` measures both)
        params["compress_level"] = PNG_COMPRESS_LEVEL
    with atomic_write(path) as fh:
        img.save(fh, format=fmt, **params)


def export_image(image: DecodedImage, protected: torch.Tensor, path: Path, quality: int,
                 keep_metadata: bool, strip_gps: bool,
                 jnd: torch.Tensor | None = None) -> dict[str, float]:
    """Quantise and atomically write one protected image; return the perceptual measures of
    the pixels as written (read back from the file for lossy formats). `jnd`: the
    original's, where the caller has it (original_jnd)."""
    if image.kind == "I;16" and path.suffix.lower() not in SIXTEEN_BIT_SUFFIXES:
        image.kind = "L"
    pil = to_pil(protected, image)
    save_image_atomic(pil, path, image, quality, keep_metadata, strip_gps)
    if is_lossy(path):
        with Image.open(path) as saved:
            saved.load()
            written = read_back(saved, image)
    else:
        written = read_back(pil, image)
    original = torch.from_numpy(image.rgb).permute(2, 0, 1)
    return quality_metrics(original, written, jnd)


def without_gps(exif_bytes: bytes) -> bytes:
    exif = Image.Exif()
    exif.load(exif_bytes)
    exif.pop(0x8825, None)  # GPSInfo IFD
    return exif.tobytes()


def remove_stale_temporaries(root: Path) -> int:
    """Delete temporary files a killed run left behind (never anything else)."""
    removed = 0
    for path in root.rglob(f"{TEMP_PREFIX}*{TEMP_SUFFIX}"):
        if path.is_file() and not path.is_symlink():
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def append_journal_line(path: Path, record: dict[str, Any]) -> None:
    """Append one record and make it durable, so a SIGKILL loses at most the image being
    written when it struck."""
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, ensure_ascii=True, allow_nan=False) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def read_journal(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            break  # a line torn by a crash ends the journal
    return records


def write_json_atomic(data: Any, path: Path) -> None:
    with atomic_write(path, "w") as fh:
        json.dump(data, fh, indent=1, ensure_ascii=True, allow_nan=False)
        fh.write("\n")
