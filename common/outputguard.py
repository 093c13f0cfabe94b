"""One output's health: a failure is caught, kept in words, and retried with backoff.

An output (the archive, the telemetry file, a link's raw capture) owns an
``OutputGuard``.  When a write fails it calls ``failed(exc)``: the guard turns
FAILING, keeps the error in words and answers ``ready()`` False until the
retry time, which starts at ``first_retry_s`` (1 s) and doubles after every
further failure up to ``max_retry_s`` (30 s).  The first write that works
calls ``succeeded()``: OK again, the backoff starts over.  Nothing is raised.

The monitor loop reads ``status`` and ``error`` every tick and turns a change
into the ADVISORY ``OUTPUT_FAILED`` (``MonitorCore.report_output``); reading
them from another thread is safe (a capture fails on its link's reader thread).
Times are seconds of ``clock`` (monotonic by default).
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable

#: First retry after this long (s); doubled after each further failure ...
FIRST_RETRY_S = 1.0
#: ... up to this (s).
MAX_RETRY_S = 30.0


class OutputStatus(enum.Enum):
    OK = "ok"
    FAILING = "failing"


def error_words(exc: BaseException) -> str:
    """An exception as a short line: ``"[Errno 28] No space left on device"``."""
    text = str(exc).strip().replace("\n", " ")
    return text or type(exc).__name__


class OutputGuard:
    """The failure state and retry timer of output ``name``; see module docstring."""

    def __init__(
        self,
        name: str,
        *,
        clock: Callable[[], float] = time.monotonic,
        first_retry_s: float = FIRST_RETRY_S,
        max_retry_s: float = MAX_RETRY_S,
    ):
        self.name = name
        self._clock = clock
        self.first_retry_s = first_retry_s
        self.max_retry_s = max_retry_s
        self._lock = threading.Lock()
        self.status = OutputStatus.OK
        self.error: str | None = None
        self.failures = 0
        self.retry_delay_s = 0.0
        self.retry_at_s = -float("inf")

    def ready(self) -> bool:
        """True if a write may be tried now: OK, or FAILING and the retry time reached."""
        return self.status is OutputStatus.OK or self._clock() >= self.retry_at_s

    def failed(self, exc: BaseException) -> None:
        """A write failed with ``exc``: FAILING, next try after the (doubled) backoff."""
        with self._lock:
            self.failures += 1
            if self.status is OutputStatus.OK:
                self.retry_delay_s = self.first_retry_s
            else:
                self.retry_delay_s = min(self.retry_delay_s * 2.0, self.max_retry_s)
            self.retry_at_s = self._clock() + self.retry_delay_s
            self.error = error_words(exc)
            self.status = OutputStatus.FAILING

    def succeeded(self) -> None:
        """A write worked: OK again, the backoff starts over."""
        if self.status is OutputStatus.OK:
            return
        with self._lock:
            self.status = OutputStatus.OK
            self.error = None
            self.retry_delay_s = 0.0
            self.retry_at_s = -float("inf")

    def call(self, fn: Callable[..., object], *args) -> bool:
        """``fn(*args)``; any exception is a failure of this output, never raised.
        True if it ran without one."""
        try:
            fn(*args)
        except Exception as exc:  # noqa: BLE001 - an output must never stop the monitor
            self.failed(exc)
            return False
        return True
