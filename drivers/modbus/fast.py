"""The Modbus RTU hot path: cached requests, a ``struct`` reply matcher and value decoders.

``read_request(addr, fn, start, count)`` returns cached wire bytes (a poll cycle
sends the same request again and again).  ``match_reply(buf, addr, fn, count)``
looks at the start of a receive buffer for the answer to one read and says
what it found as a ``drivers.match.Match`` (complete, more bytes needed, or
bad: the caller drops one byte, or a foreign frame whole, and looks again).
``value_decoder(channel, offset)`` precompiles one channel's conversion from
the reply's register bytes.  Tests cross-check all three against the
construct declarations (``drivers.modbus.wire``) and pymodbus
(``drivers.modbus.adapter``).
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable

from drivers.keller.wire import CRC_TABLE
from drivers.match import BAD_CRC, NEED_MORE, WRONG_ADDRESS, WRONG_FUNCTION, Match, MatchStatus
from drivers.modbus.layout import TYPES, Channel
from drivers.modbus.wire import EXCEPTION_BIT, EXCEPTION_SIZE


def crc16(data: bytes | bytearray | memoryview) -> int:
    """CRC-16/MODBUS of ``data``; 0 over a whole frame with its CRC (low byte first)."""
    c = 0xFFFF
    t = CRC_TABLE
    for b in data:
        c = (c >> 8) ^ t[(c ^ b) & 0xFF]
    return c


def frame(addr: int, fn: int, data: bytes = b"") -> bytes:
    """Wire bytes of any frame: ``ADDR FC data CRC_L CRC_H``."""
    body = bytes((addr, fn)) + data
    return body + crc16(body).to_bytes(2, "little")


@functools.lru_cache(maxsize=4096)
def read_request(addr: int, fn: int, start: int, count: int) -> bytes:
    """Wire bytes of an FC3/FC4 read of ``count`` registers from ``start`` (cached)."""
    return frame(addr, fn, start.to_bytes(2, "big") + count.to_bytes(2, "big"))


def match_reply(buf: bytes | bytearray, addr: int, fn: int, count: int, start: int = 0) -> Match:
    """The answer of device ``addr`` to a read (``fn``, ``count`` registers) at
    ``buf[start:]``, if any.  Never raises."""
    avail = len(buf) - start
    if avail < 1:
        return NEED_MORE
    if buf[start] != addr:
        return WRONG_ADDRESS
    if avail < 2:
        return NEED_MORE
    got = buf[start + 1]
    if got == fn:
        if avail < 3:
            return NEED_MORE
        if buf[start + 2] != 2 * count:
            return WRONG_FUNCTION
        size = 5 + 2 * count
    elif got == fn | EXCEPTION_BIT:
        size = EXCEPTION_SIZE
    else:
        return WRONG_FUNCTION
    if avail < size:
        return NEED_MORE
    end = start + size
    if crc16(memoryview(buf)[start:end]) != 0:
        return BAD_CRC
    if got == fn:
        return Match(MatchStatus.REPLY, data=bytes(buf[start + 3 : end - 2]), size=size)
    return Match(MatchStatus.EXCEPTION, code=buf[start + 2], size=size)


def frame_size(buf: bytes | bytearray, start: int = 0) -> int:
    """Size of a complete, CRC-good read reply or exception of any device at
    ``buf[start:]`` (a foreign frame to skip whole), else 0."""
    avail = len(buf) - start
    if avail < EXCEPTION_SIZE:
        return 0
    fn = buf[start + 1]
    if fn & EXCEPTION_BIT:
        size = EXCEPTION_SIZE
    elif fn in (3, 4):
        size = 5 + buf[start + 2]
    else:
        return 0
    if avail < size or crc16(memoryview(buf)[start : start + size]) != 0:
        return 0
    return size


def value_decoder(channel: Channel, offset: int) -> Callable[[bytes], float]:
    """``decode(data)``: the channel's raw value from a reply's register bytes,
    ``offset`` registers in (a precompiled ``struct``; words swapped for
    ``word_order = "little"``)."""
    n, fmt = TYPES[channel.type]
    s = struct.Struct(fmt)
    i = 2 * offset
    if n == 2 and channel.word_order == "little":
        unpack = s.unpack

        def decode(data: bytes) -> float:
            return unpack(data[i + 2 : i + 4] + data[i : i + 2])[0]

        return decode
    unpack_from = s.unpack_from

    def decode_be(data: bytes) -> float:
        return unpack_from(data, i)[0]

    return decode_be


def value_encoder(channel: Channel) -> Callable[[float], bytes]:
    """The device's side: ``encode(raw)`` -> the channel's register bytes (ints
    rounded and clipped to the type's range)."""
    n, fmt = TYPES[channel.type]
    s = struct.Struct(fmt)
    if channel.is_float:
        lo = hi = None
    else:
        bits = 16 * n
        signed = fmt[-1].islower()
        lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)

    def encode(raw: float) -> bytes:
        if lo is not None:  # NaN -> lowest; +-Inf and beyond -> the ends
            if raw != raw or raw <= lo:
                raw = lo
            elif raw >= hi:
                raw = hi
            else:
                raw = round(raw)
        b = s.pack(raw)
        if n == 2 and channel.word_order == "little":
            b = b[2:] + b[:2]
        return b

    return encode
