"""The aimed class pattern: its invariants alone and as a stage of a real run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dune_gui.engine import ProfileMismatch, ProtectConfig, preview, protect
from dune_gui.engine.class_patterns import (
    PATTERN_MAX_SIDE,
    ShortcutLearner,
    aim_heads,
    imagenet_classes,
    make_class_patterns,
    pattern_sample,
    pattern_side,
    place_pattern,
)
from dune_gui.engine.data import DecodedImage
from dune_gui.engine.export import compose
from dune_gui.engine.views import CropFlipView, JpegView, OneOfView
from tests.conftest import SAMPLE, make_labeled_folder, tiny_settings

EPS = 12 / 255


def _config(src: Path, dst: Path, **kw: object) -> ProtectConfig:
    settings = tiny_settings(mode="spatial", pattern_eps=EPS, pattern_steps=4,
                             pattern_networks=("lite0",))
    settings.update(kw)
    return ProtectConfig(input_dir=src, output_dir=dst, **settings)


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"), dtype=np.int16)


@pytest.fixture(scope="module")
def lite0() -> list[torch.nn.Module]:
    return aim_heads(("lite0",), torch.device("cpu"))


def test_patterns_stay_in_their_box_repeat_with_the_seed_and_lower_the_aim_loss(
        lite0: list[torch.nn.Module]) -> None:
    generator = torch.Generator().manual_seed(0)
    images = (torch.rand(12, 3, 48, 48, generator=generator) * 255).to(torch.uint8)
    labels = torch.arange(12) % 3
    aims = torch.tensor([1, 404, 945])
    losses: list[float] = []
    first = make_class_patterns(images, labels, aims, lite0, EPS, 30, 12, seed=5,
                                tick=lambda step, loss: losses.append(loss))
    again = make_class_patterns(images, labels, aims, lite0, EPS, 30, 12, seed=5)
    assert first.shape == (3, 3, 48, 48)
    assert first.abs().max() <= EPS + 1e-7
    assert torch.equal(first, again)
    assert len(losses) == 30
    assert np.mean(losses[-5:]) < np.mean(losses[:5])


def test_patterns_made_finer_than_the_victims_crop_keep_their_side_and_box(
        lite0: list[torch.nn.Module]) -> None:
    generator = torch.Generator().manual_seed(1)
    images = (torch.rand(6, 3, 60, 60, generator=generator) * 255).to(torch.uint8)
    patterns = make_class_patterns(images, torch.arange(6) % 2, torch.tensor([1, 2]), lite0,
                                   EPS, 3, 6, seed=2, victim_side=32)
    assert patterns.shape == (2, 3, 60, 60)
    assert patterns.abs().max() <= EPS + 1e-7
    assert patterns.abs().mean() > EPS * 0.05  # moved by the steps, not left at the start


def test_patterns_are_made_at_the_images_side_up_to_a_224_px_victims() -> None:
    assert pattern_side(32) == 32
    assert pattern_side(224) == 224
    assert pattern_side(3000) == PATTERN_MAX_SIDE == 256


def test_the_pattern_sample_takes_evenly_spaced_images_of_every_class() -> None:
    labels = [0] * 10 + [1] * 3 + [0] * 2
    chosen = pattern_sample(labels, per_class=4)
    assert [labels[i] for i in chosen].count(0) == 4
    assert [i for i in chosen if labels[i] == 1] == [10, 11, 12]  # small class: all
    assert chosen == sorted(chosen) and chosen == pattern_sample(labels, per_class=4)


def test_each_class_is_aimed_at_its_most_frequent_imagenet_class(
        lite0: list[torch.nn.Module]) -> None:
    generator = torch.Generator().manual_seed(1)
    images = (torch.rand(8, 3, 32, 32, generator=generator) * 255).to(torch.uint8)
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    aims = imagenet_classes(lite0[0], images, labels, 2, batch=3)
    with torch.inference_mode():
        top = lite0[0](images.float() / 255).argmax(1)
    for c in range(2):
        votes = top[labels == c]
        assert int((votes == aims[c]).sum()) == int(torch.bincount(votes).max())


def test_a_pattern_keeps_its_shape_on_any_aspect() -> None:
    pattern = torch.randn(3, 16, 16)
    square = place_pattern(pattern, 16, 16)
    assert torch.equal(square, pattern)
    wide = place_pattern(pattern, 32, 80)  # short side 32: the pattern doubled, mirrored
    assert wide.shape == (3, 32, 80)
    centre = wide[:, :, 24:56]
    scaled = torch.nn.functional.interpolate(pattern.unsqueeze(0), size=(32, 32),
                                             mode="bilinear", align_corners=False)[0]
    assert torch.allclose(centre, scaled)
    # mirrored at the central square's edges, then again: no seam, no stretch
    assert torch.equal(wide[:, :, 23], wide[:, :, 24])
    assert torch.equal(wide[:, :, 55], wide[:, :, 56])
    assert torch.equal(wide[:, :, 0:24], scaled[:, :, 0:24].flip(2))
    tall = place_pattern(pattern, 100, 20)  # more than two periods: mirrored again
    assert tall.shape == (3, 100, 20)
    assert tall.abs().max() <= pattern.abs().max() + 1e-6


def test_the_pattern_is_the_same_change_to_every_image_of_a_class() -> None:
    pattern = (torch.rand(3, 8, 8) * 2 - 1) * EPS
    changes = []
    for level in (0.3, 0.5, 0.7):  # far from 0 and 1: nothing clips
        rgb = np.full((24, 40, 3), level, dtype=np.float32)
        image = DecodedImage(rgb, None, "RGB", None, None)
        changes.append(compose(image, None, None, pattern=pattern)
                       - torch.from_numpy(rgb).permute(2, 0, 1))
    assert torch.allclose(changes[0], changes[1], atol=1e-6)
    assert torch.allclose(changes[0], changes[2], atol=1e-6)
    assert changes[0].abs().max() <= EPS + 1e-6


def test_crop_flip_view_is_differentiable_and_repeats_with_its_seed() -> None:
    x = torch.rand(4, 3, 20, 20, requires_grad=True)
    first = CropFlipView(3)(x)
    assert first.shape == x.shape
    first.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert torch.equal(CropFlipView(3)(x), first)
    assert not torch.equal(CropFlipView(4)(x), first)


def test_the_crop_flip_view_can_resample_to_a_victims_side() -> None:
    x = torch.rand(2, 3, 40, 40)
    assert CropFlipView(3, size=24)(x).shape == (2, 3, 24, 24)


def test_a_photo_folders_patterns_are_made_at_the_photos_side_not_the_working_size(
        tmp_path: Path) -> None:
    src = make_labeled_folder(tmp_path / "small", per_class=3)
    photos = tmp_path / "photos"
    for path in sorted(src.rglob("*.jpg")):  # 80 x 100 "photos" (short side 80)
        (photos / path.parent.name).mkdir(parents=True, exist_ok=True)
        with Image.open(path) as img:
            img.convert("RGB").resize((100, 80)).save(photos / path.parent.name / path.name)
    out, cache = tmp_path / "out", tmp_path / "cache"
    protect(_config(photos, out, working_size=32, cache_dir=cache))
    manifest = json.loads((out / "manifest.json").read_text())
    saved = torch.load(cache / "patterns" / f"{manifest['class_patterns']['cache_key']}.pt",
                       weights_only=True)
    assert saved["patterns"].shape == (3, 3, 80, 80)
    for record in manifest["images"]:
        assert _pixels(out / record["output"]).shape == (80, 100, 3)


def test_a_run_with_the_pattern_stays_in_budget_records_it_and_resumes(
        labeled_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    logs: list[str] = []
    result = protect(_config(labeled_folder, out), log=lambda e: logs.append(e.message))
    assert result.status == "completed" and result.protected == 18
    assert any("class pattern for" in line for line in logs)
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["class_patterns"]["imagenet_aims"]) == set(result.classes)
    budget = 8 / 255 + EPS  # the spatial branch's eps plus the pattern's
    for record in manifest["images"]:
        change = np.abs(_pixels(out / record["output"])
                        - _pixels(labeled_folder / record["source"]))
        assert change.max() <= round(budget * 255) + 1
    # the same settings again: nothing redone, the patterns read back from the cache
    logs.clear()
    again = protect(_config(labeled_folder, out), log=lambda e: logs.append(e.message))
    assert again.protected == 0 and again.reused == 18
    with pytest.raises(ProfileMismatch, match="pattern_eps"):
        protect(_config(labeled_folder, out, pattern_eps=4 / 255))


def test_the_same_seed_gives_the_same_bytes_with_the_pattern(labeled_folder: Path,
                                                             tmp_path: Path) -> None:
    protect(_config(labeled_folder, tmp_path / "a"))
    protect(_config(labeled_folder, tmp_path / "b", cache_dir=tmp_path / "other-cache"))
    for png in sorted((tmp_path / "a").rglob("*.png")):
        assert png.read_bytes() == (tmp_path / "b" / png.relative_to(tmp_path / "a")
                                    ).read_bytes()


def test_the_preview_shows_what_the_export_writes_with_the_pattern(labeled_folder: Path,
                                                                   tmp_path: Path) -> None:
    out = tmp_path / "out"
    protect(_config(labeled_folder, out))
    _classes, images = preview(_config(labeled_folder, tmp_path / "unused"), count=2)
    assert images and all(im.pattern_eps == pytest.approx(EPS) for im in images)
    for im in images:
        written = _pixels(out / Path(im.rel).with_suffix(".png"))
        assert np.array_equal(np.rint(im.protected * 255).astype(np.int16), written)
        assert np.abs(im.spatial).max() <= im.eps + 1e-6


def test_a_pattern_without_networks_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one network"):
        ProtectConfig(input_dir=tmp_path, output_dir=tmp_path / "o", pattern_eps=EPS,
                      pattern_networks=())


def test_the_jpeg_view_is_close_to_pillows_jpeg_and_differentiable() -> None:
    from dune_gui.engine.defences import jpeg

    pixels = torch.stack([
        torch.from_numpy(np.array(Image.open(path).convert("RGB").resize((48, 40))))
        .permute(2, 0, 1) for path in sorted(SAMPLE.glob("*/*.jpg"))[:12]])
    x = (pixels.float() / 255).requires_grad_(True)
    approx = JpegView(10)(x)
    reference = jpeg(pixels, 10).float() / 255
    clean = pixels.float() / 255

    def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
        return float((10 * torch.log10(1 / (a - b).pow(2).mean((1, 2, 3)))).mean())

    # far closer to what Pillow writes than the original is
    assert psnr(approx.detach(), reference) > psnr(clean, reference) + 8
    approx.sum().backward()
    assert x.grad is not None and x.grad.abs().mean() > 0.5  # straight through the rounding


def test_one_of_view_takes_each_view_or_none_with_its_seed() -> None:
    x = torch.zeros(1, 1, 2, 2)
    picks = OneOfView([lambda t: t + 1, lambda t: t + 2], seed=4)
    seen = {float(picks(x).max()) for _ in range(60)}
    assert seen == {0.0, 1.0, 2.0}
    again = OneOfView([lambda t: t + 1, lambda t: t + 2], seed=4)
    first = OneOfView([lambda t: t + 1, lambda t: t + 2], seed=4)
    assert [float(again(x).max()) for _ in range(10)] == [float(first(x).max())
                                                           for _ in range(10)]


def test_the_pattern_mode_adds_the_pattern_alone(labeled_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    protect(_config(labeled_folder, out, mode="pattern", pattern_jpeg=True))
    manifest = json.loads((out / "manifest.json").read_text())
    for record in manifest["images"]:
        change = np.abs(_pixels(out / record["output"])
                        - _pixels(labeled_folder / record["source"]))
        assert 0 < change.max() <= round(EPS * 255) + 1
    with pytest.raises(ValueError, match="budget"):
        _config(labeled_folder, out, mode="pattern", pattern_eps=0.0)


def test_every_aim_network_the_settings_offer_has_imagenet_weights() -> None:
    # the settings table stays free of torch (the GUI reads it), so it names the networks
    # itself; this keeps its list and the engine's in step
    from dune_gui.engine.config import PATTERN_NETWORK_NAMES
    from dune_gui.engine.pretrained import PRETRAINED

    assert set(PATTERN_NETWORK_NAMES) == set(PRETRAINED)


def _fitted_loss(images: torch.Tensor, labels: torch.Tensor, patterns: torch.Tensor,
                 steps: int) -> float:
    """The training loss of a fresh network trained from scratch on the patterned images
    (its mean over the last steps)."""
    x = (images.float() / 255 + patterns[labels]).clamp(0, 1)
    learner = ShortcutLearner(int(labels.max()) + 1, seed=11, device=torch.device("cpu"))
    losses = []
    for _ in range(steps):
        loss = learner.loss(x, labels)
        loss.backward()
        learner.learn()
        losses.append(float(loss.detach()))
    return float(np.mean(losses[-5:]))


def test_shortcut_patterns_stay_in_their_box_repeat_and_are_learnt_faster_from_scratch(
        lite0: list[torch.nn.Module]) -> None:
    generator = torch.Generator().manual_seed(1)
    images = (torch.rand(24, 3, 48, 48, generator=generator) * 255).to(torch.uint8)
    labels = torch.arange(24) % 4
    aims = torch.tensor([1, 404, 945, 20])
    args = (images, labels, aims, lite0, EPS, 30, 12)
    aimed = make_class_patterns(*args, seed=2)
    shortcut = make_class_patterns(*args, seed=2, shortcut_weight=1.0)
    again = make_class_patterns(*args, seed=2, shortcut_weight=1.0)
    assert shortcut.abs().max() <= EPS + 1e-7
    assert torch.equal(shortcut, again)
    assert not torch.equal(shortcut, aimed)
    # the point of the term: a network trained from scratch takes the classes from the
    # patterns sooner (the images themselves are noise, so the patterns are all it has)
    assert _fitted_loss(images, labels, shortcut, 10) < _fitted_loss(images, labels, aimed, 10)


def test_each_learner_trains_as_a_lone_victim_whatever_the_weight_and_the_company(
) -> None:
    # a learner's loss reaches its weights through the patterns' objective, multiplied by
    # the shortcut weight and divided among the learners; the step must not train it
    # harder or softer for that, and the first learner is drawn as a lone one is (a
    # folder's patterns with the one default learner stay the same)
    generator = torch.Generator().manual_seed(3)
    x = torch.rand(8, 3, 32, 32, generator=generator)
    y = torch.arange(8) % 4

    def stepped(weight: float, architectures: tuple[str, ...] = ("small",),
                seed: int = 5) -> list[list[torch.Tensor]]:
        learner = ShortcutLearner(4, seed=seed, device=torch.device("cpu"),
                                  architectures=architectures, side=32)
        (weight * learner.loss(x, y)).backward()
        learner.learn(weight)
        return [[p.detach().clone() for p in net.parameters()] for net in learner.nets]

    def assert_same(a: list[torch.Tensor], b: list[torch.Tensor]) -> None:
        for left, right in zip(a, b, strict=True):
            torch.testing.assert_close(left, right)

    (once,), (weighted,) = stepped(1.0), stepped(4.0)
    fresh = ShortcutLearner(4, seed=5, device=torch.device("cpu")).nets[0].parameters()
    assert any(not torch.equal(a, b) for a, b in zip(once, fresh, strict=True))
    assert_same(once, weighted)
    first, second = stepped(4.0, ("small", "fast"))
    assert_same(once, first)
    (fast_alone,) = stepped(1.0, ("fast",), seed=5 + 17)
    assert_same(fast_alone, second)


def test_more_learners_change_the_patterns_and_their_cache(labeled_folder: Path,
                                                           tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    one = _config(labeled_folder, tmp_path / "one", pattern_shortcut=1.0, cache_dir=cache)
    two = _config(labeled_folder, tmp_path / "two", pattern_shortcut=1.0, cache_dir=cache,
                  pattern_learners=("small", "fast"))
    protect(one)
    protect(two)  # the same cache: its patterns must not be the single learner's
    assert len(list((cache / "patterns").glob("*.pt"))) == 2
    with pytest.raises(ProfileMismatch, match="pattern_learners"):
        protect(_config(labeled_folder, tmp_path / "one", pattern_shortcut=1.0,
                        cache_dir=cache, pattern_learners=("small", "vgg")))


def test_the_shortcut_weight_needs_a_learner(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one learner"):
        _config(tmp_path, tmp_path / "out", pattern_shortcut=1.0, pattern_learners=())


def test_a_learner_is_never_a_pretrained_network_built_without_its_weights() -> None:
    """build_model gives a pretrained architecture its ImageNet weights only with a
    generator; a learner built without one would train a bare Lite0 (found by a screen,
    docs/research-log.md, thirty-fourth session), so it is refused."""
    from dune_gui.engine.class_patterns import ShortcutLearner

    with pytest.raises(ValueError, match="pretrained"):
        ShortcutLearner(10, 0, torch.device("cpu"), ("lite0",), 128)
