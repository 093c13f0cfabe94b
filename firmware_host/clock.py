"""Injected clocks: the loop asks a ``Clock`` for the time and to sleep.

``WallClock`` is the board's monotonic clock; ``SimClock`` jumps to the
deadline at once, so a capture or a test runs as fast as the machine allows
with the same tick times.  Times are integer nanoseconds.
"""

from __future__ import annotations

import os
import select
import time
import weakref
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """Monotonic time source in ns that can sleep until an absolute deadline."""

    def now_ns(self) -> int: ...

    def sleep_until_ns(self, deadline_ns: int) -> None: ...


class InterruptibleSleep:
    """Sleeps that ``interrupt()`` ends at once, also when called from a signal handler.

    A ``time.sleep`` interrupted by a signal resumes after the handler (PEP 475),
    so a 1 Hz loop would answer SIGTERM up to a period late.  This sleep waits
    in ``select`` on a wake-up pipe instead; the handler writes to the pipe (no
    lock taken, so it cannot deadlock against the thread it interrupts).  Once
    interrupted, every later sleep returns at once.  Durations in s.
    """

    def __init__(self) -> None:
        self.interrupted = False
        self._fds: tuple[int, int] | None = None

    def sleep(self, seconds: float) -> None:
        if self.interrupted or seconds <= 0:
            return
        if self._fds is None:
            r, w = os.pipe()
            os.set_blocking(r, False)
            os.set_blocking(w, False)
            self._fds = (r, w)
            weakref.finalize(self, _close_fds, r, w)
        end = time.monotonic() + seconds
        while not self.interrupted:
            left = end - time.monotonic()
            if left <= 0:
                return
            select.select([self._fds[0]], [], [], left)

    def interrupt(self) -> None:
        self.interrupted = True
        if self._fds is not None:
            try:
                os.write(self._fds[1], b"x")
            except OSError:
                pass


def _close_fds(*fds: int) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


class WallClock:
    """``time.monotonic_ns`` with an interruptible sleep to absolute deadlines.

    ``busy_wait_ns`` > 0 sleeps until that long before the deadline and spins
    the rest (cuts wake-up lateness when a core is free, worse when both are
    busy, SERIAL_NOTES.md); off by default.  ``interrupt()`` ends the current
    and every later sleep at once (SIGTERM).
    """

    def __init__(self, busy_wait_ns: int = 0):
        self.busy_wait_ns = int(busy_wait_ns)
        self._sleep = InterruptibleSleep()

    def now_ns(self) -> int:
        return time.monotonic_ns()

    def sleep_until_ns(self, deadline_ns: int) -> None:
        remaining = deadline_ns - time.monotonic_ns() - self.busy_wait_ns
        if remaining > 0:
            self._sleep.sleep(remaining / 1e9)
        if self.busy_wait_ns:
            while time.monotonic_ns() < deadline_ns and not self._sleep.interrupted:
                pass

    def interrupt(self) -> None:
        self._sleep.interrupt()


class SimClock:
    """Simulated clock: ``sleep_until_ns`` advances the time instantly.

    ``advance_ns`` adds time (a test can simulate a slow tick with it).
    """

    def __init__(self, start_ns: int = 0):
        self._now = int(start_ns)

    def now_ns(self) -> int:
        return self._now

    def sleep_until_ns(self, deadline_ns: int) -> None:
        if deadline_ns > self._now:
            self._now = int(deadline_ns)

    def advance_ns(self, delta_ns: int) -> None:
        self._now += int(delta_ns)
