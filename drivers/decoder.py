"""Resynchronising stream decoder: bytes in chunks of any size -> typed frames.

Receive rules (../shared/PROTOCOL.md): a candidate frame starts at SYNC; it is
accepted only if its HEC, VER, a LEN legal for its MSG_ID and its CRC hold.  On
any failure exactly one byte is dropped and the scan resumes, so a good frame
after garbage is delayed, never lost.  A partial frame that gets no more bytes
for longer than ``partial_timeout_s`` is abandoned the same way.  A well-formed
frame of an unknown MSG_ID is skipped whole and counted.  The decoder never
raises on any input.

Checks run in the order SYNC, HEC, VER, LEN, CRC: the HEC is checked before VER
so that a random ``EB 90`` in garbage counts as a HEC error, and "unknown
version" means a header that is intact but of another protocol version.

Two scanners give identical results (a test proves it on random streams):

* ``_scan_small``: a sequential walk with precompiled ``struct`` formats and
  ``binascii.crc_hqx``, for the few-frame chunks a live link delivers;
* ``drivers.bulkscan.scan_bulk``: a vectorized numpy pass over a whole buffer
  (every SYNC candidate's header and CRC checked at once), for captures and
  backlogs.

``drivers.reference.ReferenceDecoder`` walks the same rules with construct,
one frame at a time: slow, obviously correct, and the yardstick the tests
compare both against.
"""

from __future__ import annotations

import binascii
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from drivers.bulkscan import SampleSink, scan_bulk
from drivers.counters import Counts, DecoderCounters
from drivers.frames import SAMPLE_RECORD_DTYPE, Frame, sample_records_to_frames
from drivers.protocol import (
    CRC_SIZE,
    HEADER_SIZE,
    MAX_PAYLOAD,
    SAMPLE_FRAME_SIZE,
    SAMPLE_LEN,
    SYNC,
    VERSION,
    Flags,
    MsgId,
    legal_length,
)
from drivers.wire import (
    HEADER_WORDS,
    HEC_ADDR_FLAGS,
    HEC_LEN,
    HEC_SAMPLE_CONST,
    HEC_SEQ,
    HEC_VER_MSG,
    KNOWN_MSG_IDS,
    SAMPLE_VER_MSG,
    parse_other,
    sample_records,
)

__all__ = ["DecodeBatch", "DecoderCounters", "StreamDecoder"]

MAX_FRAME = HEADER_SIZE + MAX_PAYLOAD + CRC_SIZE
#: Buffers at least this long go through the vectorized scanner.
BULK_THRESHOLD_BYTES = 4096
#: The vectorized scanner works through long buffers in blocks of this size.
BULK_BLOCK_BYTES = 1 << 20

_SYNC0 = SYNC[0]
_TO_DEVICE = int(Flags.TO_DEVICE)
_EMPTY_SAMPLES = np.empty(0, dtype=SAMPLE_RECORD_DTYPE)
#: Sequence-counter key (direction * 256 + address) by the ADDR|FLAGS word.
_SEQ_KEY = [(w & _TO_DEVICE) << 8 | w >> 8 for w in range(65536)]


@dataclass(slots=True)
class DecodeBatch:
    """What one ``feed`` produced: SAMPLEs in bulk, other frames typed, both in stream order.

    ``samples`` is an array of ``SAMPLE_RECORD_DTYPE``; ``frames`` holds
    ``(offset, frame)`` pairs of every accepted non-SAMPLE frame.
    """

    samples: np.ndarray
    frames: list[tuple[int, Frame]]

    def __len__(self) -> int:
        return len(self.samples) + len(self.frames)

    def iter_frames(self) -> Iterator[Frame]:
        """Every accepted frame, SAMPLEs as ``SampleFrame``, in stream order."""
        samples = sample_records_to_frames(self.samples)
        if not self.frames:
            yield from samples
            return
        offsets = self.samples["offset"].tolist()
        i = 0
        for offset, frame in self.frames:
            while i < len(samples) and offsets[i] < offset:
                yield samples[i]
                i += 1
            yield frame
        yield from samples[i:]


