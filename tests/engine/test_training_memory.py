"""The memory check before a victim trains: the estimate scales with the batch, measuring
changes nothing the victim will see, and a victim that cannot fit is skipped with a
one-line reason while the verification goes on."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dune_gui.engine import evaluation, training_memory
from dune_gui.engine.evaluation import EvaluateConfig, evaluate
from dune_gui.engine.models import build_model
from dune_gui.engine.training_memory import available_bytes, training_step_bytes
from tests.conftest import make_labeled_folder


def test_need_grows_with_the_batch_and_the_size() -> None:
    model = build_model("small", 3, 32, torch.Generator().manual_seed(0))
    at_8, at_16, at_24 = (training_step_bytes(model, 32, b) for b in (8, 16, 24))
    assert at_8 < at_16 < 2 * at_8  # activations double; the parameters' buffers do not
    assert abs((at_24 - at_16) - (at_16 - at_8)) <= 2  # linear in the batch
    assert training_step_bytes(model, 64, 8) > 3 * at_8


def test_measuring_leaves_the_model_and_the_random_stream_alone() -> None:
    model = build_model("small", 3, 32, torch.Generator().manual_seed(0))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    assert training_step_bytes(model, 32, 2) > 0
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_meminfo_read_as_available_plus_swap(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24000000 kB\nMemAvailable:    2000000 kB\n"
                       "SwapFree:         500000 kB\n")
    assert available_bytes(meminfo) == 2_500_000 * 1024
    assert available_bytes(tmp_path / "absent") is None
    meminfo.write_text("MemTotal: 1 kB\n")  # an old kernel without MemAvailable
    assert available_bytes(meminfo) is None


def test_a_victim_that_cannot_fit_is_skipped_with_its_reason(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clean = make_labeled_folder(tmp_path / "clean", classes=2, per_class=6)
    monkeypatch.setattr(evaluation, "available_bytes", lambda: 1024 ** 2)  # 1 MB free
    config = EvaluateConfig(clean_dir=clean, archs=("small",), epochs=1, holdout=0.25,
                            batch_size=8, device="cpu", report_dir=tmp_path / "report")
    report = evaluate(config)
    assert report.runs == [] and report.status == "completed"
    reason = next(n for n in report.notes if "skipped" in n)
    assert "victim small skipped" in reason and "0.0 GB free" in reason
    assert "\n" not in reason
    assert "victim small skipped" in (tmp_path / "report" / "report.md").read_text()


def test_a_victim_that_fits_trains_as_without_the_check(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clean = make_labeled_folder(tmp_path / "clean", classes=2, per_class=6)
    config = EvaluateConfig(clean_dir=clean, archs=("small",), epochs=2, holdout=0.25,
                            batch_size=8, device="cpu")
    monkeypatch.setattr(evaluation, "available_bytes", lambda: 1024 ** 4)
    checked = evaluate(config)
    monkeypatch.setattr(evaluation, "available_bytes", lambda: None)  # no check at all
    unchecked = evaluate(config)
    assert [r["curve"] for r in checked.runs] == [r["curve"] for r in unchecked.runs]
    assert training_memory.STEP_OVER_SAVED >= 1


def test_test_set_scored_in_the_training_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    """The per-epoch test score runs in the training batch's size (the size the memory check
    counted), and the score does not depend on it."""
    from dune_gui.engine import training

    seen: list[int] = []
    score = training.evaluate_accuracy

    def spy(*args: object, batch_size: int = 500, **kwargs: object) -> float:
        seen.append(batch_size)
        return score(*args, batch_size=batch_size, **kwargs)

    monkeypatch.setattr(training, "evaluate_accuracy", spy)
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (24, 3, 32, 32), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, 3, (24,), generator=generator)
    model = build_model("small", 3, 32, torch.Generator().manual_seed(0))
    training.train_classifier(model, images, labels, 1, generator, torch.device("cpu"),
                              batch_size=8, eval_data=(images, labels))
    assert seen == [8]
    assert score(model, images, labels, torch.device("cpu"), batch_size=5) == \
        score(model, images, labels, torch.device("cpu"), batch_size=24)
