"""The whole run's ETA: the plan's units, the clock's arithmetic, the rates kept for the
next run, and a real protect call that reports it."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch

from dune_gui.engine import ProgressEvent, ProtectConfig, protect
from dune_gui.engine.eta import RunClock, WorkPlan, read_rates, write_rates
from dune_gui.engine.progress import Reporter
from dune_gui.engine.stages import SMALL_LEARNER_NETWORKS, Run, shortcut_learner_networks
from tests.conftest import tiny_settings

PLAN = WorkPlan({"surrogates": 100.0, "colour": 50.0, "spatial": 300.0, "export": 10.0})


def test_nothing_is_estimated_before_anything_is_measured() -> None:
    assert RunClock(PLAN).remaining() is None


def test_a_measured_model_stage_estimates_the_other_model_stages() -> None:
    clock = RunClock(PLAN)
    clock.update("surrogates", 0, 10, now=0.0)
    clock.update("surrogates", 5, 10, now=10.0)  # 50 units in 10 s: 0.2 s per unit
    # 50 surrogate + 50 colour + 300 spatial units at 0.2 s; the export is not guessed
    assert clock.remaining() == pytest.approx(0.2 * 400)


def test_history_estimates_the_export_and_own_measurements_replace_it() -> None:
    clock = RunClock(PLAN, history={"export": 2.0, "spatial": 1.0})
    clock.update("surrogates", 1, 1)
    clock.update("colour", 1, 1)
    assert clock.remaining() == pytest.approx(300 * 1.0 + 10 * 2.0)
    clock.spent("spatial", 30.0)
    clock.update("spatial", 100, 300)  # a third done at 0.3 s per unit
    clock.spent("export", 1.0)
    clock.update("export", 1, 10)  # one image in 1 s
    assert clock.remaining() == pytest.approx(200 * 0.3 + 9 * 1.0)
    assert clock.rates()["spatial"] == pytest.approx(0.3)
    assert clock.rates()["export"] == pytest.approx(1.0)


def test_the_estimate_falls_as_the_run_advances() -> None:
    clock = RunClock(PLAN)
    estimates = []
    for step in range(1, 11):
        clock.update("surrogates", step, 10, now=float(step))
        estimates.append(clock.remaining())
    assert estimates[0] is None  # one event is no rate yet
    assert all(a > b for a, b in itertools.pairwise(estimates[1:]))
    assert estimates[-1] is not None and estimates[-1] > 0  # colour and spatial remain


def test_rates_are_kept_per_device_and_ensemble_and_survive_a_damaged_file(
        tmp_path: Path) -> None:
    small, photo = ("fast", "vgg"), ("lite0",)
    write_rates(tmp_path, "cpu", small, {"spatial": 0.5})
    write_rates(tmp_path, "cuda", small, {"spatial": 0.01})
    write_rates(tmp_path, "cpu", photo, {"spatial": 2.0})
    assert read_rates(tmp_path, "cpu", small) == {"spatial": 0.5}
    assert read_rates(tmp_path, "cpu", ("vgg", "fast")) == {"spatial": 0.5}  # order aside
    assert read_rates(tmp_path, "cuda", small) == {"spatial": 0.01}
    assert read_rates(tmp_path, "cpu", photo) == {"spatial": 2.0}
    (tmp_path / "stage-rates.json").write_text("{not json", encoding="utf-8")
    assert read_rates(tmp_path, "cpu", small) == {}
    write_rates(tmp_path, "cpu", small, {"export": 1.0})  # a damaged file is replaced
    assert read_rates(tmp_path, "cpu", small) == {"export": 1.0}


def test_protect_reports_the_whole_run_eta(labeled_folder: Path, tmp_path: Path) -> None:
    events: list[ProgressEvent] = []
    config = ProtectConfig(input_dir=labeled_folder, output_dir=tmp_path / "out",
                           cache_dir=tmp_path / "cache", **tiny_settings())
    protect(config, progress=events.append)
    run_etas = [e.run_eta_s for e in events if e.stage in ("spatial", "export")]
    assert run_etas and all(t is not None for t in run_etas)
    assert run_etas[-1] == pytest.approx(0.0, abs=1e-6)
    rates = read_rates(tmp_path / "cache", "cpu", config.architectures)
    assert rates.keys() >= {"surrogates", "spatial", "export"}


def test_shortcut_learners_weigh_by_their_arithmetic(tmp_path: Path) -> None:
    """The pattern stage's plan counts a bigger learner as more work than a `small` one,
    so the estimate before the stage starts grows with what it runs."""
    def learner_networks(**settings: object) -> float:
        config = ProtectConfig(input_dir=tmp_path, output_dir=tmp_path / "out",
                               pattern_eps=31 / 255, **settings)  # type: ignore[arg-type]
        return shortcut_learner_networks(Run(config, Reporter(), torch.device("cpu"),
                                             tmp_path, working_size=64))

    assert learner_networks(pattern_shortcut=0.0) == 0.0
    small = learner_networks(pattern_shortcut=2.0)
    assert small == pytest.approx(SMALL_LEARNER_NETWORKS)
    both = learner_networks(pattern_shortcut=2.0, pattern_learners=("small", "vgg"))
    assert both > 3 * small  # a vgg-style stack does several times a 4-layer CNN's arithmetic
    assert learner_networks(pattern_shortcut=2.0, pattern_learners=("vgg",)) == (
        pytest.approx(both - small))
