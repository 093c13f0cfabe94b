"""The one place pymodbus is used: RTU frames and values through its own classes.

Pinned: ``pymodbus>=3.8,<3.9`` (3.8.6 in constraints.txt); its API changes
nearly every minor release.  Names of 3.8: PDUs take ``dev_id=`` (3.10 renamed
the client's ``slave=`` to ``device_id=``), ``ExceptionResponse(function_code,
exception_code, slave=)``, ``FramerRTU(DecodePDU(is_server))`` with
``buildFrame(pdu)`` and ``processIncomingFrame(data) -> (used, pdu)``, and
``ModbusClientMixin.convert_from_registers(registers, DATATYPE, word_order)``.

The transport stays the project's ``PolledDriver`` (one transaction in flight,
echo, capture tap, counters, reconnects); pymodbus builds and parses frames
only.  The driver's hot path is ``drivers.modbus.fast``; this adapter is the
yardstick it is tested against and the ``decode = "pymodbus"`` path the bench
compares (``python -m bench modbus``).
"""

from __future__ import annotations

import pymodbus
from pymodbus.client.mixin import ModbusClientMixin
from pymodbus.framer import FramerRTU
from pymodbus.pdu import DecodePDU, ExceptionResponse
from pymodbus.pdu.register_message import (
    ReadHoldingRegistersRequest,
    ReadHoldingRegistersResponse,
    ReadInputRegistersRequest,
    ReadInputRegistersResponse,
)

from drivers.modbus.layout import Channel

VERSION = pymodbus.__version__
_DT = ModbusClientMixin.DATATYPE
DATATYPES = {
    "float32": _DT.FLOAT32,
    "int32": _DT.INT32,
    "uint32": _DT.UINT32,
    "int16": _DT.INT16,
    "uint16": _DT.UINT16,
}
_REQUESTS = {3: ReadHoldingRegistersRequest, 4: ReadInputRegistersRequest}
_RESPONSES = {3: ReadHoldingRegistersResponse, 4: ReadInputRegistersResponse}
_client = FramerRTU(DecodePDU(False))
_server = FramerRTU(DecodePDU(True))


def read_request(addr: int, fn: int, start: int, count: int) -> bytes:
    """Wire bytes of an FC3/FC4 read, built by pymodbus."""
    return _client.buildFrame(_REQUESTS[fn](dev_id=addr, address=start, count=count))


def parse_request(data: bytes) -> tuple[int, int, int, int] | None:
    """A device's view of a read request: (addr, fn, start, count), or None."""
    used, pdu = _server.processIncomingFrame(bytes(data))
    if pdu is None or used != len(data):
        return None
    return pdu.dev_id, pdu.function_code, pdu.address, pdu.count


def reply_frame(addr: int, fn: int, registers: list[int]) -> bytes:
    """Wire bytes of a device's normal reply, built by pymodbus."""
    return _server.buildFrame(_RESPONSES[fn](dev_id=addr, registers=list(registers)))


def exception_frame(addr: int, fn: int, code: int) -> bytes:
    """Wire bytes of a device's exception reply, built by pymodbus."""
    return _server.buildFrame(ExceptionResponse(fn, code, slave=addr))


def parse_reply(data: bytes) -> tuple[int, int, list[int] | None, int]:
    """One complete reply frame -> (addr, fn, registers or None, exception code or 0).

    Raises ValueError when pymodbus finds no frame (bad CRC, truncated)."""
    used, pdu = _client.processIncomingFrame(bytes(data))
    if pdu is None:
        raise ValueError(f"no Modbus RTU frame in {bytes(data).hex(' ')}")
    if isinstance(pdu, ExceptionResponse):
        return pdu.dev_id, pdu.function_code & 0x7F, None, pdu.exception_code
    return pdu.dev_id, pdu.function_code, list(pdu.registers), 0


def channel_value(registers: list[int], channel: Channel, offset: int) -> float:
    """The channel's raw value from ``registers`` (``offset`` in), by pymodbus."""
    regs = registers[offset : offset + channel.count]
    return float(
        ModbusClientMixin.convert_from_registers(
            regs, DATATYPES[channel.type], word_order=channel.word_order
        )
    )
