"""The receive rules walked one frame at a time with construct: the yardstick.

``ReferenceDecoder`` has the same results as ``StreamDecoder`` and is about a
hundred times slower; the tests compare both fast paths against it.
"""

from __future__ import annotations

import numpy as np

from drivers.counters import Counts, DecoderCounters
from drivers.crc import crc16, hec
from drivers.frames import AckFrame, CommandFrame, Frame, IdentityFrame, SampleFrame, ack_result
from drivers.protocol import (
    CRC_SIZE,
    HEADER_SIZE,
    HEADER_WITH_HEC,
    PAYLOADS,
    SYNC,
    VERSION,
    Flags,
    MsgId,
    legal_length,
)

_KNOWN = frozenset(int(m) for m in MsgId)


class ReferenceDecoder:
    """Sequential decoder built on the construct declarations."""

    def __init__(self, partial_timeout_s: float = 0.5):
        self.partial_timeout_s = partial_timeout_s
        self._buf = b""
        self._base = 0
        self._last_rx_s: float | None = None
        self._c = Counts()

    def counters(self) -> DecoderCounters:
        return self._c.snapshot()

    def feed(self, data: bytes, now_s: float | None = None) -> list[Frame]:
        out: list[Frame] = []
        if now_s is not None:
            if self._buf and self._last_rx_s is not None:
                if now_s - self._last_rx_s > self.partial_timeout_s:
                    out += self._drain()
            self._last_rx_s = now_s
        self._c.bytes_in += len(data)
        self._buf += bytes(data)
        out += self._walk(at_eof=False)
        return out

    def flush(self) -> list[Frame]:
        return self._drain()

    def _drain(self) -> list[Frame]:
        out: list[Frame] = []
        while self._buf:
            if self._buf[:2] == SYNC:
                self._c.abandoned += 1
            self._drop(1)
            out += self._walk(at_eof=True)
        return out

    def _drop(self, k: int) -> None:
        self._c.discarded += k
        self._buf = self._buf[k:]
        self._base += k

    def _walk(self, at_eof: bool) -> list[Frame]:
        out: list[Frame] = []
        c = self._c
        while True:
            buf = self._buf
            i = buf.find(SYNC)
            if i < 0:
                keep = 1 if buf[-1:] == SYNC[:1] and not at_eof else 0
                self._drop(len(buf) - keep)
                return out
            self._drop(i)
            buf = self._buf
            if len(buf) < HEADER_SIZE:
                return out
            parsed = HEADER_WITH_HEC.parse(buf[:HEADER_SIZE])
            head = parsed.header.value
            if hec(parsed.header.data) != parsed.hec:
                c.hec += 1
            elif head.ver != VERSION:
                c.version += 1
            elif not legal_length(head.msg_id, head.length):
                c.illegal += 1
            else:
                end = HEADER_SIZE + head.length + CRC_SIZE
                if len(buf) < end:
                    return out
                if crc16(buf[:end]) != 0:
                    c.crc += 1
                else:
                    key = (head.flags & Flags.TO_DEVICE) << 8 | head.addr
                    c.track_seq(np.array([key]), np.array([head.seq]))
                    payload = buf[HEADER_SIZE : end - CRC_SIZE]
                    frame = self._typed(head, payload)
                    if frame is None:
                        c.unknown += 1
                        c.unknown_bytes += end
                    else:
                        c.frames[frame.msg_type] += 1
                        out.append(frame)
                    self._buf = buf[end:]
                    self._base += end
                    continue
            self._drop(1)

    @staticmethod
    def _typed(head, payload: bytes) -> Frame | None:
        if head.msg_id not in _KNOWN:
            return None
        value = PAYLOADS[MsgId(head.msg_id)].parse(payload)
        common = (head.addr, head.seq, head.flags)
        if head.msg_id == MsgId.SAMPLE:
            return SampleFrame(
                *common, value.t_us, value.pressure_pa, value.temperature_c, value.status
            )
        if head.msg_id == MsgId.IDENTITY:
            return IdentityFrame(
                *common,
                value.model,
                value.serial,
                value.firmware,
                value.range_min_pa,
                value.range_max_pa,
                value.rate_mhz,
            )
        if head.msg_id == MsgId.ACK:
            return AckFrame(*common, value.command_seq, value.opcode, ack_result(value.result))
        return CommandFrame(*common, value.opcode, bytes(value.args))
