"""End-to-end invariants of the real engine on a tiny real folder with tiny settings."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dune_gui.engine import (
    CancelToken,
    FolderError,
    ProfileMismatch,
    ProgressEvent,
    ProtectConfig,
    protect,
)
from dune_gui.engine.colour import expand_offsets
from tests.conftest import make_labeled_folder, new_file_mode, tiny_settings


def _config(src: Path, dst: Path, **kw: object) -> ProtectConfig:
    return ProtectConfig(input_dir=src, output_dir=dst, **tiny_settings(**kw))


def _snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            out[str(p.relative_to(folder))] = (hashlib.sha256(p.read_bytes()).hexdigest(),
                                               p.stat().st_mtime_ns)
    return out


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"), dtype=np.int16)


@pytest.fixture
def mixed_folder(tmp_path: Path) -> Path:
    """Real CIFAR images plus odd modes, a larger image and files that must be skipped."""
    src = make_labeled_folder(tmp_path / "input", classes=3, per_class=5)
    classes = sorted(p.name for p in src.iterdir())
    base = Image.open(next((src / classes[0]).glob("*.jpg"))).convert("RGB")
    base.convert("RGBA").save(src / classes[0] / "alpha.png")
    base.convert("L").save(src / classes[1] / "grey.png")
    base.resize((96, 64)).save(src / classes[2] / "wide.png")
    (src / classes[1] / "nested").mkdir()
    base.save(src / classes[1] / "nested" / "deep.webp")
    (src / classes[0] / "readme.txt").write_text("not an image")
    (src / classes[2] / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 garbage")
    (src / classes[2] / "empty.png").write_bytes(b"")
    return src


def test_full_run_keeps_layout_size_mode_and_input(mixed_folder: Path, tmp_path: Path) -> None:
    before = _snapshot(mixed_folder)
    out = tmp_path / "out"
    events: list[ProgressEvent] = []
    result = protect(_config(mixed_folder, out), progress=events.append)
    assert result.status == "completed"
    assert _snapshot(mixed_folder) == before  # input never touched (bytes and mtimes)

    manifest = json.loads((out / "manifest.json").read_text())
    for key in ("version", "config", "seed", "classes", "targets", "colour_offsets", "eps",
                "images"):
        assert key in manifest
    records = {r["source"]: r for r in manifest["images"]}
    done = [r for r in records.values() if r["status"] == "done"]
    skipped = {r["source"]: r["reason"] for r in records.values() if r["status"] == "skipped"}
    assert len(done) == 3 * 5 + 4
    assert set(skipped) == {f"{manifest['classes'][0]}/readme.txt",
                            f"{manifest['classes'][2]}/broken.jpg",
                            f"{manifest['classes'][2]}/empty.png"}
    assert "empty file" in skipped[f"{manifest['classes'][2]}/empty.png"]
    for rec in done:
        src, dst = mixed_folder / rec["source"], out / rec["output"]
        assert Path(rec["output"]).with_suffix("") == Path(rec["source"]).with_suffix("")
        assert dst.suffix == ".png"
        with Image.open(src) as a, Image.open(dst) as b:
            assert a.size == b.size
            expected_mode = {"RGBA": "RGBA", "L": "L"}.get(a.mode, "RGB")
            assert b.mode == expected_mode
            if a.mode == "RGBA":
                assert a.getchannel("A").tobytes() == b.getchannel("A").tobytes()
        for metric in ("psnr", "ssim", "delta_e"):
            assert isinstance(rec[metric], float)
        assert dst.stat().st_mode & 0o777 == new_file_mode()  # publishable, not private
    assert (out / "manifest.json").stat().st_mode & 0o777 == new_file_mode()
    assert not list(out.rglob("*.part"))
    stages = {e.stage for e in events}
    assert {"scan", "surrogates", "colour", "spatial", "export"} <= stages
    classes = manifest["classes"]
    assert manifest["targets"] == {c: classes[(i + 1) % 3] for i, c in enumerate(classes)}


def test_spatial_mode_stays_within_eps(labeled_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    warnings: list[str] = []
    protect(_config(labeled_folder, out, mode="spatial", eps=4 / 255, step_size=2 / 255),
            log=lambda e: warnings.append(e.message) if e.level == "warning" else None)
    assert not any("budget" in w for w in warnings)  # 3 steps of 2/255 reach 4/255
    for src in labeled_folder.rglob("*.jpg"):
        dst = out / src.relative_to(labeled_folder).with_suffix(".png")
        diff = np.abs(_pixels(dst) - _pixels(src))
        assert diff.max() <= 4  # eps = 4/255 and rounding of 8-bit sources
        assert diff.max() > 0


def test_steps_that_cannot_reach_the_budget_are_warned_about(labeled_folder: Path,
                                                             tmp_path: Path) -> None:
    warnings: list[str] = []
    protect(_config(labeled_folder, tmp_path / "out", mode="spatial", eps=16 / 255,
                    steps=3, step_size=2 / 255),
            log=lambda e: warnings.append(e.message) if e.level == "warning" else None)
    assert any("reach at most 6/255, less than the budget of 16/255" in w for w in warnings)


def test_colour_offset_is_identical_within_a_class(labeled_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = protect(_config(labeled_folder, out, mode="colour", colour_grid=1,
                             colour_headroom=False))
    for cls, offset in result.colour_offsets.items():
        expected = np.rint(np.asarray(offset) * 255)
        for src in (labeled_folder / cls).glob("*.jpg"):
            a = _pixels(src)
            b = _pixels(out / cls / (src.stem + ".png"))
            shifted = a + expected
            unclipped = ((shifted > 1) & (shifted < 254)).all(axis=2)
            diff = (b - a)[unclipped]
            assert np.abs(diff - expected).max() <= 1  # rounding only


def test_colour_field_is_identical_within_a_class_pixel_by_pixel(labeled_folder: Path,
                                                                 tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = protect(_config(labeled_folder, out, mode="colour", colour_grid=2,
                             colour_headroom=False))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["method"]["colour_grid"] == 2
    for cls, offset in result.colour_offsets.items():
        assert manifest["colour_offsets"][cls] == offset and len(offset) == 12
        points = np.asarray(offset).reshape(3, 2, 2)
        assert np.abs(points - points[:, :1, :1]).max() > 1 / 255  # the corners do differ
        for src in (labeled_folder / cls).glob("*.jpg"):
            a = _pixels(src)
            b = _pixels(out / cls / (src.stem + ".png"))
            h, w = a.shape[:2]
            field = expand_offsets(torch.tensor([offset]), h, w)[0].permute(1, 2, 0).numpy()
            shifted = a + field * 255
            unclipped = ((shifted > 1) & (shifted < 254)).all(axis=2)
            assert np.abs((b - a) - field * 255)[unclipped].max() <= 0.51  # rounding only
            for corner, (y, x) in enumerate(((0, 0), (0, w - 1), (h - 1, 0), (h - 1, w - 1))):
                assert np.allclose(field[y, x], points.reshape(3, 4)[:, corner], atol=1e-6)


def test_same_seed_gives_identical_files(labeled_folder: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    protect(_config(labeled_folder, a))
    os.environ["DUNE_CACHE_DIR"] = str(tmp_path / "fresh-cache")  # retrain from scratch
    protect(_config(labeled_folder, b))
    files_a = sorted(p.relative_to(a) for p in a.rglob("*.png"))
    assert files_a == sorted(p.relative_to(b) for p in b.rglob("*.png"))
    for rel in files_a:
        assert (a / rel).read_bytes() == (b / rel).read_bytes()


def test_cancel_stops_within_one_batch_and_resume_matches(labeled_folder: Path,
                                                          tmp_path: Path) -> None:
    reference = tmp_path / "reference"
    protect(_config(labeled_folder, reference))
    out = tmp_path / "out"
    token = CancelToken()

    def cancel_on_first_export(event: ProgressEvent) -> None:
        if event.stage == "export" and event.done > 0:
            token.cancel()

    result = protect(_config(labeled_folder, out), progress=cancel_on_first_export,
                     cancel=token)
    assert result.status == "cancelled"
    written = sorted(out.rglob("*.png"))
    assert len(written) == 4  # one batch
    manifest = json.loads((out / "manifest.json").read_text())
    assert sum(r["status"] == "done" for r in manifest["images"]) == 4
    mtimes = {p: p.stat().st_mtime_ns for p in written}

    resumed = protect(_config(labeled_folder, out))
    assert resumed.status == "completed"
    assert resumed.reused == 4 and resumed.protected == 18 - 4
    assert all(p.stat().st_mtime_ns == m for p, m in mtimes.items())  # not redone
    for p in reference.rglob("*.png"):
        assert p.read_bytes() == (out / p.relative_to(reference)).read_bytes()


def test_growing_folder_protects_only_new_images(labeled_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = protect(_config(labeled_folder, out))
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}
    cls = first.classes[1]
    shutil.copy2(next((labeled_folder / cls).glob("*.jpg")), labeled_folder / cls / "new.jpg")
    second = protect(_config(labeled_folder, out))
    assert second.protected == 1 and second.reused == 18
    assert second.colour_offsets == first.colour_offsets
    assert (out / cls / "new.png").exists()
    assert all(p.stat().st_mtime_ns == m for p, m in mtimes.items())


def test_other_settings_into_the_same_output_are_refused(labeled_folder: Path,
                                                         tmp_path: Path) -> None:
    out = tmp_path / "out"
    protect(_config(labeled_folder, out))
    with pytest.raises(ProfileMismatch, match="eps"):
        protect(_config(labeled_folder, out, eps=4 / 255))


def test_folder_problems_are_clear_errors_before_any_work(tmp_path: Path) -> None:
    one = make_labeled_folder(tmp_path / "one", classes=1)
    with pytest.raises(FolderError, match="at least two"):
        protect(_config(one, tmp_path / "o1"))
    two = make_labeled_folder(tmp_path / "two", classes=2)
    (two / "empty-class").mkdir()
    (two / "empty-class" / "x.txt").write_text("x")
    with pytest.raises(FolderError, match="no usable image"):
        protect(_config(two, tmp_path / "o2"))
    ok = make_labeled_folder(tmp_path / "ok", classes=2)
    with pytest.raises(FolderError, match="inside"):
        protect(_config(ok, ok / "protected"))
    assert not (ok / "protected").exists()
    with pytest.raises(FolderError, match="multiple"):
        protect(_config(ok, tmp_path / "o3", label_offset=2))


def test_keep_format_writes_source_formats(labeled_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    protect(_config(labeled_folder, out, format="keep", quality=90))
    assert sorted(p.suffix for p in out.rglob("*.*") if p.name != "manifest.json") == \
        [".jpg"] * 18


def test_preview_matches_the_export_and_separates_the_parts(labeled_folder: Path,
                                                            tmp_path: Path) -> None:
    from dune_gui.engine import preview

    config = _config(labeled_folder, tmp_path / "out")
    classes, images = preview(config, count=3)
    assert len(images) == 3 and {im.cls for im in images} == set(classes)
    assert not (tmp_path / "out").exists()  # a preview writes nothing
    protect(config)  # reuses cached surrogates and colour offsets
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    for im in images:
        assert np.abs(im.spatial).max() <= config.eps + 1e-6
        assert np.allclose(im.colour, manifest["colour_offsets"][im.cls])
        written = _pixels(tmp_path / "out" / Path(im.rel).with_suffix(".png"))
        assert np.array_equal(np.rint(im.protected * 255).astype(np.int16), written)
        assert abs(sum(im.prediction_before) - 1) < 1e-4


def test_metadata_kept_on_request_with_gps_stripped(tmp_path: Path) -> None:
    src = make_labeled_folder(tmp_path / "in", classes=2, per_class=2)
    target = sorted((src / sorted(p.name for p in src.iterdir())[0]).glob("*.jpg"))[0]
    exif = Image.Exif()
    exif[0x010F] = "CameraMaker"  # Make
    exif[0x8825] = {1: "N", 2: (52.0, 22.0, 0.0)}  # GPS IFD: where the photo was taken
    Image.open(target).save(target, exif=exif.tobytes(), quality=95)
    for strip, expect_gps in ((True, False), (False, True)):
        out = tmp_path / f"out-{strip}"
        protect(_config(src, out, keep_metadata=True, strip_gps=strip))
        with Image.open(out / target.relative_to(src).with_suffix(".png")) as img:
            written = img.getexif()
        assert written.get(0x010F) == "CameraMaker"
        assert (0x8825 in written) == expect_gps
    plain = tmp_path / "plain"
    protect(_config(src, plain))
    with Image.open(plain / target.relative_to(src).with_suffix(".png")) as img:
        assert 0x010F not in img.getexif()


def test_a_three_class_folder_is_protected_at_the_default_label_shift(tmp_path: Path) -> None:
    src = make_labeled_folder(tmp_path / "input", classes=3, per_class=2)
    settings = tiny_settings()
    settings.pop("label_offset")  # the default: auto
    out = tmp_path / "out"
    result = protect(ProtectConfig(input_dir=src, output_dir=out, **settings))
    assert result.status == "completed" and result.label_shift == 1
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["label_shift"] == 1 and manifest["config"]["method"]["label_offset"] == 0
    classes = manifest["classes"]
    assert manifest["targets"] == {c: classes[(i + 1) % 3] for i, c in enumerate(classes)}
    again = protect(ProtectConfig(input_dir=src, output_dir=out, **settings,))
    assert again.reused == 6  # the profile is extended, not refused


def test_a_profile_with_an_explicit_shift_accepts_auto_when_it_resolves_the_same(
        labeled_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    protect(_config(labeled_folder, out, label_offset=1))  # 3 classes: auto is 1 too
    assert protect(_config(labeled_folder, out, label_offset=0)).reused == 18


def test_a_run_at_auto_working_size_extends_a_profile_worked_at_an_explicit_size(
        labeled_folder: Path, tmp_path: Path) -> None:
    """Like the surrogate epochs, an auto working size takes the size the profile was
    worked at (not the one auto would choose for the folder) instead of a mismatch."""
    out = tmp_path / "out"
    protect(_config(labeled_folder, out, working_size=16, mode="spatial"))
    Image.new("RGB", (32, 32), (90, 120, 30)).save(labeled_folder / "bird" / "extra.png")
    again = protect(_config(labeled_folder, out, working_size=0, mode="spatial"))
    assert again.protected == 1 and again.reused == 18
    assert json.loads((out / "manifest.json").read_text())["working_size"] == 16


def test_a_soft_colour_shift_never_clips_and_follows_one_field_per_class(
        labeled_folder: Path, tmp_path: Path) -> None:
    """With colour_headroom each pixel moves by field x (room to black or white): no pixel
    is pushed to 0 or 255 that was not there, and the field is the class's, pixel by pixel."""
    out = tmp_path / "out"
    result = protect(_config(labeled_folder, out, mode="colour", colour_grid=2,
                             colour_bound=0.3, colour_init=0.3, psnr_min=0.0, ssim_min=0.0,
                             delta_e_max=100.0))
    for cls, offset in result.colour_offsets.items():
        for src in (labeled_folder / cls).glob("*.jpg"):
            a = _pixels(src).astype(np.float64)
            b = _pixels(out / cls / (src.stem + ".png")).astype(np.float64)
            field = expand_offsets(torch.tensor([offset]), *a.shape[:2])[0].permute(1, 2, 0)
            field = field.numpy() * 255
            room = np.where(field > 0, 255 - a, a)
            assert np.abs(b - (a + field * room / 255)).max() <= 1  # rounding only
            assert not ((b == 255) & (a < 255)).any() and not ((b == 0) & (a > 0)).any()


