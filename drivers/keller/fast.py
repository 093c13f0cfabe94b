"""The KELLER bus hot path: precompiled requests and a ``struct`` reply matcher.

``request(addr, fn, params)`` returns cached wire bytes (a poll cycle sends the
same few requests again and again).  ``match_reply(buf, addr, fn)`` looks at
the start of a receive buffer for the answer to one request and says what it
found as a ``drivers.match.Match`` (F Prime's frame detector: complete, more
bytes needed, or bad, in which case the caller drops one byte and looks again).  Tests
cross-check both against the construct declarations in ``drivers.keller.wire``.
"""

from __future__ import annotations

import functools
import struct

from drivers.keller.wire import (
    CRC_TABLE,
    EXCEPTION_BIT,
    EXCEPTION_SIZE,
    REPLY_SIZE,
    Function,
)
from drivers.match import BAD_CRC, NEED_MORE, WRONG_ADDRESS, WRONG_FUNCTION, Match, MatchStatus

_F73 = struct.Struct(">fB")
_F48 = struct.Struct(">6B")
_U32 = struct.Struct(">I")
_F32 = struct.Struct(">f")


def crc16(data: bytes) -> int:
    """CRC-16/MODBUS of ``data`` (the same as ``wire.crc16_modbus``, inlined)."""
    c = 0xFFFF
    t = CRC_TABLE
    for b in data:
        c = (c >> 8) ^ t[(c ^ b) & 0xFF]
    return c


@functools.lru_cache(maxsize=4096)
def request(addr: int, fn: int, params: bytes = b"") -> bytes:
    """Wire bytes of a request: ``ADDR FN params CRC_H CRC_L`` (cached)."""
    body = bytes((addr, fn)) + params
    return body + crc16(body).to_bytes(2, "big")


def frame(addr: int, fn: int, data: bytes = b"") -> bytes:
    """Wire bytes of any frame (a device's reply): ``ADDR FN data CRC_H CRC_L``."""
    body = bytes((addr, fn)) + data
    return body + crc16(body).to_bytes(2, "big")


def match_reply(buf: bytes | bytearray, addr: int, fn: int, start: int = 0) -> Match:
    """The answer of device ``addr`` to function ``fn`` at ``buf[start:]``, if any.

    ``addr`` is the address the reply carries (the request's, 250 for the
    transparent address).  Never raises.
    """
    avail = len(buf) - start
    if avail < 2:
        if avail == 1 and buf[start] != addr:
            return WRONG_ADDRESS
        return NEED_MORE
    if buf[start] != addr:
        return WRONG_ADDRESS
    got = buf[start + 1]
    if got == fn:
        size = REPLY_SIZE[Function(fn)]
    elif got == fn | EXCEPTION_BIT:
        size = EXCEPTION_SIZE
    else:
        return WRONG_FUNCTION
    if avail < size:
        return NEED_MORE
    end = start + size
    body = bytes(buf[start : end - 2])
    if crc16(body) != (buf[end - 2] << 8 | buf[end - 1]):
        return BAD_CRC
    if got == fn:
        return Match(MatchStatus.REPLY, data=body[2:], size=size)
    return Match(MatchStatus.EXCEPTION, code=body[2], size=size)


def f73_value(data: bytes) -> tuple[float, int]:
    """F73 reply data -> (value in the channel's unit: bar or deg C, STAT byte)."""
    return _F73.unpack(data)


def f48_identity(data: bytes) -> tuple[int, int, int, int, int, int]:
    """F48 reply data -> (class, group, year, week, buf, stat)."""
    return _F48.unpack(data)


def f69_serial(data: bytes) -> int:
    """F69 reply data -> serial number."""
    return _U32.unpack(data)[0]


def f30_value(data: bytes) -> float:
    """F30 reply data -> the coefficient (float)."""
    return _F32.unpack(data)[0]
