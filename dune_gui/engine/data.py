"""Labeled-folder scanning and robust image decoding.

A labeled folder has one first-level subfolder per class (sorted by name gives the class
index); images may sit anywhere below their class folder. Every file that cannot be used is
reported with a one-line reason instead of stopping the run.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".webp", ".bmp", ".dib", ".tif", ".tiff", ".gif"}
)


class ImageError(Exception):
    """An input file that cannot be protected; the message is the user-facing reason."""


class FolderError(Exception):
    """The folder as a whole cannot be protected (missing, too few classes, ...)."""


@dataclass(frozen=True)
class ImageItem:
    path: Path
    rel: str  # POSIX path relative to the input root, used as the image's identity
    label: int


@dataclass(frozen=True)
class SkippedFile:
    rel: str
    reason: str


@dataclass
class FolderScan:
    root: Path
    classes: list[str]
    items: list[ImageItem]
    skipped: list[SkippedFile] = field(default_factory=list)

    def counts(self) -> list[int]:
        counts = [0] * len(self.classes)
        for item in self.items:
            counts[item.label] += 1
        return counts


def scan_folder(root: Path) -> FolderScan:
    """List classes and candidate image files without decoding anything."""
    root = Path(root)
    if not root.exists():
        raise FolderError(f"the folder {root} does not exist")
    if not root.is_dir():
        raise FolderError(f"{root} is not a folder")
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError as exc:
        raise FolderError(f"cannot read the folder {root}: {exc.strerror or exc}") from exc

    classes: list[str] = []
    items: list[ImageItem] = []
    skipped: list[SkippedFile] = []
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if not _is_dir(entry):
            skipped.append(SkippedFile(entry.name, "not inside a class folder"))
            continue
        label = len(classes)
        classes.append(entry.name)
        for path in _walk_files(Path(entry.path), skipped, root):
            rel = path.relative_to(root).as_posix()
            if path.suffix.lower() not in IMAGE_EXTENSIONS:
                skipped.append(SkippedFile(rel, f"not an image (extension '{path.suffix}')"))
            elif path.is_symlink() and not path.exists():
                skipped.append(SkippedFile(rel, "broken symbolic link"))
            else:
                items.append(ImageItem(path, rel, label))
    return FolderScan(root, classes, items, skipped)


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def _walk_files(top: Path, skipped: list[SkippedFile], root: Path) -> list[Path]:
    """Files below `top` in sorted order. Symlinked folders are not followed (no loops)."""
    found: list[Path] = []

    def onerror(exc: OSError) -> None:
        where = Path(exc.filename).relative_to(root).as_posix() if exc.filename else str(top)
        skipped.append(SkippedFile(where, f"cannot read folder: {exc.strerror or exc}"))

    for dirpath, dirnames, filenames in os.walk(top, onerror=onerror):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith("."):
                found.append(Path(dirpath) / name)
        for name in dirnames:
            p = Path(dirpath) / name
            if p.is_symlink():
                skipped.append(SkippedFile(p.relative_to(root).as_posix(),
                                           "symbolic link to a folder (not followed)"))
    return found


def file_digest(path: Path) -> str:
    """SHA-256 of the file's bytes: the identity used for caching and incremental runs."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    except OSError as exc:
        raise ImageError(f"cannot read file: {exc.strerror or exc}") from exc
    return h.hexdigest()


@dataclass
class DecodedImage:
    """A full-resolution image as float RGB in [0, 1] plus what is needed to write it back.

    `kind` is the output pixel family: "RGB", "L" (8-bit grey) or "I;16" (16-bit grey).
    `alpha` is the untouched alpha channel (uint8), or None.
    """

    rgb: np.ndarray  # H x W x 3 float32
    alpha: np.ndarray | None
    kind: str
    icc_profile: bytes | None
    exif: bytes | None

    @property
    def size(self) -> tuple[int, int]:
        return self.rgb.shape[1], self.rgb.shape[0]