def test_a_perceptual_budget_keeps_each_pixel_within_its_noticeable_change(
        labeled_folder: Path, tmp_path: Path) -> None:
    from dune_gui.engine.metrics import jnd_map

    out = tmp_path / "out"
    protect(_config(labeled_folder, out, mode="spatial", eps=16 / 255, step_size=6 / 255,
                    jnd_budget=0.5))
    flat = textured = 0.0
    for src in labeled_folder.rglob("*.jpg"):
        a = _pixels(src)
        b = _pixels(out / src.relative_to(labeled_folder).with_suffix(".png"))
        x = torch.from_numpy(a).permute(2, 0, 1).float().unsqueeze(0) / 255
        jnd = jnd_map(x)[0, 0].numpy() * 255
        bound = (jnd * 0.5).clip(max=16)
        change = np.abs(b - a).max(axis=2)
        # the bound up to rounding to whole levels, and never past notice
        assert (change <= np.floor(bound + 0.5) + 1e-6).all()
        assert (change <= jnd + 1e-4).all()
        flat += change[bound < np.median(bound)].mean()
        textured += change[bound >= np.median(bound)].mean()
    assert textured > flat  # the perturbation goes where the picture can hide it


def test_auto_epochs_resolve_from_the_folder_and_extend_any_profile(
        labeled_folder: Path, tmp_path: Path) -> None:
    """Auto records the epochs it resolved; a later run at auto extends a profile trained
    with an explicit count (an older manifest) without retraining or a mismatch."""
    from dune_gui.engine.config import resolve_surrogate_epochs

    auto = tmp_path / "auto"
    protect(_config(labeled_folder, auto, epochs=0, mode="spatial"))
    recorded = json.loads((auto / "manifest.json").read_text())["surrogates"]["epochs"]
    assert recorded == resolve_surrogate_epochs(0, 18, 32)
    explicit = tmp_path / "explicit"
    protect(_config(labeled_folder, explicit, epochs=2, mode="spatial"))
    new = labeled_folder / "bird" / "extra.png"  # the folder grows
    Image.new("RGB", (32, 32), (90, 120, 30)).save(new)
    logs: list[str] = []
    again = protect(_config(labeled_folder, explicit, epochs=0, mode="spatial"),
                    log=lambda e: logs.append(e.message))
    assert again.protected == 1 and again.reused == 18
    assert any("loaded 1 checkpoints from cache" in m for m in logs)
    manifest = json.loads((explicit / "manifest.json").read_text())
    assert manifest["surrogates"]["epochs"] == 2


