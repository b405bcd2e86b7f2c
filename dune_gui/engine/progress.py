"""Progress reporting and cooperative cancellation shared by every engine stage.

Events are plain frozen dataclasses so that a GUI can forward them across threads
(Qt signals carry plain data) and a CLI can print them, without either reaching into
engine internals.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .eta import RunClock


@dataclass(frozen=True)
class Stage:
    name: str
    title: str


# Every stage an engine call reports, in run order; the CLI and the GUI derive their
# progress display from this list rather than keeping their own.
PROTECT_STAGES = (Stage("scan", "Scanning"), Stage("surrogates", "Training surrogates"),
                  Stage("colour", "Colour search"), Stage("patterns", "Class patterns"),
                  Stage("noise", "Error-minimising noise"),
                  Stage("spatial", "Spatial perturbation"),
                  Stage("export", "Writing images"))
VERIFY_STAGES = (Stage("verify", "Training victims"),)
STAGES: tuple[Stage, ...] = PROTECT_STAGES + VERIFY_STAGES
STAGE_TITLES: dict[str, str] = {s.name: s.title for s in STAGES}
# A protect run perturbs and writes batch by batch: to a person that is one step, counted by
# the images written. The stages in INTERLEAVED report inside that step (their events only
# refresh the time left); STEP_TITLES names the steps a person sees.
INTERLEAVED: frozenset[str] = frozenset({"spatial"})
STEP_TITLES: dict[str, str] = {**STAGE_TITLES, "export": "Protecting images"}
# A preview writes nothing: its last step is the perturbation of the images it shows (the
# "spatial" stage, inside the export's step in a protect run), named for what it does.
PREVIEW_STEP = "spatial"
PREVIEW_TITLE = "Previewing images"


class Cancelled(Exception):
    """Raised inside the engine when the cancel token was set; caught by the public API."""


class CancelToken:
    """Thread-safe flag the caller sets and the engine polls between batches."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled()


@dataclass(frozen=True)
class ProgressEvent:
    """One step of one stage. `total` may be 0 when a stage has nothing to do."""

    stage: str
    done: int
    total: int
    message: str = ""
    eta_s: float | None = None  # this stage
    run_eta_s: float | None = None  # the whole run (eta.RunClock); None: not known yet


@dataclass(frozen=True)
class LogEvent:
    level: str  # "info" | "warning" | "error"
    message: str


ProgressCallback = Callable[[ProgressEvent], None]
LogCallback = Callable[[LogEvent], None]


@dataclass
class EtaTracker:
    """Estimates time left from the rate observed since a stage started.

    The first sample is ignored as a rate source because it usually contains warm-up
    (model build, first allocation) that would make every estimate too pessimistic.
    """

    total: int
    _t0: float | None = field(default=None, repr=False)
    _n0: int = 0
    last_done: int = -1

    def restarts_at(self, done: int, total: int) -> bool:
        """A new pass of the stage: its total changed, or the count went back (the next
        victim reports from 1 again with the same total)."""
        return total != self.total or done == 0 or done < self.last_done

    def update(self, done: int, now: float | None = None) -> float | None:
        now = time.monotonic() if now is None else now
        self.last_done = done
        if self._t0 is None:
            self._t0, self._n0 = now, done
            return None
        advanced = done - self._n0
        if advanced <= 0:
            return None
        rate = advanced / max(now - self._t0, 1e-9)
        return max(self.total - done, 0) / rate


class Reporter:
    """Bundles the optional callbacks so stages take one argument instead of three.

    Progress is throttled like Orange3's `TaskState.set_progress_value`: an event goes out
    when the stage or its total changes, when the whole per-mille value rises, at the end,
    or at least every `heartbeat_s` (so a slow stage's ETA and message stay fresh). A GUI
    thus receives at most ~1000 events per stage however fine-grained the engine counts.
    """

    def __init__(
        self,
        progress: ProgressCallback | None = None,
        log: LogCallback | None = None,
        cancel: CancelToken | None = None,
        heartbeat_s: float = 1.0,
    ) -> None:
        self._progress = progress
        self._log = log
        self.cancel = cancel or CancelToken()
        self._eta: dict[str, EtaTracker] = {}
        self._last: dict[str, tuple[int, int, float]] = {}  # stage -> (total, permille, t)
        self.heartbeat_s = heartbeat_s
        self.clock: RunClock | None = None  # set once the run's work is planned

    def stage(self, stage: str, done: int, total: int, message: str = "") -> None:
        tracker = self._eta.get(stage)
        if tracker is None or tracker.restarts_at(done, total):
            tracker = self._eta[stage] = EtaTracker(total=total)
        now = time.monotonic()
        eta = tracker.update(done, now)
        if self.clock is not None:
            self.clock.update(stage, done, total, now)
        if self._progress is None:
            return
        permille = 1000 * done // total if total > 0 else 1000
        previous = self._last.get(stage)
        due = (previous is None or previous[0] != total or permille > previous[1]
               or permille < previous[1] or done >= total
               or now - previous[2] >= self.heartbeat_s)
        if due:
            self._last[stage] = (total, permille, now)
            run_eta = self.clock.remaining() if self.clock is not None else None
            self._progress(ProgressEvent(stage, done, total, message, eta, run_eta))

    def spent(self, stage: str, seconds: float) -> None:
        """Time spent in a stage that interleaves with another (see eta.RunClock)."""
        if self.clock is not None:
            self.clock.spent(stage, seconds)

    def info(self, message: str) -> None:
        if self._log is not None:
            self._log(LogEvent("info", message))

    def warning(self, message: str) -> None:
        if self._log is not None:
            self._log(LogEvent("warning", message))

    def check_cancel(self) -> None:
        self.cancel.raise_if_cancelled()


def format_duration(seconds: float | None) -> str:
    """Human ETA text: 45s, 3m07s, 2h05m; '?' when unknown."""
    if seconds is None or seconds < 0:
        return "?"
    whole = int(seconds)
    if whole >= 3600:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    if whole >= 60:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole}s"
