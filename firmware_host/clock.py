"""Injected clocks: the loop asks a ``Clock`` for the time and to sleep.

``WallClock`` is the board's monotonic clock; ``SimClock`` jumps to the
deadline at once, so a capture or a test runs as fast as the machine allows
with the same tick times.  Times are integer nanoseconds.
"""

from __future__ import annotations

import time
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """Monotonic time source in ns that can sleep until an absolute deadline."""

    def now_ns(self) -> int: ...

    def sleep_until_ns(self, deadline_ns: int) -> None: ...


class WallClock:
    """``time.monotonic_ns`` with ``time.sleep`` to absolute deadlines.

    ``busy_wait_ns`` > 0 sleeps until that long before the deadline and spins
    the rest (cuts wake-up lateness when a core is free, worse when both are
    busy, SERIAL_NOTES.md); off by default.
    """

    def __init__(self, busy_wait_ns: int = 0):
        self.busy_wait_ns = int(busy_wait_ns)

    def now_ns(self) -> int:
        return time.monotonic_ns()

    def sleep_until_ns(self, deadline_ns: int) -> None:
        remaining = deadline_ns - time.monotonic_ns() - self.busy_wait_ns
        if remaining > 0:
            time.sleep(remaining / 1e9)
        if self.busy_wait_ns:
            while time.monotonic_ns() < deadline_ns:
                pass


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
