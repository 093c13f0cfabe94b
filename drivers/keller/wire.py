"""KELLER bus frames declared with construct: the layout, once (../shared/TRANSDUCERS.md).

Request ``ADDR FN [params] CRC_H CRC_L``; reply ``ADDR FN data CRC_H CRC_L``;
exception ``ADDR FN|0x80 CODE CRC_H CRC_L``.  The CRC is CRC-16/MODBUS over
ADDR..last data byte, sent **high byte first** (Modbus RTU sends the same CRC
low byte first), so "the CRC over the whole frame is zero" does not hold.
These declarations are the yardstick; ``drivers.keller.fast`` is the hot path
and is cross-checked against them in tests.
"""

from __future__ import annotations

import enum

from construct import (
    Checksum,
    Const,
    Float32b,
    Int8ub,
    Int16ub,
    Int32ub,
    RawCopy,
    Struct,
    this,
)

BROADCAST_ADDR = 0  # executed by every device, never answered
TRANSPARENT_ADDR = 250  # every device answers with 250: one device on the line only
MIN_ADDR, MAX_ADDR = 1, 249
EXCEPTION_BIT = 0x80
CRC_SIZE = 2


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        c = byte
        for _ in range(8):
            c = (c >> 1) ^ 0xA001 if c & 1 else c >> 1
        table.append(c)
    return tuple(table)


CRC_TABLE = _crc_table()


def crc16_modbus(data: bytes) -> int:
    """CRC-16/MODBUS (reflected poly 0xA001, init 0xFFFF); check("123456789") = 0x4B37."""
    c = 0xFFFF
    t = CRC_TABLE
    for b in data:
        c = (c >> 8) ^ t[(c ^ b) & 0xFF]
    return c


class Function(enum.IntEnum):
    """KELLER bus function numbers used here."""

    READ_COEFFICIENT = 30
    INITIALISE = 48
    SERIAL_NUMBER = 69
    READ_FLOAT = 73


class Channel(enum.IntEnum):
    """F73 channel numbers."""

    CH0 = 0
    P1 = 1
    P2 = 2
    T = 3
    TOB1 = 4
    TOB2 = 5


class Coefficient(enum.IntEnum):
    """F30 coefficient numbers (floats)."""

    P1_OFFSET = 64
    P1_GAIN = 65
    P1_MIN_BAR = 80
    P1_MAX_BAR = 81


class ExceptionCode(enum.IntEnum):
    """The code byte of an exception reply."""

    ILLEGAL_FUNCTION = 1
    ILLEGAL_ADDRESS = 2
    ILLEGAL_VALUE = 3
    DEVICE_FAILURE = 4
    NOT_INITIALISED = 32


class Stat(enum.IntFlag):
    """The STAT byte of F73/F74: a channel bit set = that channel's value is invalid."""

    CH0 = 1 << 0
    P1 = 1 << 1
    P2 = 1 << 2
    T = 1 << 3
    TOB1 = 1 << 4
    TOB2 = 1 << 5
    ERR2 = 1 << 6
    POWER_UP = 1 << 7  # /STD: the device is in power-up mode


def framed(*fields) -> Struct:
    """A frame: ``body`` (ADDR FN fields...) then its CRC, high byte first."""
    return Struct(
        "body" / RawCopy(Struct("addr" / Int8ub, *fields)),
        "crc" / Checksum(Int16ub, crc16_modbus, this.body.data),
    )


F48_REQUEST = framed("fn" / Const(Function.INITIALISE, Int8ub))
F48_REPLY = framed(
    "fn" / Const(Function.INITIALISE, Int8ub),
    "device_class" / Int8ub,
    "group" / Int8ub,
    "year" / Int8ub,
    "week" / Int8ub,
    "buf" / Int8ub,
    "stat" / Int8ub,
)
F73_REQUEST = framed("fn" / Const(Function.READ_FLOAT, Int8ub), "channel" / Int8ub)
F73_REPLY = framed("fn" / Const(Function.READ_FLOAT, Int8ub), "value" / Float32b, "stat" / Int8ub)
F69_REQUEST = framed("fn" / Const(Function.SERIAL_NUMBER, Int8ub))
F69_REPLY = framed("fn" / Const(Function.SERIAL_NUMBER, Int8ub), "serial" / Int32ub)
F30_REQUEST = framed("fn" / Const(Function.READ_COEFFICIENT, Int8ub), "number" / Int8ub)
F30_REPLY = framed("fn" / Const(Function.READ_COEFFICIENT, Int8ub), "value" / Float32b)
EXCEPTION = framed("fn" / Int8ub, "code" / Int8ub)

REQUESTS = {
    Function.INITIALISE: F48_REQUEST,
    Function.READ_FLOAT: F73_REQUEST,
    Function.SERIAL_NUMBER: F69_REQUEST,
    Function.READ_COEFFICIENT: F30_REQUEST,
}
REPLIES = {
    Function.INITIALISE: F48_REPLY,
    Function.READ_FLOAT: F73_REPLY,
    Function.SERIAL_NUMBER: F69_REPLY,
    Function.READ_COEFFICIENT: F30_REPLY,
}
#: bytes of each function's request and normal reply, CRC included
REQUEST_SIZE = {fn: s.sizeof() for fn, s in REQUESTS.items()}
REPLY_SIZE = {fn: s.sizeof() for fn, s in REPLIES.items()}
EXCEPTION_SIZE = EXCEPTION.sizeof()


def build(struct_: Struct, addr: int, **fields) -> bytes:
    """Wire bytes of one frame declared above (the CRC computed)."""
    return struct_.build(dict(body=dict(value=dict(addr=addr, **fields))))


def parse(struct_: Struct, data: bytes) -> dict:
    """The fields of one frame (``addr`` and the function's own); raises on a bad CRC."""
    value = struct_.parse(data).body.value
    return {k: v for k, v in value.items() if not k.startswith("_")}
