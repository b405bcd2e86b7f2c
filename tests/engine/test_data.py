from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dune_gui.engine.data import (
    FolderError,
    ImageError,
    decode_full,
    decode_working,
    scan_folder,
)


def _save(path: Path, img: Image.Image, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, **kw)
    return path


def test_classes_sorted_and_nested_images_found(tmp_path: Path) -> None:
    rgb = Image.new("RGB", (8, 8), (10, 20, 30))
    _save(tmp_path / "zebra" / "a.png", rgb)
    _save(tmp_path / "apple" / "sub" / "deep" / "b.jpg", rgb)
    (tmp_path / "apple" / "notes.txt").write_text("hello")
    (tmp_path / "loose.png").write_bytes(b"")
    scan = scan_folder(tmp_path)
    assert scan.classes == ["apple", "zebra"]
    assert [(i.rel, i.label) for i in scan.items] == [("apple/sub/deep/b.jpg", 0),
                                                     ("zebra/a.png", 1)]
    reasons = {s.rel: s.reason for s in scan.skipped}
    assert "not an image" in reasons["apple/notes.txt"]
    assert "class folder" in reasons["loose.png"]


def test_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FolderError, match="does not exist"):
        scan_folder(tmp_path / "nope")


@pytest.mark.parametrize(("mode", "kind", "has_alpha"), [
    ("RGB", "RGB", False), ("RGBA", "RGB", True), ("L", "L", False), ("LA", "L", True),
    ("CMYK", "RGB", False), ("I;16", "I;16", False), ("1", "L", False),
])
def test_modes_decode_to_float_rgb(tmp_path: Path, mode: str, kind: str, has_alpha: bool) -> None:
    img = Image.new(mode, (12, 7))
    fmt = "TIFF" if mode == "CMYK" else "PNG"
    path = _save(tmp_path / f"x.{fmt.lower()}", img, format=fmt)
    decoded = decode_full(path, 10**8)
    assert decoded.rgb.shape == (7, 12, 3)
    assert decoded.rgb.dtype == np.float32
    assert decoded.rgb.min() >= 0.0 and decoded.rgb.max() <= 1.0
    assert decoded.kind == kind
    assert (decoded.alpha is not None) == has_alpha


def test_sixteen_bit_keeps_precision(tmp_path: Path) -> None:
    arr = np.full((4, 4), 40000, dtype=np.uint16)
    path = _save(tmp_path / "g16.png", Image.fromarray(arr))
    decoded = decode_full(path, 10**8)
    assert decoded.rgb[0, 0, 0] == pytest.approx(40000 / 65535, abs=1e-6)


def test_palette_with_transparency_keeps_alpha(tmp_path: Path) -> None:
    img = Image.new("P", (6, 6), 1)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    img.info["transparency"] = 0
    path = _save(tmp_path / "p.png", img, transparency=0)
    decoded = decode_full(path, 10**8)
    assert decoded.kind == "RGB" and decoded.alpha is not None


def test_gif_uses_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 0, 255))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    decoded = decode_full(path, 10**8)
    assert decoded.rgb[0, 0, 0] > 0.9 and decoded.rgb[0, 0, 2] < 0.1


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    img = Image.new("RGB", (20, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees
    path = _save(tmp_path / "o.jpg", img, exif=exif.tobytes())
    decoded = decode_full(path, 10**8)
    assert decoded.size == (10, 20)


@pytest.mark.parametrize(("content", "reason"), [
    (b"", "empty file"),
    (b"this is not an image at all", "not a readable image"),
])
def test_bad_files_give_clear_reasons(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    with pytest.raises(ImageError, match=reason):
        decode_full(path, 10**8)


def test_truncated_jpeg_is_reported(tmp_path: Path) -> None:
    arr = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    good = _save(tmp_path / "good.jpg", Image.fromarray(arr), quality=90)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    with pytest.raises(ImageError, match=r"truncated|corrupt"):
        decode_full(bad, 10**8)


def test_pixel_limit(tmp_path: Path) -> None:
    path = _save(tmp_path / "big.png", Image.new("RGB", (100, 100)))
    with pytest.raises(ImageError, match="too large"):
        decode_full(path, 5000)


def test_working_decode_is_square_uint8(tmp_path: Path) -> None:
    path = _save(tmp_path / "wide.jpg", Image.new("RGB", (300, 120), (200, 100, 50)))
    small = decode_working(path, 32, 10**8)
    assert small.shape == (3, 32, 32) and str(small.dtype) == "torch.uint8"
    assert abs(int(small[0, 16, 16]) - 200) <= 3
