"""systemd's notify protocol (sd_notify): READY, WATCHDOG, STATUS, STOPPING.

The documented datagram protocol, written out rather than a dependency: a
no-op unless systemd set ``NOTIFY_SOCKET``.  The watchdog is stroked at half
of ``WATCHDOG_USEC``, and only while the caller says every part is healthy,
as F Prime's health component does.
"""

from __future__ import annotations

import os
import socket
import time


class Notifier:
    def __init__(self, env: dict | None = None, wall_clock=time.monotonic):
        env = os.environ if env is None else env
        addr = env.get("NOTIFY_SOCKET", "")
        if addr.startswith("@"):
            addr = "\0" + addr[1:]  # abstract namespace
        self._addr = addr or None
        usec = env.get("WATCHDOG_USEC", "")
        self.watchdog_s = int(usec) / 1e6 if usec.isdigit() else None
        self._wall = wall_clock
        self._last_stroke = -float("inf")
        self._sock = None
        if self._addr:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def notify(self, message: str) -> bool:
        if self._sock is None:
            return False
        try:
            self._sock.sendto(message.encode(), self._addr)
            return True
        except OSError:
            return False

    def ready(self, status: str = "") -> None:
        self.notify("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def watchdog(self, healthy: bool) -> None:
        """Stroke the watchdog if it is due and ``healthy``."""
        if self.watchdog_s is None or not healthy:
            return
        now = self._wall()
        if now - self._last_stroke >= self.watchdog_s / 2:
            self._last_stroke = now
            self.notify("WATCHDOG=1")

    def stopping(self) -> None:
        self.notify("STOPPING=1")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
