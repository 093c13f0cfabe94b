"""Faults of a link's device-to-host byte stream: flipped bits, dropped bytes,
inserted garbage, disconnects.

A fault with ``end == start`` happens once, at the first frame at or after
``start``: ``bitflip`` flips ``count`` bits in that frame, ``drop`` removes
``length`` bytes from it, ``garbage`` inserts ``length`` random bytes into it.
With ``end > start`` it happens at a rate over the window: ``bitflip`` flips each
bit with probability ``rate`` (a bit error rate), ``drop`` drops each byte with
probability ``rate``, ``garbage`` inserts bursts of ``length`` bytes ``per_hour``
times an hour (Poisson).  ``disconnect`` takes the link down from ``start`` for
``duration`` seconds: nothing reaches the host, and the endpoints close the port
and open it again.  Garbage contains a false SYNC (EB 90 01) half of the time.

Every fault draws from its own generator, and rates are counted in bytes of the
stream (gaps drawn from the geometric law), so the result does not depend on
how time is cut into blocks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from hil.scenario import LinkFault

FALSE_SYNC = np.frombuffer(b"\xeb\x90\x01", dtype=np.uint8)


@dataclass(frozen=True)
class LinkEvent:
    """A link going down (``up=False``) or coming back (``up=True``) at ``t_s``."""

    t_s: float
    link: str
    up: bool


@dataclass
class LinkCounters:
    flipped_bits: int = 0
    dropped_bytes: int = 0
    inserted_bytes: int = 0
    lost_frames: int = 0  # sent while the link was down
    events: list = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            k: getattr(self, k)
            for k in ("flipped_bits", "dropped_bytes", "inserted_bytes", "lost_frames")
        }


class _FaultState:
    def __init__(self, fault: LinkFault, rng: np.random.Generator):
        self.f = fault
        self.rng = rng
        self.done = False  # one-shot applied
        self.gap: int | None = None  # units (bits or bytes) to the next rate event
        self.next_t = fault.start_s + (
            rng.exponential(3600.0 / fault.per_hour) if fault.per_hour > 0 else math.inf
        )

    @property
    def one_shot(self) -> bool:
        return self.f.end_s <= self.f.start_s


class LinkFaultInjector:
    """Applies one link's faults to the bytes of each block."""

    def __init__(self, link: str, faults: list[LinkFault], seed_seq: np.random.SeedSequence):
        self.link = link
        faults = [f for f in faults if f.link == link]
        seeds = seed_seq.spawn(max(len(faults), 1))
        self.states = [
            _FaultState(f, np.random.Generator(np.random.PCG64(s)))
            for f, s in zip(faults, seeds, strict=False)
        ]
        self.down_windows = [
            (f.start_s, f.start_s + f.duration_s) for f in faults if f.kind == "disconnect"
        ]
        self.counters = LinkCounters()

    def events(self) -> list[LinkEvent]:
        out = []
        for a, b in self.down_windows:
            out += [LinkEvent(a, self.link, False), LinkEvent(b, self.link, True)]
        return sorted(out, key=lambda e: (e.t_s, e.up))

    def is_up(self, t_s: float) -> bool:
        return not any(a <= t_s < b for a, b in self.down_windows)

    def active(self, t_s: float) -> list[str]:
        out = []
        for st in self.states:
            f = st.f
            end = (
                f.start_s + f.duration_s if f.kind == "disconnect" else max(f.end_s, f.start_s + 1)
            )
            if f.start_s <= t_s < end:
                out.append(f.kind)
        return out

    def apply(self, data: bytes, frame_off: np.ndarray, frame_t: np.ndarray) -> bytes:
        """The block's bytes after the faults; ``frame_off``/``frame_t``: each frame's
        byte offset and simulated time, in stream order."""
        if not self.states or not data:
            return data
        n = len(data)
        frame_off = np.asarray(frame_off, dtype=np.int64)
        frame_t = np.asarray(frame_t, dtype=np.float64)
        frame_end = np.append(frame_off[1:], n)
        if self.down_windows:
            up = np.ones(len(frame_t), dtype=bool)
            for a, b in self.down_windows:
                up &= ~((frame_t >= a) & (frame_t < b))
            if not up.all():
                self.counters.lost_frames += int((~up).sum())
                keep_b = np.repeat(up, frame_end - frame_off)
                arr = np.frombuffer(data, dtype=np.uint8)[keep_b]
                lens = (frame_end - frame_off)[up]
                frame_t = frame_t[up]
                frame_off = np.concatenate(([0], np.cumsum(lens)[:-1])).astype(np.int64)
                frame_end = frame_off + lens
                data = arr.tobytes()
                n = len(data)
                if not n:
                    return data
        a = np.frombuffer(data, dtype=np.uint8).copy()
        keep = np.ones(n, dtype=bool)
        inserts: list[tuple[int, np.ndarray]] = []
        for st in self.states:
            f = st.f
            if f.kind == "disconnect":
                continue
            if st.one_shot:
                if st.done:
                    continue
                i = int(np.searchsorted(frame_t, f.start_s, side="left"))
                if i >= len(frame_t):
                    continue
                st.done = True
                lo, hi = int(frame_off[i]), int(frame_end[i])
                if f.kind == "bitflip":
                    span_hi = min(n, lo + (hi - lo) * f.count)
                    bits = st.rng.integers(lo * 8, span_hi * 8, f.count)
                    self._flip(a, bits)
                elif f.kind == "drop":
                    start = lo + int(st.rng.integers(0, hi - lo))
                    stop = min(n, start + f.length)
                    keep[start:stop] = False
                    self.counters.dropped_bytes += stop - start
                else:
                    pos = lo + int(st.rng.integers(0, hi - lo))
                    inserts.append((pos, self._garbage(st.rng, f.length)))
                continue
            # rate faults: the bytes of frames inside the window
            m = (frame_t >= f.start_s) & (frame_t < f.end_s)
            if not m.any():
                continue
            if f.kind == "garbage":
                while st.next_t < f.end_s:
                    i = int(np.searchsorted(frame_t, st.next_t, side="left"))
                    if i >= len(frame_t):
                        break
                    pos = int(frame_off[i]) + int(st.rng.integers(0, frame_end[i] - frame_off[i]))
                    inserts.append((pos, self._garbage(st.rng, f.length)))
                    st.next_t += st.rng.exponential(3600.0 / f.per_hour)
                continue
            if f.rate <= 0:
                continue
            elig = np.flatnonzero(np.repeat(m, frame_end - frame_off))  # byte indexes
            unit = 8 if f.kind == "bitflip" else 1
            total = len(elig) * unit
            if st.gap is None:
                st.gap = int(st.rng.geometric(f.rate)) - 1
            pos_list = []
            used = 0
            while used + st.gap < total:
                used += st.gap
                pos_list.append(used)
                used += 1
                st.gap = int(st.rng.geometric(f.rate)) - 1
            st.gap -= total - used
            if not pos_list:
                continue
            pos_arr = np.array(pos_list, dtype=np.int64)
            if unit == 8:
                self._flip(a, elig[pos_arr // 8] * 8 + pos_arr % 8)
            else:
                keep[elig[pos_arr]] = False
                self.counters.dropped_bytes += len(pos_arr)
        if not inserts and keep.all():
            return a.tobytes()
        inserts.sort(key=lambda x: x[0])
        pieces = []
        prev = 0
        for pos, g in inserts:
            pieces.append(a[prev:pos][keep[prev:pos]])
            pieces.append(g)
            self.counters.inserted_bytes += len(g)
            prev = pos
        pieces.append(a[prev:][keep[prev:]])
        return np.concatenate(pieces).tobytes()

    def _flip(self, a: np.ndarray, bits: np.ndarray) -> None:
        for b in np.asarray(bits, dtype=np.int64).tolist():
            a[b >> 3] ^= 1 << (b & 7)
            self.counters.flipped_bits += 1

    @staticmethod
    def _garbage(rng: np.random.Generator, length: int) -> np.ndarray:
        g = rng.integers(0, 256, length, dtype=np.uint8)
        if length >= 3 and rng.random() < 0.5:
            at = int(rng.integers(0, length - 2))
            g[at : at + 3] = FALSE_SYNC
        return g
