"""A KELLER bus line (``hil.keller_device``) served on 127.0.0.1 TCP for driver tests.

``KellerServer(devices, echo=..., tamper=..., reply_delay_s=...)``: a
``tests.support.line_server.LineServer`` (one client at a time, ``tamper``,
``reply_delay_s``, ``log``, ``drop``, ``lock``) around a ``KellerLine``.
"""

from __future__ import annotations

from collections.abc import Callable

from hil.keller_device import KellerDevice, KellerLine
from tests.support.line_server import LineServer


class KellerServer(LineServer):
    def __init__(
        self,
        devices: list[KellerDevice],
        *,
        echo: bool = False,
        tamper: Callable[[bytes], bytes] | None = None,
        reply_delay_s: float = 0.0,
    ):
        super().__init__(
            KellerLine(devices, echo=echo), tamper=tamper, reply_delay_s=reply_delay_s, tick_s=0.05
        )
