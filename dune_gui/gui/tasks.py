"""Run engine calls off the GUI thread (after Orange3's concurrent.py pattern).

An `EngineTask` wraps one call `fn(progress, log, cancel) -> result`. It runs in a QThread;
progress, log lines and the result come back as signals carrying plain data, delivered on
the GUI thread by Qt's queued connections. Cancel sets the engine's CancelToken, which the
engine polls between batches.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot

from ..engine import USER_ERRORS, CancelToken, LogEvent, ProgressEvent

EngineCall = Callable[[Callable[[ProgressEvent], None], Callable[[LogEvent], None],
                       CancelToken], Any]


class _Runner(QObject):
    # stage, done, total, message, this stage's ETA, the whole run's ETA (seconds; -1: ?)
    progress = Signal(str, int, int, str, float, float)
    log = Signal(str, str)  # level, message
    succeeded = Signal(object)
    failed = Signal(str, str)  # user-facing message, details for the log
    done = Signal()

    def __init__(self, fn: EngineCall, cancel: CancelToken) -> None:
        super().__init__()
        self._fn = fn
        self._cancel = cancel

    @Slot()
    def run(self) -> None:
        try:
            result = self._fn(self._on_progress, self._on_log, self._cancel)
        except Exception as exc:  # every failure becomes a message, never a crash
            self.failed.emit(friendly_message(exc), traceback.format_exc())
        else:
            self.succeeded.emit(result)
        finally:
            self.done.emit()

    def _on_progress(self, event: ProgressEvent) -> None:
        self.progress.emit(event.stage, event.done, event.total, event.message,
                           _seconds(event.eta_s), _seconds(event.run_eta_s))

    def _on_log(self, event: LogEvent) -> None:
        self.log.emit(event.level, event.message)


def _seconds(value: float | None) -> float:
    return -1.0 if value is None else float(value)


def friendly_message(exc: BaseException) -> str:
    """The engine's user-facing errors as they are (capitalised); anything else is a bug and
    says so, with its type."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, USER_ERRORS):
        return text[0].upper() + text[1:]
    return f"Unexpected problem ({type(exc).__name__}): {text}"


class EngineTask(QObject):
    """Owns the thread and the runner; emit-only interface for the window."""

    progress = Signal(str, int, int, str, float, float)
    log = Signal(str, str)
    succeeded = Signal(object)
    failed = Signal(str, str)
    finished = Signal()

    def __init__(self, fn: EngineCall, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.cancel_token = CancelToken()
        self._thread = QThread()
        self._runner = _Runner(fn, self.cancel_token)
        self._runner.moveToThread(self._thread)
        self._thread.started.connect(self._runner.run)
        self._runner.progress.connect(self.progress)
        self._runner.log.connect(self.log)
        self._runner.succeeded.connect(self.succeeded)
        self._runner.failed.connect(self.failed)
        # quit from the worker itself (QThread.quit is thread-safe): queued to the GUI thread
        # it would never arrive while that thread waits for this one (closing the window)
        self._runner.done.connect(self._thread.quit, Qt.ConnectionType.DirectConnection)
        self._thread.finished.connect(self.finished)

    def start(self) -> None:
        self._thread.start()

    def cancel(self) -> None:
        self.cancel_token.cancel()

    def is_running(self) -> bool:
        return self._thread.isRunning()

    def wait(self, ms: int = 60_000) -> bool:
        return self._thread.wait(ms)
