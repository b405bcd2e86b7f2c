"""The verification harness on tiny data: defences do what they claim, a shortcut set fools
its victim, and the report has every cell."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

from dune_gui.engine.config import ProtectConfig
from dune_gui.engine.defences import (
    DEFENCES,
    coin,
    gaussian_blur,
    grayscale,
    jpeg,
    per_image_normalise,
    posterise,
    shift_and_noise,
)
from dune_gui.engine.evaluation import (
    VICTIM_LEARNING_RATES,
    EvaluateConfig,
    evaluate,
    victim_learning_rate,
    written_distortion,
)
from dune_gui.engine.peers import apply_lsp, apply_ops, lsp_patterns
from dune_gui.engine.pipeline import protect
from tests.conftest import make_labeled_folder, tiny_settings


def _images(n: int = 6, size: int = 16) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, size, size), generator=torch.Generator().manual_seed(0),
                         dtype=torch.uint8)


def test_grayscale_has_equal_channels() -> None:
    g = grayscale(_images())
    assert torch.equal(g[:, 0], g[:, 1]) and torch.equal(g[:, 1], g[:, 2])


def test_jpeg_is_lossy_and_keeps_shape() -> None:
    x = _images()
    y = jpeg(x, quality=10)
    assert y.shape == x.shape and y.dtype == torch.uint8
    assert (y.float() - x.float()).abs().mean() > 10


def test_posterise_uses_few_levels() -> None:
    assert len(torch.unique(posterise(_images(), bits=3))) <= 8


def test_blur_smooths() -> None:
    x = _images()
    assert gaussian_blur(x).float().std() < x.float().std()


def test_per_image_normalise_removes_a_constant_offset() -> None:
    x = _images().clamp(40, 200)
    shifted = (x.int() + 30).clamp(0, 255).to(torch.uint8)
    assert (per_image_normalise(x).float() - per_image_normalise(shifted).float()).abs().max() <= 1


def test_shift_noise_is_bounded_per_channel_shift_plus_noise() -> None:
    x = torch.full((4, 3, 8, 8), 0.5)
    y = shift_and_noise(x, torch.Generator().manual_seed(0))
    assert (y - x).abs().max() < 8 / 255 + 5 * 8 / 255 and not torch.equal(x, y)


def test_coin_displaces_by_at_most_two_pixels() -> None:
    x = torch.zeros(1, 1, 16, 16)
    x[0, 0, 8, 8] = 1.0
    y = coin(x, torch.Generator().manual_seed(0))
    ys, xs = torch.nonzero(y[0, 0] > 0, as_tuple=True)
    assert (ys - 8).abs().max() <= 2 and (xs - 8).abs().max() <= 2
    assert float(y.sum()) == pytest.approx(1.0, abs=0.6)


def test_coin_indices_stay_in_range_on_many_draws() -> None:
    x = torch.rand(512, 3, 32, 32)
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        y = coin(x, gen)
        assert y.shape == x.shape and torch.isfinite(y).all()


def test_lsp_patterns_are_classwise_and_bounded() -> None:
    p = lsp_patterns(3, 32, torch.Generator().manual_seed(0), psnr=20.0)
    assert p.shape == (3, 3, 32, 32)
    mse = p.pow(2).flatten(1).mean(1)
    torch.testing.assert_close(-10 * torch.log10(mse), torch.full((3,), 20.0))
    for a, b in ((0, 1), (0, 2), (1, 2)):
        assert not torch.allclose(p[a], p[b])  # one pattern per class
    x = _images(6, 32)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    out = apply_lsp(x, labels, 3, torch.Generator().manual_seed(0), psnr=20.0)
    assert out.shape == x.shape


def test_ops_sets_one_pixel_per_class() -> None:
    x = _images(6, 16)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    out = apply_ops(x, labels, 3)
    changed = (out != x).any(1)  # N x H x W
    assert changed.sum(dim=(1, 2)).max() <= 1
    for k in range(3):
        a, b = (labels == k).nonzero().flatten().tolist()
        pa = out[a].int() - x[a].int()
        pb = out[b].int() - x[b].int()
        assert torch.equal(pa != 0, pb != 0) or pa.abs().sum() == 0 or pb.abs().sum() == 0


def _shortcut_folder(root: Path, clean: Path) -> Path:
    """Every image of class k carries a strong class-wise colour block: trivially learnable,
    and useless on clean images."""
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    for k, cls in enumerate(sorted(p.name for p in clean.iterdir())):
        (root / cls).mkdir(parents=True)
        for src in sorted((clean / cls).glob("*.jpg")):
            img = Image.open(src).convert("RGB")
            img.paste(colours[(k + 1) % 3], (0, 0, 10, 10))
            img.save(root / cls / (src.stem + ".png"))
    return root


def test_shortcut_victim_scores_near_chance_and_report_is_complete(tmp_path: Path) -> None:
    clean = make_labeled_folder(tmp_path / "clean", classes=3, per_class=12)
    shortcut = _shortcut_folder(tmp_path / "shortcut", clean)
    report_dir = tmp_path / "report"
    config = EvaluateConfig(clean_dir=clean, protected=(("shortcut", shortcut),),
                            peers=("lsp", "ops"), defences=("none", "grayscale", "coin"),
                            archs=("small",), epochs=6, holdout=0.25, batch_size=16,
                            report_dir=report_dir,
                            protect_settings={"cache_dir": tmp_path / "c", "steps": 2})
    report = evaluate(config)
    data = json.loads((report_dir / "report.json").read_text())
    assert data["chance"] == pytest.approx(1 / 3)
    cells = {(r["train"], r["defence"], r["arch"]) for r in data["runs"]}
    assert cells == {(t, d, "small") for t in ("clean", "shortcut", "lsp", "ops")
                     for d in ("none", "grayscale", "coin")}
    for run in data["runs"]:
        assert 0.0 <= run["test_accuracy"] <= 1.0 and len(run["curve"]) == 6
    # a solid block of one colour per class (shifted): the victim learns the block, so on
    # clean images it does no better than chance
    assert report.accuracy("shortcut") <= 1 / 3 + 0.2
    assert (report_dir / "report.md").read_text().count("| shortcut |") == 1
    with Image.open(report_dir / "report.png") as png:
        assert png.size[0] >= 640
    assert data["notes"] and "held out" in data["notes"][0]
    assert data["settings"]["lsp_psnr"] == 20.0  # the budget LSP actually got
    # every method's visual cost is stated next to its numbers; LSP's pattern is scaled to
    # 20 dB before clipping, so its images measure at least that
    distortion = data["settings"]["distortion"]
    assert set(distortion) == {"shortcut", "lsp", "ops"}
    assert distortion["lsp"]["psnr"] >= 20.0
    assert distortion["ops"]["psnr"] > distortion["lsp"]["psnr"]
    assert 0 < distortion["shortcut"]["ssim"] < 1 and distortion["shortcut"]["delta_e"] > 0
    assert "- lsp: PSNR" in (report_dir / "report.md").read_text()
    assert not list(report_dir.glob(".dune-*"))  # every file written whole, then renamed


def test_the_report_gives_the_written_files_distortion_from_their_manifest(
        tmp_path: Path) -> None:
    clean = make_labeled_folder(tmp_path / "clean", classes=3, per_class=6)
    test = make_labeled_folder(tmp_path / "test", classes=3, per_class=2)
    protected = tmp_path / "protected"
    protect(ProtectConfig(input_dir=clean, output_dir=protected, cache_dir=tmp_path / "c",
                          **tiny_settings()))
    copied = tmp_path / "copied"  # the same files without their manifest
    shutil.copytree(protected, copied, ignore=shutil.ignore_patterns("manifest.json"))
    report_dir = tmp_path / "report"
    report = evaluate(EvaluateConfig(
        clean_dir=clean, test_dir=test, protected=(("dune", protected), ("copied", copied)),
        peers=("ops",), defences=("none",), archs=("small",), epochs=1, batch_size=16,
        report_dir=report_dir))
    written = report.settings["distortion_written"]
    assert set(written) == {"dune"}  # neither the copy nor the peer has a manifest
    records = json.loads((protected / "manifest.json").read_text())["images"]
    assert written["dune"]["files"] == written["dune"]["of"] == len(records) == 18
    for measure in ("psnr", "ssim", "delta_e", "delta_e_p99", "visible_share"):
        mean = sum(r[measure] for r in records) / len(records)
        assert written["dune"][measure] == pytest.approx(mean, abs=0.006)
    assert "as written, at full resolution" in (report_dir / "report.md").read_text()
    # only the files a victim trains on count (e.g. without the held-out images' copies)
    first = [r["output"].rsplit(".", 1)[0] for r in records[:5]]
    part = written_distortion(protected, [*first, "not/there"])
    assert (part["files"], part["of"]) == (5, 6)
    assert written_distortion(protected) == written["dune"]  # every file it wrote
    assert part["psnr"] == pytest.approx(sum(r["psnr"] for r in records[:5]) / 5, abs=0.006)
    for damaged in ("{ damaged", '{"images": ["not a record"]}', '{"images": 3}'):
        (protected / "manifest.json").write_text(damaged)
        assert written_distortion(protected, first) == {}


def test_every_defence_is_registered() -> None:
    assert {"none", "jpeg10", "grayscale", "jpeg10+grayscale", "adv-training", "shift-noise",
            "coin", "posterise", "blur", "normalise"} <= set(DEFENCES)


def test_unknown_names_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown defence"):
        EvaluateConfig(clean_dir=tmp_path, defences=("magic",))
    with pytest.raises(ValueError, match="unknown peer"):
        EvaluateConfig(clean_dir=tmp_path, peers=("fawkes",))


def test_each_kind_of_victim_trains_at_its_own_rate_unless_one_is_chosen() -> None:
    assert victim_learning_rate("small") == VICTIM_LEARNING_RATES["scratch"]
    assert victim_learning_rate("resnet18") == VICTIM_LEARNING_RATES["scratch"]
    assert victim_learning_rate("lite2") == VICTIM_LEARNING_RATES["fine-tune"]
    assert victim_learning_rate("lite0-probe") == VICTIM_LEARNING_RATES["probe"]
    # a pretrained network fine-tuned gently is the stronger adversary
    assert VICTIM_LEARNING_RATES["fine-tune"] < VICTIM_LEARNING_RATES["scratch"]
    assert victim_learning_rate("lite2", 0.2) == victim_learning_rate("small", 0.2) == 0.2


def test_a_victims_learning_rate_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="learning rate"):
        EvaluateConfig(clean_dir=tmp_path, learning_rate=0.0)


def test_the_report_says_each_victims_learning_rate(tmp_path: Path) -> None:
    clean = make_labeled_folder(tmp_path / "clean", classes=3, per_class=4)
    report_dir = tmp_path / "report"
    evaluate(EvaluateConfig(clean_dir=clean, archs=("small",), epochs=1, holdout=0.25,
                            batch_size=8, report_dir=report_dir))
    run = json.loads((report_dir / "report.json").read_text())["runs"][0]
    assert run["learning_rate"] == VICTIM_LEARNING_RATES["scratch"]
    assert (f"peak learning rate {VICTIM_LEARNING_RATES['scratch']:g}"
            in (report_dir / "report.md").read_text())


def test_lsp_gets_the_psnr_budget_of_the_dune_runs_colour_preset(tmp_path: Path) -> None:
    subtle = {"colour": {"psnr_min": 32.0, "ssim_min": 0.95, "delta_e_max": 3.0}}
    assert EvaluateConfig(clean_dir=tmp_path, protect_settings=subtle).lsp_budget() == 32.0
    assert EvaluateConfig(clean_dir=tmp_path).lsp_budget() == 20.0
    assert EvaluateConfig(clean_dir=tmp_path, protect_settings=subtle,
                          lsp_psnr=25.0).lsp_budget() == 25.0


def test_the_result_reads_as_sentences_first() -> None:
    from dune_gui.engine import EvaluationReport, plain_summary

    runs = [{"train": t, "defence": d, "arch": "small", "test_accuracy": a}
            for t, d, a in (("clean", "none", 0.83), ("dune", "none", 0.14),
                            ("clean", "jpeg10", 0.80), ("dune", "jpeg10", 0.21))]
    lines = plain_summary(EvaluationReport(0.1, {}, runs))
    assert lines[0] == ("A model trained on your protected images recognised 14% of new "
                        "images, against 83% when trained on the originals; chance is 10%.")
    assert lines[1] == ("If whoever trains it re-saved your images as heavily compressed "
                        "JPEGs first: 21% (originals: 80%).")
    written = {"dune": {"psnr": 32.44, "ssim": 0.953, "delta_e": 1.77, "delta_e_p99": 3.2,
                        "visible_share": 0.01, "files": 9, "of": 9}}
    lines = plain_summary(EvaluationReport(0.1, {"distortion_written": written}, runs))
    assert lines[-1].startswith("The protected files as written differ from the originals "
                                "by a colour difference (CIEDE2000) of 1.8 on average")
    assert lines[-1].endswith("PSNR 32.4 dB and SSIM 0.95, at full resolution.")
