"""The terminal of the board's live display and of the station view: keys and redraws.

``TerminalKeys`` puts a terminal's input into cbreak mode (each key at once, not
echoed; Ctrl-C still interrupts), hands out the keys pressed since the last
``read`` without ever blocking, and puts the terminal back as it found it on
``close``.  Off a terminal (a pipe, a file, a system without termios) it does
nothing and ``read`` returns "".  ``TerminalScreen`` redraws a screen of lines
in place on a terminal, or appends plain lines on a pipe or a log, each at most
once a period, and reads the keys.
"""

from __future__ import annotations

import math
import os
import select
import sys
import time
from collections.abc import Callable
from typing import TextIO

try:
    import termios
    import tty
except ImportError:  # not a POSIX system: no keys
    termios = tty = None


class TerminalKeys:
    """Non-blocking key reads from ``stdin`` (default ``sys.stdin``) when ``enabled``
    and it is a terminal; ``active``: keys are being read."""

    def __init__(self, stdin: TextIO | None = None, *, enabled: bool = True):
        self._stdin = stdin if stdin is not None else sys.stdin
        self._saved: list | None = None
        self.active = bool(enabled) and termios is not None and self._stdin.isatty()
        if self.active:
            try:
                fd = self._stdin.fileno()
                self._saved = termios.tcgetattr(fd)
                tty.setcbreak(fd)
            except (OSError, termios.error):
                self._saved, self.active = None, False

    def read(self) -> str:
        """The keys pressed since the last call (ASCII; never blocks)."""
        if not self.active:
            return ""
        keys = ""
        fd = self._stdin.fileno()
        while select.select([fd], [], [], 0)[0]:
            chunk = os.read(fd, 32)
            if not chunk:
                break
            keys += chunk.decode("ascii", errors="ignore")
        return keys

    def close(self) -> None:
        """Put the terminal back as it was and stop reading (later calls do nothing)."""
        self.active = False
        if self._saved is not None:
            termios.tcsetattr(self._stdin.fileno(), termios.TCSADRAIN, self._saved)
            self._saved = None


class TerminalScreen:
    """A screen redrawn in place on a terminal at most every ``period_s`` (s), or
    plain lines appended every ``plain_period_s`` (s) elsewhere; keys read on a
    terminal (``TerminalKeys``).  The board's ``LiveDisplay`` and the station's
    ``StationDisplay`` are ones; ``wall_clock``: s, injected for tests."""

    def __init__(
        self,
        out: TextIO | None = None,
        *,
        period_s: float = 1.0,
        plain_period_s: float = 10.0,
        keys: bool = True,
        wall_clock: Callable[[], float] = time.monotonic,
    ):
        self.out = out or sys.stdout
        self.tty = hasattr(self.out, "isatty") and self.out.isatty()
        self.period_s = period_s if self.tty else plain_period_s
        self._wall = wall_clock
        self._last = -math.inf
        self._keys = TerminalKeys(enabled=keys and self.tty)

    def due(self) -> bool:
        """A period has passed since the last ``draw``."""
        return self._wall() - self._last >= self.period_s

    def draw(self, lines: list[str]) -> None:
        """``lines`` in place of the screen on a terminal, appended elsewhere; the
        period starts again."""
        self._last = self._wall()
        clear = "\x1b[H\x1b[2J" if self.tty else ""
        self.out.write(clear + "\n".join(lines) + "\n")
        self.out.flush()

    def read_keys(self) -> str:
        """Keys pressed since the last call (never blocks)."""
        return self._keys.read()

    def close(self) -> None:
        """Put the terminal back as it was."""
        self._keys.close()
