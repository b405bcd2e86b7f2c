"""Progress: ETA per pass of a stage, throttled events, stage titles owned by the engine."""

from __future__ import annotations

from dune_gui.engine import STAGE_TITLES, STAGES, ProgressEvent
from dune_gui.engine.progress import EtaTracker, Reporter, format_duration


def test_eta_restarts_when_a_new_pass_counts_from_one_again() -> None:
    """Every victim reports from done = 1 with the same total; the second victim's ETA
    used to be measured from the first victim's start (too long and growing)."""
    tracker = EtaTracker(total=10)
    assert tracker.update(1, now=0.0) is None
    assert tracker.update(10, now=9.0) == 0.0
    assert tracker.restarts_at(1, 10)  # the count went back: a new pass
    fresh = EtaTracker(total=10)
    fresh.update(1, now=100.0)
    assert fresh.update(2, now=101.0) == 8.0  # 1 step/s, 8 left


def test_the_reporter_gives_each_pass_its_own_eta(monkeypatch) -> None:
    clock = iter([0.0, 1.0, 9.0, 100.0, 101.0])
    monkeypatch.setattr("dune_gui.engine.progress.time.monotonic", lambda: next(clock))
    events: list[ProgressEvent] = []
    rep = Reporter(events.append)
    for done in (1, 2, 10):  # first victim: 1 step/s
        rep.stage("verify", done, 10)
    for done in (1, 2):  # second victim, same total: 1 step/s again, from its own start
        rep.stage("verify", done, 10)
    assert events[-1].eta_s == 8.0


def test_progress_is_throttled_to_rising_per_mille_values() -> None:
    events: list[ProgressEvent] = []
    rep = Reporter(events.append, heartbeat_s=1e9)
    for done in range(0, 100_001):
        rep.stage("spatial", done, 100_000)
    assert 1000 <= len(events) <= 1002
    assert events[-1].done == 100_000 and events[0].done == 0
    rep.stage("export", 5, 100_000)  # a new stage always reports at once
    assert events[-1].stage == "export"


def test_every_stage_has_a_title_and_durations_read_naturally() -> None:
    assert [s.name for s in STAGES] == list(STAGE_TITLES)
    assert {"scan", "surrogates", "colour", "patterns", "noise", "spatial", "export",
            "verify"} == set(STAGE_TITLES)
    assert format_duration(None) == "?"
    assert format_duration(45) == "45s"
    assert format_duration(187) == "3m07s"
    assert format_duration(7500) == "2h05m"
