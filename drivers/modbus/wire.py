"""Modbus RTU read frames declared with construct: the layout, once (../shared/TRANSDUCERS.md).

Request ``ADDR FC START_H START_L COUNT_H COUNT_L CRC_L CRC_H``; reply
``ADDR FC BYTECOUNT data CRC_L CRC_H``; exception ``ADDR FC|0x80 CODE CRC_L CRC_H``.
The CRC is CRC-16/MODBUS over ADDR..last data byte, sent **low byte first**
(the KELLER bus sends the same CRC high byte first), so the CRC over a whole
Modbus frame is 0.  These declarations are the yardstick; ``drivers.modbus.fast``
is the hot path and ``drivers.modbus.adapter`` the pymodbus view, both
cross-checked against them in tests.
"""

from __future__ import annotations

import enum

from construct import Array, Checksum, Int8ub, Int16ub, Int16ul, RawCopy, Struct, this

from drivers.keller.wire import CRC_TABLE, crc16_modbus

__all__ = ["CRC_TABLE", "crc16_modbus"]

EXCEPTION_BIT = 0x80
REQUEST_SIZE = 8  # FC3/FC4
EXCEPTION_SIZE = 5


def reply_size(count: int) -> int:
    """Bytes of the normal reply to a read of ``count`` registers."""
    return 5 + 2 * count


class Function(enum.IntEnum):
    READ_HOLDING = 3
    READ_INPUT = 4


class ExceptionCode(enum.IntEnum):
    ILLEGAL_FUNCTION = 1
    ILLEGAL_ADDRESS = 2
    ILLEGAL_VALUE = 3
    DEVICE_FAILURE = 4


def framed(*fields) -> Struct:
    """A frame: ``body`` (ADDR fields...) then its CRC, low byte first."""
    return Struct(
        "body" / RawCopy(Struct("addr" / Int8ub, *fields)),
        "crc" / Checksum(Int16ul, crc16_modbus, this.body.data),
    )


READ_REQUEST = framed("fn" / Int8ub, "start" / Int16ub, "count" / Int16ub)
READ_REPLY = framed(
    "fn" / Int8ub,
    "byte_count" / Int8ub,
    "registers" / Array(this.byte_count // 2, Int16ub),
)
EXCEPTION = framed("fn" / Int8ub, "code" / Int8ub)


def build(struct_: Struct, addr: int, **fields) -> bytes:
    """Wire bytes of one frame declared above (the CRC computed)."""
    return struct_.build(dict(body=dict(value=dict(addr=addr, **fields))))


def parse(struct_: Struct, data: bytes) -> dict:
    """The fields of one frame; raises on a bad CRC."""
    value = struct_.parse(data).body.value
    out = {k: v for k, v in value.items() if not k.startswith("_")}
    if "registers" in out:
        out["registers"] = list(out["registers"])
    return out
