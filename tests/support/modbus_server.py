"""A Modbus RTU line (``hil.modbus_device``) served on 127.0.0.1 TCP for driver tests.

``ModbusServer(devices, echo=..., tamper=..., reply_delay_s=...)``: a
``tests.support.line_server.LineServer`` (one client at a time, ``tamper``,
``reply_delay_s``, ``log``, ``drop``, ``lock``) around a ``ModbusLine``.
"""

from __future__ import annotations

from collections.abc import Callable

from hil.modbus_device import ModbusDevice, ModbusLine
from tests.support.line_server import LineServer


class ModbusServer(LineServer):
    def __init__(
        self,
        devices: list[ModbusDevice],
        *,
        echo: bool = False,
        tamper: Callable[[bytes], bytes] | None = None,
        reply_delay_s: float = 0.0,
    ):
        super().__init__(
            ModbusLine(devices, echo=echo), tamper=tamper, reply_delay_s=reply_delay_s, tick_s=0.05
        )
