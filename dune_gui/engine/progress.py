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

STAGES = ("scan", "surrogates", "colour", "spatial", "export")


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
    eta_s: float | None = None


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
    start_done: int = 0
    _t0: float | None = field(default=None, repr=False)
    _n0: int = 0

    def update(self, done: int) -> float | None:
        now = time.monotonic()
        if self._t0 is None:
            self._t0, self._n0 = now, done
            return None
        advanced = done - self._n0
        if advanced <= 0:
            return None
        rate = advanced / max(now - self._t0, 1e-9)
        return max(self.total - done, 0) / rate


class Reporter:
    """Bundles the optional callbacks so stages take one argument instead of three."""

    def __init__(
        self,
        progress: ProgressCallback | None = None,
        log: LogCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> None:
        self._progress = progress
        self._log = log
        self.cancel = cancel or CancelToken()
        self._eta: dict[str, EtaTracker] = {}

    def stage(self, stage: str, done: int, total: int, message: str = "") -> None:
        tracker = self._eta.get(stage)
        if tracker is None or tracker.total != total or done == 0:
            tracker = self._eta[stage] = EtaTracker(total=total)
        eta = tracker.update(done)
        if self._progress is not None:
            self._progress(ProgressEvent(stage, done, total, message, eta))

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
