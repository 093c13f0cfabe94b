"""A Modbus RTU line (``hil.modbus_device``) served on 127.0.0.1 TCP for driver tests.

The same server as ``tests.support.keller_server.KellerServer`` (one client at
a time, ``tamper``, ``reply_delay_s``, ``log``, ``drop``, ``lock``) around a
``ModbusLine`` instead of a ``KellerLine``.
"""

from __future__ import annotations

from collections.abc import Callable

from hil.modbus_device import ModbusDevice, ModbusLine
from tests.support.keller_server import KellerServer


class ModbusServer(KellerServer):
    def __init__(
        self,
        devices: list[ModbusDevice],
        *,
        echo: bool = False,
        tamper: Callable[[bytes], bytes] | None = None,
        reply_delay_s: float = 0.0,
    ):
        super().__init__([], echo=echo, tamper=tamper, reply_delay_s=reply_delay_s)
        self.line = ModbusLine(devices, echo=echo)  # type: ignore[assignment]
