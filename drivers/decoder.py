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
* ``_scan_bulk``: a vectorized numpy pass over a whole buffer (every SYNC
  candidate's header and CRC checked at once), for captures and backlogs.

``ReferenceDecoder`` walks the same rules with construct, one frame at a time:
slow, obviously correct, and the yardstick the tests compare both against.
"""

from __future__ import annotations

import binascii
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from drivers.crc import CRC8_TABLE, crc16, crc16_rows, hec, hec_rows
from drivers.encode import WIRE_SAMPLE_DTYPE
from drivers.frames import (
    SAMPLE_RECORD_DTYPE,
    AckFrame,
    CommandFrame,
    Frame,
    IdentityFrame,
    SampleFrame,
    ack_result,
    sample_records_to_frames,
)
from drivers.protocol import (
    CRC_SIZE,
    HEADER_SIZE,
    HEADER_WITH_HEC,
    MAX_PAYLOAD,
    PAYLOADS,
    SAMPLE_FRAME_SIZE,
    SAMPLE_LEN,
    SYNC,
    VERSION,
    Flags,
    MsgId,
    legal_length,
)

MAX_FRAME = HEADER_SIZE + MAX_PAYLOAD + CRC_SIZE
#: Buffers at least this long go through the vectorized scanner.
BULK_THRESHOLD_BYTES = 4096
#: The vectorized scanner works through long buffers in blocks of this size.
BULK_BLOCK_BYTES = 1 << 20

_SYNC0, _SYNC1 = SYNC[0], SYNC[1]
_HEADER_WORDS = struct.Struct(">HHHHB")  # VER|MSG_ID, ADDR|FLAGS, SEQ, LEN, HEC
_IDENTITY = struct.Struct(">16sIHffI6x")
_ACK = struct.Struct(">HBB")
_KNOWN = frozenset(int(m) for m in MsgId)
_SAMPLE_VER_MSG = VERSION << 8 | MsgId.SAMPLE
_TO_DEVICE = int(Flags.TO_DEVICE)


@dataclass(frozen=True, slots=True)
class DecoderCounters:
    """A snapshot of a decoder's counters (all counts since it was created)."""

    bytes_in: int = 0
    frames: dict[str, int] = field(default_factory=dict)
    bytes_discarded: int = 0
    hec_errors: int = 0
    crc_errors: int = 0
    illegal_lengths: int = 0
    unknown_versions: int = 0
    unknown_msg_types: int = 0
    abandoned_partials: int = 0
    seq_gaps: dict[int, int] = field(default_factory=dict)
    command_seq_gaps: dict[int, int] = field(default_factory=dict)

    @property
    def frames_total(self) -> int:
        return sum(self.frames.values())

    @property
    def errors_total(self) -> int:
        return (
            self.hec_errors
            + self.crc_errors
            + self.illegal_lengths
            + self.unknown_versions
            + self.abandoned_partials
        )

    def to_json_dict(self) -> dict:
        return {
            "bytes_in": self.bytes_in,
            "frames": dict(self.frames),
            "bytes_discarded": self.bytes_discarded,
            "hec_errors": self.hec_errors,
            "crc_errors": self.crc_errors,
            "illegal_lengths": self.illegal_lengths,
            "unknown_versions": self.unknown_versions,
            "unknown_msg_types": self.unknown_msg_types,
            "abandoned_partials": self.abandoned_partials,
            "seq_gaps": {str(k): v for k, v in sorted(self.seq_gaps.items())},
            "command_seq_gaps": {str(k): v for k, v in sorted(self.command_seq_gaps.items())},
        }


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


_EMPTY_SAMPLES = np.empty(0, dtype=SAMPLE_RECORD_DTYPE)


class _Counts:
    """Mutable counters shared by the scanners."""

    __slots__ = (
        "bytes_in",
        "frames",
        "discarded",
        "hec",
        "crc",
        "illegal",
        "version",
        "unknown",
        "abandoned",
        "last_seq",
        "gaps",
    )

    def __init__(self) -> None:
        self.bytes_in = 0
        self.frames = dict.fromkeys((m.name for m in MsgId), 0)
        self.discarded = 0
        self.hec = 0
        self.crc = 0
        self.illegal = 0
        self.version = 0
        self.unknown = 0
        self.abandoned = 0
        # Sequence tracking keyed by direction * 256 + address.
        self.last_seq = [-1] * 512
        self.gaps = [0] * 512

    def snapshot(self) -> DecoderCounters:
        nz = [k for k, g in enumerate(self.gaps) if g]
        return DecoderCounters(
            bytes_in=self.bytes_in,
            frames=dict(self.frames),
            bytes_discarded=self.discarded,
            hec_errors=self.hec,
            crc_errors=self.crc,
            illegal_lengths=self.illegal,
            unknown_versions=self.version,
            unknown_msg_types=self.unknown,
            abandoned_partials=self.abandoned,
            seq_gaps={k: self.gaps[k] for k in nz if k < 256},
            command_seq_gaps={k - 256: self.gaps[k] for k in nz if k >= 256},
        )

    def track_seq(self, keys: np.ndarray, seqs: np.ndarray) -> None:
        """Count sequence gaps of accepted frames in stream order (65535 -> 0 is no gap).

        ``keys`` are direction * 256 + address; one radix sort groups them.
        """
        if len(keys) == 0:
            return
        order = np.argsort(keys.astype(np.uint16), kind="stable")
        k = keys[order]
        q = seqs[order].astype(np.int64)
        same = k[1:] == k[:-1]
        bad = same & (((q[1:] - q[:-1]) & 0xFFFF) != 1)
        within = np.bincount(k[1:][bad], minlength=512) if bad.any() else None
        firsts = np.flatnonzero(np.concatenate(([True], ~same)))
        lasts = np.concatenate((firsts[1:] - 1, [len(k) - 1]))
        for key, first, last in zip(
            k[firsts].tolist(), q[firsts].tolist(), q[lasts].tolist(), strict=True
        ):
            prev = self.last_seq[key]
            if prev >= 0 and (first - prev) & 0xFFFF != 1:
                self.gaps[key] += 1
            if within is not None:
                self.gaps[key] += int(within[key])
            self.last_seq[key] = last


def _hec_position_tables() -> list[list[int]]:
    tables = []
    for pos in range(HEADER_SIZE - 1):
        row = []
        for b in range(256):
            crc = 0
            for byte in (b, *([0] * (HEADER_SIZE - 2 - pos))):
                crc = int(CRC8_TABLE[crc ^ byte])
            row.append(crc)
        tables.append(row)
    return tables


def _hec_word_table(hp: list[list[int]], pos: int, const: int = 0) -> list[int]:
    hi, lo = hp[pos], hp[pos + 1]
    return [hi[w >> 8] ^ lo[w & 0xFF] ^ const for w in range(65536)]


_HP = _hec_position_tables()
# HEC of header bytes 2-9 as four big-endian words; SYNC and the final XOR are
# folded into the first table.
_HEC_VER_MSG = _hec_word_table(_HP, 2, _HP[0][_SYNC0] ^ _HP[1][_SYNC1] ^ 0x55)
_HEC_ADDR_FLAGS = _hec_word_table(_HP, 4)
_HEC_SEQ = _hec_word_table(_HP, 6)
_HEC_LEN = _hec_word_table(_HP, 8)
del _HP


def _required_lengths() -> np.ndarray:
    """LEN each MSG_ID requires: a fixed size, or -1 for 'any legal size'."""
    req = np.full(256, -1, dtype=np.int64)
    for msg in (MsgId.SAMPLE, MsgId.IDENTITY, MsgId.ACK):
        req[msg] = PAYLOADS[msg].sizeof()
    return req


_REQUIRED_LEN = _required_lengths()


def _legal_length_vec(msg: np.ndarray, length: np.ndarray) -> np.ndarray:
    """``legal_length`` for arrays of MSG_ID and LEN."""
    req = _REQUIRED_LEN[msg]
    ok = (length <= MAX_PAYLOAD) & ((req < 0) | (length == req))
    ok &= (msg != MsgId.COMMAND) | (length >= 1)
    return ok


def _sample_records(buf: bytes, starts: list[int], base: int) -> np.ndarray:
    """SAMPLE records for the accepted frames starting at ``starts`` in ``buf``."""
    k = len(starts)
    first = starts[0]
    if starts[-1] - first == (k - 1) * SAMPLE_FRAME_SIZE:  # back to back: no copy
        wire = np.frombuffer(buf, dtype=WIRE_SAMPLE_DTYPE, count=k, offset=first)
    else:
        mv = memoryview(buf)
        joined = b"".join([mv[s : s + SAMPLE_FRAME_SIZE] for s in starts])
        wire = np.frombuffer(joined, dtype=WIRE_SAMPLE_DTYPE)
    return _wire_to_records(wire, np.array(starts, dtype=np.int64) + base)


def _wire_to_records(wire: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    recs = np.empty(len(wire), dtype=SAMPLE_RECORD_DTYPE)
    recs["offset"] = offsets
    for name in _RECORD_FIELDS:
        recs[name] = wire[name]
    return recs


_RECORD_FIELDS = ("addr", "flags", "seq", "status", "t_us", "pressure_pa", "temperature_c")


def _covered(pos: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Which positions lie inside one of the sorted, disjoint ``[starts, ends)`` spans."""
    if len(starts) == 0:
        return np.zeros(len(pos), dtype=bool)
    j = np.searchsorted(starts, pos, side="right") - 1
    return (j >= 0) & (ends[np.maximum(j, 0)] > pos)


def _parse_other(msg: int, addr: int, seq: int, flags: int, payload: bytes) -> Frame:
    """A typed non-SAMPLE frame from a checked payload."""
    if msg == MsgId.IDENTITY:
        model, serial, firmware, rmin, rmax, rate = _IDENTITY.unpack(payload)
        name = model.rstrip(b"\0").decode("ascii", errors="replace")
        return IdentityFrame(addr, seq, flags, name, serial, firmware, rmin, rmax, rate)
    if msg == MsgId.ACK:
        cseq, opcode, result = _ACK.unpack(payload)
        return AckFrame(addr, seq, flags, cseq, opcode, ack_result(result))
    return CommandFrame(addr, seq, flags, payload[0], bytes(payload[1:]))


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
        self._c = _Counts()

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
            while True:
                end = consumed + BULK_BLOCK_BYTES
                last = end >= len(buf)
                block = buf[consumed:] if last else buf[consumed : end + MAX_FRAME]
                used = self._scan_bulk(block, out)
                consumed += used
                if last or used == 0:
                    break
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
        unpack_header = _HEADER_WORDS.unpack_from
        crc_hqx = binascii.crc_hqx
        mv = memoryview(buf)
        last_seq = c.last_seq
        gaps = c.gaps
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
            expected_hec = _HEC_VER_MSG[ver_msg] ^ _HEC_ADDR_FLAGS[addr_flags]
            if expected_hec ^ _HEC_SEQ[seq] ^ _HEC_LEN[length] != hec_byte:
                c.hec += 1
            elif ver_msg >> 8 != VERSION:
                c.version += 1
            elif not (ver_msg == _SAMPLE_VER_MSG and length == SAMPLE_LEN) and not legal_length(
                ver_msg & 0xFF, length
            ):
                c.illegal += 1
            else:
                end = cand + HEADER_SIZE + length + CRC_SIZE
                if end > n:
                    break
                if crc_hqx(mv[cand:end], 0xFFFF) != 0:
                    c.crc += 1
                else:
                    pos = end
                    key = (addr_flags & _TO_DEVICE) << 8 | addr_flags >> 8
                    last = last_seq[key]
                    if last >= 0 and (seq - last) & 0xFFFF != 1:
                        gaps[key] += 1
                    last_seq[key] = seq
                    if ver_msg == _SAMPLE_VER_MSG:
                        starts.append(cand)
                        continue
                    msg = ver_msg & 0xFF
                    if msg in _KNOWN:
                        payload = bytes(mv[cand + HEADER_SIZE : end - CRC_SIZE])
                        frame = _parse_other(msg, addr_flags >> 8, seq, addr_flags & 0xFF, payload)
                        frames_out.append((base + cand, frame))
                        c.frames[MsgId(msg).name] += 1
                    else:
                        c.unknown += 1
                    continue
            # Any failure: drop one byte, rescan.
            c.discarded += 1
            pos = cand + 1
        if starts:
            out[0].append(_sample_records(buf, starts, base))
            c.frames["SAMPLE"] += len(starts)
        return pos

    # The vectorized scanner ---------------------------------------------
    def _scan_bulk(self, buf: bytes, out: list) -> int:
        """Check every SYNC candidate of ``buf`` at once; returns bytes consumed."""
        c = self._c
        n = len(buf)
        a = np.frombuffer(buf, dtype=np.uint8)
        if n < 2:
            keep = 1 if n == 1 and a[0] == _SYNC0 else 0
            c.discarded += n - keep
            return n - keep
        cand = np.flatnonzero(a[:-1] == _SYNC0)
        cand = cand[a[cand + 1] == _SYNC1]
        # Header fields of every candidate with a whole header.
        full = cand[cand + HEADER_SIZE <= n]
        hdr = sliding_window_view(a, HEADER_SIZE)[full] if len(full) else np.empty((0, 11), "u1")
        ver = hdr[:, 2]
        msg = hdr[:, 3]
        length = hdr[:, 8].astype(np.int64) << 8 | hdr[:, 9]
        hec_ok = hec_rows(hdr[:, :10]) == hdr[:, 10]
        ver_ok = ver == VERSION
        len_ok = _legal_length_vec(msg, length)
        head_ok = hec_ok & ver_ok & len_ok
        total = HEADER_SIZE + length + CRC_SIZE
        complete = full + total <= n
        check = head_ok & complete
        crc_ok = np.zeros(len(full), dtype=bool)
        is_sample_len = check & (total == SAMPLE_FRAME_SIZE)
        idx = np.flatnonzero(is_sample_len)
        frames35 = None
        if len(idx):
            frames35 = sliding_window_view(a, SAMPLE_FRAME_SIZE)[full[idx]]
            crc_ok[idx] = crc16_rows(frames35) == 0
        mv = memoryview(buf)
        for i in np.flatnonzero(check & ~is_sample_len).tolist():
            s = int(full[i])
            crc_ok[i] = binascii.crc_hqx(mv[s : s + int(total[i])], 0xFFFF) == 0
        valid = check & crc_ok
        # Greedy walk: accept valid frames left to right, skipping those that
        # start inside an already accepted one (the sequential rule).
        vpos = full[valid]
        vend = vpos + total[valid]
        vsel = np.flatnonzero(valid)
        if len(vpos) > 1 and np.any(vpos[1:] < vend[:-1]):
            keep = []
            last_end = -1
            for k, (s, e) in enumerate(zip(vpos.tolist(), vend.tolist(), strict=True)):
                if s >= last_end:
                    keep.append(k)
                    last_end = e
            vsel, vpos, vend = vsel[keep], vpos[keep], vend[keep]
        # Where the walk stops: the first candidate still waiting for bytes
        # that no accepted frame covers.
        waiting = np.concatenate((cand[cand + HEADER_SIZE > n], full[head_ok & ~complete]))
        stop = n
        if len(waiting):
            waiting.sort()
            free = waiting[~_covered(waiting, vpos, vend)]
            if len(free):
                stop = int(free[0])
        if stop == n and a[n - 1] == _SYNC0:
            if not _covered(np.array([n - 1]), vpos, vend)[0]:
                stop = n - 1
        before = vpos < stop
        vsel, vpos, vend = vsel[before], vpos[before], vend[before]
        # Failed candidates the walk visits: before the stop, not covered.
        judged = ~(head_ok & ~complete)  # not waiting for more bytes
        failed = np.flatnonzero(~valid & (full < stop) & judged)
        if len(failed):
            failed = failed[~_covered(full[failed], vpos, vend)]
            hec_bad = ~hec_ok[failed]
            ver_bad = ~hec_bad & ~ver_ok[failed]
            len_bad = ~hec_bad & ~ver_bad & ~len_ok[failed]
            c.hec += int(np.count_nonzero(hec_bad))
            c.version += int(np.count_nonzero(ver_bad))
            c.illegal += int(np.count_nonzero(len_bad))
            c.crc += int(np.count_nonzero(~hec_bad & ~ver_bad & ~len_bad))
        c.discarded += stop - int((vend - vpos).sum())
        # Accepted frames.
        vmsg = msg[vsel]
        vflags = hdr[vsel, 5]
        vaddr = hdr[vsel, 4]
        vseq = hdr[vsel, 6].astype(np.int64) << 8 | hdr[vsel, 7]
        c.track_seq((vflags & _TO_DEVICE).astype(np.int64) << 8 | vaddr, vseq)
        smask = vmsg == MsgId.SAMPLE
        n_samples = int(np.count_nonzero(smask))
        if n_samples:
            # Accepted SAMPLEs are a subset of the rows already gathered for the CRC.
            chosen = vsel[smask]
            if len(chosen) < len(idx):
                frames35 = frames35[np.searchsorted(idx, chosen)]
            wire = frames35.view(WIRE_SAMPLE_DTYPE).ravel()
            out[0].append(_wire_to_records(wire, vpos[smask] + self._base))
            c.frames["SAMPLE"] += n_samples
        for k in np.flatnonzero(~smask).tolist():
            m = int(vmsg[k])
            if m in _KNOWN:
                s, e = int(vpos[k]), int(vend[k])
                frame = _parse_other(
                    m, int(vaddr[k]), int(vseq[k]), int(vflags[k]), bytes(mv[s + 11 : e - 2])
                )
                out[1].append((self._base + s, frame))
                c.frames[MsgId(m).name] += 1
            else:
                c.unknown += 1
        return stop


class ReferenceDecoder:
    """The receive rules walked one frame at a time with construct.

    Same interface and results as ``StreamDecoder``, about a hundred times
    slower; used to cross-check the fast paths.
    """

    def __init__(self, partial_timeout_s: float = 0.5):
        self.partial_timeout_s = partial_timeout_s
        self._buf = b""
        self._base = 0
        self._last_rx_s: float | None = None
        self._c = _Counts()

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