def test_extending_a_profile_reads_each_cached_surrogate_once(
        labeled_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Checking that the profile's surrogates are still cached reads them; building the
    ensemble then uses those checkpoints instead of reading the files again."""
    from dune_gui.engine import stages, surrogates

    out = tmp_path / "out"
    protect(_config(labeled_folder, out, mode="spatial"))
    Image.new("RGB", (32, 32), (90, 120, 30)).save(labeled_folder / "bird" / "extra.png")
    reads: list[Path] = []
    real = surrogates.load_cached

    def counting(path: Path) -> object:
        reads.append(path)
        return real(path)

    monkeypatch.setattr(stages, "load_cached", counting)
    monkeypatch.setattr(surrogates, "load_cached", counting)
    again = protect(_config(labeled_folder, out, mode="spatial"))
    assert again.protected == 1
    assert len(reads) == 1  # one architecture, one read


def test_the_auto_ensemble_is_recorded_and_extends_a_profile_of_named_networks(
        labeled_folder: Path, tmp_path: Path) -> None:
    """Auto resolves to the small-image ensemble here and records what it trained; a later
    run at auto extends a profile made with named networks (an older manifest) with them."""
    from dune_gui.engine.config import AUTO_ENSEMBLE, SMALL_IMAGE_ENSEMBLE

    auto = tmp_path / "auto"
    protect(_config(labeled_folder, auto, mode="spatial", architectures=(AUTO_ENSEMBLE,)))
    manifest = json.loads((auto / "manifest.json").read_text())
    assert manifest["surrogates"]["architectures"] == list(SMALL_IMAGE_ENSEMBLE)
    assert manifest["config"]["method"]["architectures"] == [AUTO_ENSEMBLE]
    named = tmp_path / "named"
    protect(_config(labeled_folder, named, mode="spatial", architectures=("fast",)))
    Image.new("RGB", (32, 32), (90, 120, 30)).save(labeled_folder / "bird" / "extra.png")
    again = protect(_config(labeled_folder, named, mode="spatial",
                            architectures=(AUTO_ENSEMBLE,)))
    assert again.protected == 1 and again.reused == 18
    assert json.loads((named / "manifest.json").read_text())["surrogates"][
        "architectures"] == ["fast"]


@pytest.mark.parametrize("workers", [1, 3])
def test_export_threads_change_nothing_written(mixed_folder: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch,
                                               workers: int) -> None:
    """The export in one or several threads while the next batch's PGD runs (a GPU's
    default) writes the same files and the same manifest as the export between batches
    (a CPU's), bad files included."""
    from dune_gui.engine import stages

    reference = tmp_path / "reference"
    first = protect(_config(mixed_folder, reference))
    monkeypatch.setattr(stages, "export_workers", lambda device: workers)
    out = tmp_path / f"workers-{workers}"
    second = protect(_config(mixed_folder, out))
    assert (second.protected, len(second.skipped)) == (first.protected, len(first.skipped))
    assert "export-threads" not in first.timings and second.timings["export-threads"] > 0

    def written(folder: Path) -> dict[str, bytes]:
        return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*")
                if p.is_file() and p.name != "manifest.json"}

    def images(folder: Path) -> list[dict]:
        return json.loads((folder / "manifest.json").read_text())["images"]

    assert written(out) == written(reference)
    assert images(out) == images(reference)
