"""The error-minimising noise (noise.py) and its stage: invariants, not snapshots."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dune_gui.engine import CancelToken, ProgressEvent, ProtectConfig, protect
from dune_gui.engine.metrics import jnd_map
from dune_gui.engine.noise import NoiseMaker
from dune_gui.engine.views import grey_view
from tests.conftest import tiny_settings

NOISE = dict(mode="spatial", spatial_objective="error-minimising", noise_rounds=3,
             jnd_budget=1.0, eps=8 / 255)


def _config(src: Path, dst: Path, **kw: object) -> ProtectConfig:
    return ProtectConfig(input_dir=src, output_dir=dst, **tiny_settings(**{**NOISE, **kw}))


def _pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


def _written(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.png"))}


def _maker(seed: int = 0) -> NoiseMaker:
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(24, 3, 16, 16, generator=generator)
    y = torch.arange(24) % 3
    budget = jnd_map(x).clamp(max=8 / 255)
    return NoiseMaker(x, y, 3, budget, budget / 4, 4, "small", seed, 2, lambda r: [grey_view])


def test_every_pixel_stays_within_its_bound_and_the_unit_range() -> None:
    maker = _maker()
    for _ in range(2):
        state = maker.run_round(lambda passes: None)
    assert (state.delta.abs() <= maker.budget + 1e-7).all()
    protected = maker.x + state.delta
    assert protected.min() >= 0 and protected.max() <= 1
    # luminance steps through the grey view: the three channels move together
    inside = ((maker.x > maker.budget) & (maker.x < 1 - maker.budget)).all(1, keepdim=True)
    spread = state.delta.amax(1, keepdim=True) - state.delta.amin(1, keepdim=True)
    assert spread[inside].abs().max() < 1e-6


def test_a_rounds_progress_rises_to_its_whole_work() -> None:
    from dune_gui.engine.noise import round_passes

    maker = _maker()
    seen: list[float] = []
    maker.run_round(seen.append)
    # a tick per training step and per PGD step of each batch, never backwards
    assert all(a <= b for a, b in itertools.pairwise(seen)) and len(seen) > 10 + maker.steps
    assert seen[-1] == round_passes(len(maker.y), maker.steps)


def test_an_images_steps_do_not_depend_on_its_batch() -> None:
    from dune_gui.engine.noise import NOISE_BATCH, noise_batch

    # the batch shrinks as images grow (memory), so a photo's noise must not depend on it
    assert noise_batch(32, 32) == NOISE_BATCH and noise_batch(128, 128) < NOISE_BATCH
    assert noise_batch(4000, 4000) >= 1
    maker = _maker()
    maker.run_round(lambda passes: None)
    x, y, zero = maker.x, maker.y, torch.zeros_like(maker.x)
    together = maker.descend(x, y, zero, maker.budget, maker.step, [grey_view])
    apart = torch.cat([maker.descend(x[i:i + 5], y[i:i + 5], zero[i:i + 5],
                                     maker.budget[i:i + 5], maker.step[i:i + 5], [grey_view])
                       for i in range(0, len(y), 5)])
    assert torch.equal(together, apart)


def test_a_small_folders_learner_trains_on_each_image_once_a_step() -> None:
    from dune_gui.engine.noise import TRAIN_BATCH, TRAIN_STEPS, round_passes, train_batch

    maker = _maker()  # 24 images: fewer than a training batch
    batches: list[int] = []
    loss = maker.learner.loss

    def recorded(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        batches.append(len(y))
        return loss(x, y)

    maker.learner.loss = recorded  # type: ignore[method-assign]
    maker.run_round(lambda passes: None)
    assert batches == [24] * TRAIN_STEPS
    assert train_batch(10_000) == TRAIN_BATCH and train_batch(24) == 24
    assert round_passes(24, 4) == 3 * TRAIN_STEPS * 24 + 24 * (3 * 4 + 1)


def test_the_learners_rate_falls_over_the_rounds() -> None:
    from dune_gui.engine.noise import LEARNING_RATE, learning_rate

    rates = [learning_rate(r, 15) for r in range(15)]
    assert rates[0] == LEARNING_RATE and all(a > b > 0 for a, b in itertools.pairwise(rates))
    maker = _maker()
    seen = []
    for _ in range(2):
        maker.run_round(lambda passes: None)
        seen.append(maker.learner.optimisers[0].param_groups[0]["lr"])
    assert seen == [learning_rate(0, 2), learning_rate(1, 2)]


def test_the_steps_lower_the_learners_loss_on_the_true_class() -> None:
    maker = _maker()
    maker.run_round(lambda passes: None)  # a learner that has trained a little
    x, y = maker.x, maker.y
    before = maker.loss(x, y)
    moved = maker.descend(x, y, torch.zeros_like(x), maker.budget, maker.step, [grey_view])
    after = maker.loss((x + moved).clamp(0, 1), y)
    assert after.mean() < before.mean() and (after < before).float().mean() > 0.9


def test_written_images_stay_within_the_perceptual_budget_without_surrogates(
        labeled_folder: Path, tmp_path: Path) -> None:
    out, cache = tmp_path / "out", tmp_path / "cache"
    result = protect(_config(labeled_folder, out, cache_dir=cache))
    assert result.status == "completed" and result.protected == 18
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["surrogates"]["members"] == [] and not (cache / "surrogates").exists()
    assert manifest["noise"]["learner"] == "small"
    accuracy = manifest["noise"]["learner_accuracy_by_round"]
    assert 1 <= len(accuracy) <= 3 and all(0 <= a <= 1 for a in accuracy)
    changed = 0
    for src in labeled_folder.rglob("*.jpg"):
        a = _pixels(src)
        b = _pixels(out / src.relative_to(labeled_folder).with_suffix(".png"))
        x = torch.from_numpy(a).permute(2, 0, 1).float().unsqueeze(0) / 255
        bound = (jnd_map(x)[0, 0].numpy() * 255).clip(max=8)
        assert (np.abs(b - a).max(axis=2) <= np.floor(bound) + 1).all()
        changed += int((b != a).any())
    assert changed == 18


def test_same_seed_gives_identical_files(labeled_folder: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    protect(_config(labeled_folder, a, cache_dir=tmp_path / "cache-a"))
    protect(_config(labeled_folder, b, cache_dir=tmp_path / "cache-b"))
    assert _written(a) == _written(b) and len(_written(a)) == 18
    c = tmp_path / "c"
    protect(_config(labeled_folder, c, cache_dir=tmp_path / "cache-c", seed=1))
    assert _written(c) != _written(a)


def test_a_cancel_during_the_rounds_resumes_after_the_last_round_to_the_same_bytes(
        labeled_folder: Path, tmp_path: Path) -> None:
    reference = tmp_path / "reference"
    protect(_config(labeled_folder, reference, cache_dir=tmp_path / "cache-ref"))
    out, cache = tmp_path / "out", tmp_path / "cache"
    token = CancelToken()
    events: list[ProgressEvent] = []

    def cancel_in_round_two(event: ProgressEvent) -> None:
        events.append(event)
        if event.stage == "noise" and event.message.startswith("round 2 of"):
            token.cancel()

    result = protect(_config(labeled_folder, out, cache_dir=cache),
                     progress=cancel_in_round_two, cancel=token)
    assert result.status == "cancelled" and not list(out.rglob("*.png"))
    # stopped at the next step of the round, not at its end
    assert sum(e.stage == "noise" and e.message.startswith("round 2 of") for e in events) == 1
    assert len(list((cache / "noise").glob("*.rounds.pt"))) == 1  # round 1 kept

    logs: list[str] = []
    resumed = protect(_config(labeled_folder, out, cache_dir=cache),
                      log=lambda e: logs.append(e.message))
    assert resumed.status == "completed" and resumed.protected == 18
    assert any("resumed after round 1" in m for m in logs)
    assert not list((cache / "noise").glob("*.rounds.pt"))  # finished: only the noise stays
    assert _written(out) == _written(reference)


def test_a_preview_shows_what_the_export_writes_and_makes_the_noise_once(
        labeled_folder: Path, tmp_path: Path) -> None:
    from dune_gui.engine import preview

    config = _config(labeled_folder, tmp_path / "out", cache_dir=tmp_path / "cache")
    _, images = preview(config, count=3)
    assert not (tmp_path / "out").exists()
    events: list[ProgressEvent] = []
    protect(config, progress=events.append)
    assert [e.message for e in events if e.stage == "noise"] == ["cached"]
    for im in images:
        assert im.target == "" and im.prediction_before == []  # nothing aimed, no ensemble
        assert np.abs(im.spatial).max() <= config.eps + 1e-6
        written = _pixels(tmp_path / "out" / Path(im.rel).with_suffix(".png"))
        assert np.array_equal(np.rint(im.protected * 255).astype(np.int16), written)


def test_images_added_later_get_noise_from_the_last_learner(labeled_folder: Path,
                                                            tmp_path: Path) -> None:
    out, cache = tmp_path / "out", tmp_path / "cache"
    first = protect(_config(labeled_folder, out, cache_dir=cache))
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}
    cls = first.classes[2]
    source = next((labeled_folder / cls).glob("*.jpg"))
    shutil.copy2(source, labeled_folder / cls / "new.jpg")
    events: list[ProgressEvent] = []
    second = protect(_config(labeled_folder, out, cache_dir=cache), progress=events.append)
    assert second.protected == 1 and second.reused == 18
    assert [e.message for e in events if e.stage == "noise"] == ["cached"]  # no new rounds
    assert all(p.stat().st_mtime_ns == m for p, m in mtimes.items())
    new, old = _pixels(out / cls / "new.png"), _pixels(source)
    assert 0 < np.abs(new - old).max() <= 8 + 1


def test_the_cached_noise_is_remade_when_it_is_gone(labeled_folder: Path,
                                                    tmp_path: Path) -> None:
    out, cache = tmp_path / "out", tmp_path / "cache"
    protect(_config(labeled_folder, out, cache_dir=cache))
    written = _written(out)
    shutil.rmtree(cache / "noise")
    (out / next(iter(written))).unlink()  # one image to redo
    logs: list[str] = []
    again = protect(_config(labeled_folder, out, cache_dir=cache),
                    log=lambda e: logs.append(e.message))
    assert again.protected == 1
    assert any("gone from the cache" in m for m in logs)
    assert _written(out) == written  # the same folder and seed make the same noise


def _photo_folder(dest: Path) -> Path:
    """Two classes of 96 x 80 photos (larger than the small-image side: worked as photos)."""
    generator = np.random.default_rng(0)
    for c, name in enumerate(("cat", "dog")):
        (dest / name).mkdir(parents=True)
        for i in range(4):
            base = np.linspace(40 + 60 * c, 200, 96)[None, :, None]
            pixels = base + generator.normal(0, 25, (80, 96, 3))
            Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(dest / name / f"{i}.jpg")
    return dest


def test_photos_are_worked_through_the_victims_crop() -> None:
    from dune_gui.engine.stages import noise_augment, noise_views
    from dune_gui.engine.views import CropFlipView, FlipShiftView

    cfg = _config(Path("in"), Path("out"))
    small, photos = noise_views(cfg, False)(0), noise_views(cfg, True)(0)
    assert grey_view in small and any(isinstance(v, FlipShiftView) for v in small)
    assert grey_view in photos and any(isinstance(v, CropFlipView) for v in photos)
    assert not any(isinstance(v, FlipShiftView) for v in photos)
    # a view per round: the crops of round 2 are not round 1's
    x = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    crop = [next(v for v in noise_views(cfg, True)(r) if isinstance(v, CropFlipView))
            for r in (0, 1)]
    assert not torch.equal(crop[0](x), crop[1](x))
    # the learner trains on resized crops of the whole picture, never on zero padding
    ones = torch.ones(8, 3, 16, 16)
    assert noise_augment(True)(ones, torch.Generator().manual_seed(0)).min() > 0.99
    assert noise_augment(False)(ones, torch.Generator().manual_seed(0)).min() == 0


def test_a_photo_folder_gets_its_noise_through_the_crop_and_same_seed_same_bytes(
        tmp_path: Path) -> None:
    src = _photo_folder(tmp_path / "photos")
    logs: list[str] = []
    a, b = tmp_path / "a", tmp_path / "b"
    settings = dict(working_size=16, noise_rounds=2)
    result = protect(_config(src, a, cache_dir=tmp_path / "cache-a", **settings),
                     log=lambda e: logs.append(e.message))
    assert result.status == "completed" and result.protected == 8
    # photos even at a working size set by hand (the victims' crop follows the folder)
    assert any(m.startswith("photos: the error-minimising noise") for m in logs)
    protect(_config(src, b, cache_dir=tmp_path / "cache-b", **settings))
    assert _written(a) == _written(b)
    for path in src.rglob("*.jpg"):
        written = Image.open(a / path.relative_to(src).with_suffix(".png"))
        assert written.size == (96, 80)


def test_auto_steps_are_fewer_per_round_for_the_noise_on_photos(tmp_path: Path) -> None:
    from dune_gui.engine.config import AUTO_STEPS, PHOTO_NOISE_STEPS, resolve_steps

    assert resolve_steps(0, noise=True, photos=True) == PHOTO_NOISE_STEPS < AUTO_STEPS
    assert resolve_steps(0, noise=True, photos=False) == AUTO_STEPS
    assert resolve_steps(0, noise=False, photos=True) == AUTO_STEPS  # the targeted PGD
    assert resolve_steps(7, noise=True, photos=True) == 7  # a count set by hand stays
    src = _photo_folder(tmp_path / "photos")
    settings = dict(working_size=16, noise_rounds=1, steps=0, cache_dir=tmp_path / "cache")
    logs: list[str] = []
    protect(_config(src, tmp_path / "a", **settings), log=lambda e: logs.append(e.message))
    assert f"PGD steps: {PHOTO_NOISE_STEPS} per round of the noise (photos)" in logs
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["config"]["method"]["steps"] == 0  # auto, as the user left it
    # the noise made at auto is the noise of that many steps: a run that names the count
    # finds it in the cache, and a run at auto extends the profile without a mismatch
    logs.clear()
    protect(_config(src, tmp_path / "b", **{**settings, "steps": PHOTO_NOISE_STEPS}),
            log=lambda e: logs.append(e.message))
    assert "error-minimising noise loaded from cache" in logs
    again = protect(_config(src, tmp_path / "a", **settings))
    assert again.status == "completed" and again.protected == 0