def open_image(path: Path, max_pixels: int, draft_size: int | None = None) -> Image.Image:
    """Open, check and fully load the first frame, EXIF orientation applied.

    `draft_size` lets the JPEG decoder skip detail that a downscale would discard anyway.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(path)
            width, height = img.size
            if width * height > max_pixels:
                img.close()
                raise ImageError(
                    f"image too large: {width}x{height} = {width * height / 1e6:.1f} MP is over "
                    f"the limit of {max_pixels / 1e6:.1f} MP (raise it with --max-pixels)")
            if width < 1 or height < 1:
                raise ImageError("image has no pixels")
            img.seek(0)
            if draft_size is not None and img.format == "JPEG":
                img.draft(img.mode, (draft_size, draft_size))
            img.load()
            fmt = img.format or ""
            info = dict(img.info)
            img = ImageOps.exif_transpose(img)
            img.format = fmt
            img.info.update({k: v for k, v in info.items() if k not in img.info})
            return img
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"image too large (decompression bomb guard): {exc}") from exc
    except UnidentifiedImageError as exc:
        size = _size_or_none(path)
        if size == 0:
            raise ImageError("empty file") from exc
        raise ImageError("not a readable image (unknown or corrupt format)") from exc
    except PermissionError as exc:
        raise ImageError("permission denied") from exc
    except OSError as exc:
        msg = str(exc)
        if "truncated" in msg.lower() or "broken" in msg.lower():
            raise ImageError(f"truncated or corrupt image ({msg})") from exc
        raise ImageError(f"cannot decode image: {exc.strerror or msg}") from exc
    except (SyntaxError, ValueError, EOFError, IndexError, TypeError) as exc:
        raise ImageError(f"corrupt image data ({exc})") from exc


def _size_or_none(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


def to_float_rgb(img: Image.Image) -> tuple[np.ndarray, np.ndarray | None, str]:
    """Normalise any Pillow mode to (float RGB, alpha or None, output kind)."""
    mode = img.mode
    alpha: np.ndarray | None = None
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        arr = np.asarray(img).astype(np.float32)
        grey = np.clip(arr / 65535.0, 0.0, 1.0)
        return np.repeat(grey[:, :, None], 3, axis=2), None, "I;16"
    if mode == "F":
        arr = np.asarray(img).astype(np.float32)
        scale = 1.0 if float(np.nanmax(arr)) <= 1.0 else 255.0
        grey = np.clip(np.nan_to_num(arr) / scale, 0.0, 1.0)
        return np.repeat(grey[:, :, None], 3, axis=2), None, "L"
    if mode in ("1", "L", "LA", "La"):
        if mode in ("LA", "La"):
            la = img.convert("LA")
            alpha = np.asarray(la.getchannel("A")).copy()
            img = la.convert("L")
        grey = np.asarray(img.convert("L"), dtype=np.float32) / 255.0
        return np.repeat(grey[:, :, None], 3, axis=2), alpha, "L"
    has_alpha = mode in ("RGBA", "RGBa", "PA") or (mode == "P" and "transparency" in img.info)
    if has_alpha:
        rgba = img.convert("RGBA")
        alpha = np.asarray(rgba.getchannel("A")).copy()
        rgb = rgba.convert("RGB")
    else:
        rgb = img.convert("RGB")
    return np.asarray(rgb, dtype=np.float32) / 255.0, alpha, "RGB"


def decode_full(path: Path, max_pixels: int) -> DecodedImage:
    img = open_image(path, max_pixels)
    try:
        rgb, alpha, kind = to_float_rgb(img)
        exif = img.getexif()
        exif_bytes = None
        if len(exif):
            exif[0x0112] = 1  # orientation already applied to the pixels
            exif_bytes = exif.tobytes()
        return DecodedImage(rgb, alpha, kind, img.info.get("icc_profile"), exif_bytes)
    finally:
        img.close()


def resize_to_working(rgb: np.ndarray | torch.Tensor, size: int) -> torch.Tensor:
    """H x W x 3 float in [0,1] -> 3 x size x size float, antialiased when shrinking."""
    t = torch.as_tensor(rgb).permute(2, 0, 1).unsqueeze(0).float()
    if t.shape[-2:] != (size, size):
        t = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False,
                          antialias=True).clamp_(0.0, 1.0)
    return t[0]


def decode_working(path: Path, size: int, max_pixels: int) -> torch.Tensor:
    """Decode straight to the surrogates' working resolution, as uint8 (3 x size x size).

    JPEG decoding is told the target size (draft mode) so a 40 MP photo is not fully
    decoded only to be shrunk to 32 px.
    """
    img = open_image(path, max_pixels, draft_size=size * 2)
    try:
        rgb, _alpha, _kind = to_float_rgb(img)
    finally:
        img.close()
    small = resize_to_working(rgb, size)
    return (small * 255.0).round_().to(torch.uint8)


def decode_square_crop(path: Path, size: int, max_pixels: int) -> torch.Tensor:
    """Decode, resize the short side to `size` (aspect kept, antialiased) and take the
    central size x size square, as uint8: what an ImageNet-style pipeline feeds a network,
    without squashing the picture."""
    img = open_image(path, max_pixels, draft_size=size * 2)
    try:
        rgb, _alpha, _kind = to_float_rgb(img)
    finally:
        img.close()
    t = torch.as_tensor(rgb).permute(2, 0, 1).unsqueeze(0)
    h, w = t.shape[-2:]
    scale = size / min(h, w)
    new = (max(size, round(h * scale)), max(size, round(w * scale)))
    if (h, w) != new:
        t = F.interpolate(t, size=new, mode="bilinear", align_corners=False,
                          antialias=True).clamp_(0.0, 1.0)
    top, left = (new[0] - size) // 2, (new[1] - size) // 2
    square = t[0, :, top:top + size, left:left + size]
    return (square * 255.0).round_().to(torch.uint8)


# Images whose short side is at most this are small (CIFAR-like): worked and trained at their
# own size. Larger ones are photos, worked and trained at PHOTO_SIZE_GPU / _CPU.
SMALL_IMAGE_SIDE = 64
PHOTO_SIZE_GPU = 224  # what ImageNet-style pipelines train at
PHOTO_SIZE_CPU = 128  # keeps a photo folder's run on a CPU to hours, not days


def photo_resolution(paths: list[Path], max_pixels: int, on_gpu: bool) -> tuple[int, int]:
    """(the folder's typical short side, the resolution to work photos at, or 0 for a
    folder of small images)."""
    side = natural_size(paths, max_pixels)
    if side <= SMALL_IMAGE_SIDE:
        return side, 0
    return side, PHOTO_SIZE_GPU if on_gpu else PHOTO_SIZE_CPU


def natural_size(paths: list[Path], max_pixels: int, sample: int = 32) -> int:
    """Median short side of a sample of images (headers only)."""
    sides = []
    for path in paths[:: max(1, len(paths) // sample)][:sample]:
        try:
            with Image.open(path) as img:
                sides.append(min(img.size))
        except (OSError, ValueError, Image.DecompressionBombError):
            continue
    return sorted(sides)[len(sides) // 2] if sides else 32


def load_thumbnail(path: Path, size: int = 96, max_pixels: int = 100_000_000) -> np.ndarray:
    """A small RGB preview (H x W x 3 uint8, longest side `size`) for browsing a folder."""
    img = open_image(path, max_pixels, draft_size=size)
    try:
        rgb, _alpha, _kind = to_float_rgb(img)
    finally:
        img.close()
    small = Image.fromarray(np.rint(rgb * 255).astype(np.uint8), "RGB")
    small.thumbnail((size, size), Image.Resampling.BICUBIC)
    return np.asarray(small).copy()
