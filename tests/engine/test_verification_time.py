"""The verification's time estimate: it counts the victims the run will train, prices them
by the rate the last verification on this machine measured, measures one now when none
is kept (leaving the random state alone), and says when it cannot tell."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dune_gui.engine import evaluation, victim_results
from dune_gui.engine.evaluation import EvaluateConfig, estimate_evaluate, evaluate
from dune_gui.engine.verification_time import kept_step_seconds, measure_step_seconds
from tests.conftest import make_labeled_folder


def test_counts_victims_and_prices_them_by_the_last_run(tmp_path: Path) -> None:
    clean = make_labeled_folder(tmp_path / "clean", classes=3, per_class=8)
    test = make_labeled_folder(tmp_path / "test", classes=3, per_class=2)
    config = EvaluateConfig(clean_dir=clean, test_dir=test, defences=("none", "grayscale"),
                            peers=("ops",), archs=("small",), epochs=2, batch_size=8,
                            rates_dir=tmp_path / "rates")
    unknown = estimate_evaluate(config, measure=False)
    assert unknown.victims == 2 * 2 and unknown.seconds is None
    assert unknown.steps == 4 * 2 * 3  # 24 images in batches of 8, 2 epochs, 4 victims

    evaluate(config)
    rate = kept_step_seconds("small", 32, 8, "cpu", tmp_path / "rates")
    assert rate is not None and rate > 0
    kept = estimate_evaluate(config, measure=False)
    assert not kept.measured_now
    assert kept.seconds == pytest.approx(rate * kept.steps)
    # adversarial training attacks every batch (7 PGD steps): eight steps' worth per step
    adversarial = estimate_evaluate(
        EvaluateConfig(**{**config.__dict__, "defences": ("none", "adv-training")}),
        measure=False)
    assert adversarial.seconds == pytest.approx(rate * kept.steps / 2 * (1 + 8))


def test_victims_kept_from_an_earlier_run_are_not_priced(tmp_path: Path) -> None:
    clean = make_labeled_folder(tmp_path / "clean", classes=3, per_class=6)
    protected = make_labeled_folder(tmp_path / "protected", classes=3, per_class=6)
    config = EvaluateConfig(clean_dir=clean, protected=(("dune", protected),),
                            peers=("ops",), archs=("small",), epochs=1, batch_size=8,
                            rates_dir=tmp_path / "rates",
                            victim_results_dir=tmp_path / "victims")
    assert estimate_evaluate(config, measure=False).victims == 3
    evaluate(config)
    again = estimate_evaluate(config, measure=False)
    assert (again.victims, again.reused, again.steps, again.seconds) == (0, 3, 0, 0.0)
    # a protected image written anew: that set's victim trains again, the others do not
    image = next(protected.rglob("*.jpg"))
    image.write_bytes(image.read_bytes() + b"\0")
    changed = estimate_evaluate(config, measure=False)
    assert (changed.victims, changed.reused) == (1, 2)
    assert changed.seconds == pytest.approx(kept_step_seconds(
        "small", 32, 8, "cpu", tmp_path / "rates") * changed.steps)
    # another recipe is another victim
    longer = EvaluateConfig(**{**config.__dict__, "epochs": 2})
    assert estimate_evaluate(longer, measure=False).reused == 0


def test_measured_now_when_nothing_is_kept(tmp_path: Path) -> None:
    clean = make_labeled_folder(tmp_path / "clean", classes=3, per_class=4)
    config = EvaluateConfig(clean_dir=clean, archs=("small", "resnet18"), epochs=3,
                            peers=("spatial",), rates_dir=tmp_path / "rates")
    state = torch.get_rng_state()
    estimate = estimate_evaluate(config)
    assert torch.equal(torch.get_rng_state(), state)
    assert estimate.measured_now and estimate.seconds is not None and estimate.seconds > 0
    assert estimate.victims == 2 * 2 and estimate.excludes_ablations
    step, forward = measure_step_seconds("small", 3, 32, 64, torch.device("cpu"))
    assert step > forward > 0
    # photos: stored larger, each step crops them as the victim does
    assert min(measure_step_seconds("small", 3, 48, 8, torch.device("cpu"),
                                    stored_size=55)) > 0


def test_the_kept_results_key_follows_the_victims_code(monkeypatch: pytest.MonkeyPatch
                                                       ) -> None:
    before = victim_results._recipe_source_digest()

    def train_victim() -> None:  # a different recipe
        return None

    monkeypatch.setattr(evaluation, "train_victim", train_victim)
    victim_results._recipe_source_digest.cache_clear()  # computed once per process
    try:
        assert victim_results._recipe_source_digest() != before
    finally:
        victim_results._recipe_source_digest.cache_clear()  # not the patched code's digest


def test_an_estimate_at_a_given_victim_size_lists_the_clean_folder_once(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from dune_gui.engine import verification_time
    from dune_gui.engine.data import FolderScan, scan_folder

    clean = make_labeled_folder(tmp_path / "clean", classes=3, per_class=4)
    listed: list[Path] = []

    def counting_scan(root: Path) -> FolderScan:
        listed.append(Path(root))
        return scan_folder(root)

    for module in (evaluation, victim_results, verification_time):
        monkeypatch.setattr(module, "scan_folder", counting_scan)
    config = EvaluateConfig(clean_dir=clean, archs=("small",), epochs=1, batch_size=8,
                            victim_size=32, rates_dir=tmp_path / "rates",
                            victim_results_dir=tmp_path / "v")
    estimate_evaluate(config, measure=False)
    assert listed.count(clean) == 1
