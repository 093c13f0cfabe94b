"""Single keys from a terminal: the board's live display and the station view read them.

``TerminalKeys`` puts a terminal's input into cbreak mode (each key at once, not
echoed; Ctrl-C still interrupts), hands out the keys pressed since the last
``read`` without ever blocking, and puts the terminal back as it found it on
``close``.  Off a terminal (a pipe, a file, a system without termios) it does
nothing and ``read`` returns "".
"""

from __future__ import annotations

import os
import select
import sys
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