class StreamDecoder:
    """Turns a link's byte stream into frames; keeps counters; never raises.

    ``feed`` takes chunks of any size (1 byte to many MB).  Pass the receive
    time ``now_s`` (any monotonic clock, seconds) to enable the partial-frame
    timeout; ``poll(now_s)`` applies it when no bytes come; ``flush()`` ends
    the stream (a capture's end), abandoning whatever partial frame is left.
    """

    def __init__(self, partial_timeout_s: float = 0.5, *, bulk: bool | None = None):
        self.partial_timeout_s = partial_timeout_s
        self._bulk = bulk  # None: choose by buffer size; True/False: force (tests)
        self._pending = b""
        self._base = 0  # stream offset of _pending[0]
        self._last_rx_s: float | None = None
        self._c = Counts()

    # -- public ----------------------------------------------------------
    def counters(self) -> DecoderCounters:
        return self._c.snapshot()

    @property
    def pending_bytes(self) -> int:
        return len(self._pending)

    def feed(self, data: bytes | bytearray | memoryview, now_s: float | None = None) -> DecodeBatch:
        """Decode ``data`` received at ``now_s``; returns the frames it completed."""
        out: list = [[], []]
        if now_s is not None:
            self._expire(now_s, out)
            self._last_rx_s = now_s
        data = bytes(data)
        self._c.bytes_in += len(data)
        buf = self._pending + data if self._pending else data
        self._scan(buf, out)
        return self._batch(out)

    def poll(self, now_s: float) -> DecodeBatch:
        """Abandon a partial frame that has had no bytes for longer than the timeout."""
        out: list = [[], []]
        self._expire(now_s, out)
        return self._batch(out)

    def flush(self) -> DecodeBatch:
        """End of stream: abandon partial frames until nothing is pending."""
        out: list = [[], []]
        while self._pending:
            self._abandon(out)
        return self._batch(out)

    # -- internals -------------------------------------------------------
    def _batch(self, out: list) -> DecodeBatch:
        samples, frames = out
        if not samples:
            recs = _EMPTY_SAMPLES
        elif len(samples) == 1:
            recs = samples[0]
        else:
            recs = np.concatenate(samples)
        return DecodeBatch(recs, frames)

    def _expire(self, now_s: float, out: list) -> None:
        if self._pending and self._last_rx_s is not None:
            if now_s - self._last_rx_s > self.partial_timeout_s:
                while self._pending:
                    self._abandon(out)

    def _abandon(self, out: list) -> None:
        """Give up on the pending candidate: drop one byte and rescan the rest."""
        pending = self._pending
        if pending[:2] == SYNC and len(pending) >= 2:
            self._c.abandoned += 1
        self._c.discarded += 1
        self._base += 1
        self._pending = b""
        self._scan(pending[1:], out, at_eof=True)

    def _scan(self, buf: bytes, out: list, at_eof: bool = False) -> None:
        bulk = self._bulk if self._bulk is not None else len(buf) >= BULK_THRESHOLD_BYTES
        if not bulk:
            consumed = self._scan_small(buf, out)
        else:
            consumed = 0
            mv = memoryview(buf)
            sink = SampleSink(len(buf) // SAMPLE_FRAME_SIZE + 1)
            while True:
                end = consumed + BULK_BLOCK_BYTES
                last = end >= len(buf)
                block = mv[consumed:] if last else mv[consumed : end + MAX_FRAME]
                used = scan_bulk(block, self._base + consumed, self._c, out[1], sink)
                consumed += used
                if last or used == 0:
                    break
            if len(sink.result()):
                out[0].append(sink.result())
        self._base += consumed
        self._pending = buf[consumed:]
        if at_eof and self._pending and self._pending[:2] != SYNC:
            # A lone trailing SYNC byte with nothing more to come.
            self._c.discarded += len(self._pending)
            self._base += len(self._pending)
            self._pending = b""

    # The sequential scanner ---------------------------------------------
    def _scan_small(self, buf: bytes, out: list) -> int:
        """Walk ``buf`` frame by frame; returns the number of bytes consumed."""
        c = self._c
        n = len(buf)
        pos = 0
        base = self._base
        find = buf.find
        unpack_header = HEADER_WORDS.unpack_from
        crc_hqx = binascii.crc_hqx
        mv = memoryview(buf)
        last_seq = c.last_seq
        gaps = c.gaps
        seq_key = _SEQ_KEY
        starts: list[int] = []
        frames_out = out[1]
        while True:
            cand = find(SYNC, pos)
            if cand < 0:
                keep = 1 if n > pos and buf[n - 1] == _SYNC0 else 0
                c.discarded += n - keep - pos
                pos = n - keep
                break
            c.discarded += cand - pos
            pos = cand
            if cand + HEADER_SIZE > n:
                break
            ver_msg, addr_flags, seq, length, hec_byte = unpack_header(buf, cand + 2)
            if ver_msg == SAMPLE_VER_MSG and length == SAMPLE_LEN:
                # The common case, with the SAMPLE-constant part of the HEC folded in.
                header_ok = HEC_SAMPLE_CONST ^ HEC_ADDR_FLAGS[addr_flags] ^ HEC_SEQ[seq] == hec_byte
                if not header_ok:
                    c.hec += 1
            elif (
                HEC_VER_MSG[ver_msg] ^ HEC_ADDR_FLAGS[addr_flags] ^ HEC_SEQ[seq] ^ HEC_LEN[length]
                != hec_byte
            ):
                c.hec += 1
                header_ok = False
            elif ver_msg >> 8 != VERSION:
                c.version += 1
                header_ok = False
            elif not legal_length(ver_msg & 0xFF, length):
                c.illegal += 1
                header_ok = False
            else:
                header_ok = True
            if header_ok:
                end = cand + HEADER_SIZE + length + CRC_SIZE
                if end > n:
                    break
                if crc_hqx(mv[cand:end], 0xFFFF) != 0:
                    c.crc += 1
                else:
                    pos = end
                    key = seq_key[addr_flags]
                    last = last_seq[key]
                    if last >= 0 and (seq - last) & 0xFFFF != 1:
                        gaps[key] += 1
                    last_seq[key] = seq
                    if ver_msg == SAMPLE_VER_MSG:
                        starts.append(cand)
                        continue
                    msg = ver_msg & 0xFF
                    if msg in KNOWN_MSG_IDS:
                        payload = bytes(mv[cand + HEADER_SIZE : end - CRC_SIZE])
                        frame = parse_other(msg, addr_flags >> 8, seq, addr_flags & 0xFF, payload)
                        frames_out.append((base + cand, frame))
                        c.frames[MsgId(msg).name] += 1
                    else:
                        c.unknown += 1
                        c.unknown_bytes += end - cand
                    continue
            # Any failure: drop one byte, rescan.
            c.discarded += 1
            pos = cand + 1
        if starts:
            out[0].append(sample_records(buf, starts, base))
            c.frames["SAMPLE"] += len(starts)
        return pos
