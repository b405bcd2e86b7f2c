"""Nothing lost, nothing trusted: a hostile folder built on the fly, the real engine over it,
output failures, and a SIGKILL in the middle of a run."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dune_gui.engine import FolderError, ProtectConfig, protect
from tests.conftest import ROOT, SAMPLE, make_labeled_folder, tiny_settings

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def _snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    out = {}
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            p = Path(dirpath) / name
            if p.is_symlink():
                out[str(p)] = (os.readlink(p), p.lstat().st_mtime_ns)
            elif os.access(p, os.R_OK):
                out[str(p)] = (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
    return out


@pytest.fixture
def hostile(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A folder with every kind of trouble; returns it and {relative path: expected reason}."""
    src = make_labeled_folder(tmp_path / "in", classes=3, per_class=4)
    a, b, c = sorted(p.name for p in src.iterdir())
    base = Image.open(next((src / a).glob("*.jpg"))).convert("RGB")
    bad: dict[str, str] = {}
    (src / a / "empty.png").write_bytes(b"")
    bad[f"{a}/empty.png"] = "empty file"
    good_jpg = (src / a / "0000.jpg").read_bytes()
    (src / a / "truncated.jpg").write_bytes(good_jpg[: len(good_jpg) // 3])
    bad[f"{a}/truncated.jpg"] = "truncated"
    big = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8))
    big.save(src / a / "png-source.png")
    data = (src / a / "png-source.png").read_bytes()
    (src / a / "png-source.png").unlink()
    (src / b / "truncated.png").write_bytes(data[: len(data) // 2])
    bad[f"{b}/truncated.png"] = "truncated|corrupt"
    (src / b / "fake.jpg").write_text("<html>not an image</html>")
    bad[f"{b}/fake.jpg"] = "not a readable image"
    Image.new("RGB", (300, 300), (9, 9, 9)).save(src / b / "huge.png")
    bad[f"{b}/huge.png"] = "too large"
    (src / c / "notes.txt").write_text("hello")
    bad[f"{c}/notes.txt"] = "not an image"
    os.symlink(src / c / "missing.png", src / c / "broken-link.png")
    bad[f"{c}/broken-link.png"] = "broken symbolic link"
    os.symlink(src / c / "loop-b.png", src / c / "loop-a.png")
    os.symlink(src / c / "loop-a.png", src / c / "loop-b.png")
    bad[f"{c}/loop-a.png"] = "broken symbolic link"
    bad[f"{c}/loop-b.png"] = "broken symbolic link"
    os.symlink(src / c, src / c / "folder-link")
    bad[f"{c}/folder-link"] = "not followed"
    # usable oddities
    base.resize((1, 1)).save(src / a / "one-pixel.png")
    base.resize((400, 3)).save(src / a / "very-wide.png")
    Image.fromarray(np.full((20, 30), 50000, np.uint16)).save(src / b / "sixteen-bit.png")
    base.convert("CMYK").save(src / b / "cmyk.jpg")
    pal = base.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    pal.save(src / c / "palette-transparent.png", transparency=0)
    frames = [base, base.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    frames[0].save(src / c / "animated.gif", save_all=True, append_images=frames[1:])
    frames[0].save(src / c / "animated.webp", save_all=True, append_images=frames[1:])
    base.save(src / c / "dup.jpg")
    base.save(src / c / "dup.png")
    long_name = "l" * 240 + ".jpg"
    base.save(src / c / long_name)
    with open(os.path.join(os.fsencode(src / c), b"caf\xe9-latin1.png"), "wb") as fh:
        base.save(fh, format="PNG")
    (src / c / "nested" / "deeper").mkdir(parents=True)
    base.save(src / c / "nested" / "deeper" / "x.bmp")
    if not IS_ROOT:  # root reads everything, so the permission case only exists for users
        base.save(src / a / "unreadable.png")
        os.chmod(src / a / "unreadable.png", 0)
        bad[f"{a}/unreadable.png"] = "permission denied"
    return src, bad


def test_hostile_folder_is_processed_and_every_problem_reported(
        hostile: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    src, bad = hostile
    before = _snapshot(src)
    out = tmp_path / "out"
    result = protect(ProtectConfig(input_dir=src, output_dir=out,
                                   **tiny_settings(max_pixels=50_000)))
    assert result.status == "completed"
    assert _snapshot(src) == before
    manifest = json.loads((out / "manifest.json").read_text())
    records = {r["source"]: r for r in manifest["images"]}
    import re

    for rel, reason in bad.items():
        assert records[rel]["status"] == "skipped", rel
        assert re.search(reason, records[rel]["reason"]), (rel, records[rel]["reason"])
        assert "\n" not in records[rel]["reason"]
    done = {r["source"]: r for r in records.values() if r["status"] == "done"}
    assert len(done) == 12 + 12
    c = manifest["classes"][2]
    assert done[f"{c}/dup.jpg"]["output"] == f"{c}/dup.jpg.png"
    assert done[f"{c}/dup.png"]["output"] == f"{c}/dup.png.png"
    for rec in done.values():
        dst = out / rec["output"]
        assert dst.is_file(), rec
        with Image.open(dst) as img:
            size = img.size
        src_path = src / rec["source"]
        with Image.open(src_path) as orig:
            assert size == orig.size
    with Image.open(out / manifest["classes"][1] / "sixteen-bit.png") as img:
        assert img.mode.startswith("I")  # 16-bit grey stays 16-bit
    with Image.open(out / c / "palette-transparent.png") as img:
        assert img.mode == "RGBA"
    latin1 = [r for r in done if r.endswith("-latin1.png")]
    assert len(latin1) == 1 and (out / done[latin1[0]]["output"]).exists()
    assert not [p for p in out.rglob("*") if p.name.endswith(".part")]


def test_output_failures_are_clear_errors(labeled_folder: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(FolderError, match="cannot write to the output folder"):
        protect(ProtectConfig(input_dir=labeled_folder, output_dir=blocker / "out",
                              **tiny_settings()))


def test_disk_full_mid_run_leaves_no_garbage(labeled_folder: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    original_save = Image.Image.save
    calls = {"n": 0}

    def save_until_full(self: Image.Image, fp, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] > 5:
            if hasattr(fp, "write"):
                fp.write(b"\x89PNG partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        return original_save(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", save_until_full)
    with pytest.raises(FolderError, match="No space left on device"):
        protect(ProtectConfig(input_dir=labeled_folder, output_dir=out, **tiny_settings()))
    monkeypatch.undo()
    assert not [p for p in out.rglob("*") if p.name.endswith(".part")]
    manifest = json.loads((out / "manifest.json").read_text())
    done = [r for r in manifest["images"] if r["status"] == "done"]
    assert len(done) == 5
    for rec in done:  # every file under a final name is complete and readable
        with Image.open(out / rec["output"]) as img:
            img.load()
    assert len(list(out.rglob("*.png"))) == 5
    resumed = protect(ProtectConfig(input_dir=labeled_folder, output_dir=out, **tiny_settings()))
    assert resumed.reused == 5 and resumed.protected == 13


def _cli(src: Path, out: Path, cache: Path) -> subprocess.Popen:
    env = {**os.environ, "DUNE_CACHE_DIR": str(cache), "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-m", "dune_gui.cli", "protect", str(src), str(out), "--quiet",
            "--ensemble", "fast", "--checkpoints", "1", "--epochs", "1", "--steps", "25",
            "--step-size", "1", "--iterations", "2", "--particles", "4",
            "--colour-sample", "4", "--batch-size", "4", "--offset", "1"]
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    src = tmp_path / "in"
    shutil.copytree(SAMPLE, src)
    cache = tmp_path / "cache"
    reference = tmp_path / "reference"
    assert _cli(src, reference, cache).wait(timeout=600) == 0

    out = tmp_path / "out"
    proc = _cli(src, out, cache)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and len(list(out.rglob("*.png"))) < 10:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    finished = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}
    assert 10 <= len(finished) < 72, "the kill should land mid-run"

    resumed = _cli(src, out, cache)
    stdout, stderr = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, stderr.decode()
    assert "images protected now" in stdout.decode()
    redone = [p for p, m in finished.items() if p.stat().st_mtime_ns != m]
    assert len(redone) <= 1  # at most the image being written when the kill struck
    ref_files = sorted(p.relative_to(reference) for p in reference.rglob("*.png"))
    assert ref_files == sorted(p.relative_to(out) for p in out.rglob("*.png"))
    for rel in ref_files:
        assert (reference / rel).read_bytes() == (out / rel).read_bytes(), rel
    assert not [p for p in out.rglob("*") if p.name.endswith(".part")]

