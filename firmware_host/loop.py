"""The fixed-rate executive and the batch runner over recorded data.

``RateLoop(core, clock, rate_hz, source)`` ticks the core at absolute deadlines
``start + k / rate_hz`` (no drift, however long it runs): at each deadline it
sleeps until the clock reaches it, asks the source for the samples that arrived
since the last tick, ingests them as one batch per link and calls
``core.tick(t_k)`` with the scheduled time ``t_k``.  A tick that ends after the
next deadline skips the missed deadlines (each one an overrun, a cycle slip)
instead of bunching ticks.  The loop measures itself (``LoopHealth``).

Because the core sees only the scheduled tick times and the records the source
releases by then, a recorded capture replayed on a ``SimClock`` (as fast as the
machine allows) gives the same results as a live run, tick for tick.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from common.bounds import TEN_YEARS_S
from drivers.frames import SAMPLE_RECORD_DTYPE
from firmware_host.clock import Clock, SimClock
from firmware_host.core import MonitorCore, TickResult

NS = 1_000_000_000
#: Ticks whose lateness the percentiles are taken over (1000 s at 10 Hz).
HEALTH_WINDOW = 10_000


@dataclass(frozen=True)
class SampleBatch:
    """SAMPLE records (``SAMPLE_RECORD_DTYPE``) of one link that arrived by ``host_time_s``."""

    link: str
    records: np.ndarray
    host_time_s: float


class SampleSource(Protocol):
    """Returns the batches that arrived since the previous call; ``now_s`` is the tick time."""

    def __call__(self, now_s: float) -> Sequence[SampleBatch]: ...


@dataclass(frozen=True)
class LoopHealth:
    """The executive's own telemetry.  Times in s.

    ``lateness_*``: how late the loop woke after each deadline (percentiles over
    the last ``HEALTH_WINDOW`` ticks, the maximum over the loop's life);
    ``worst_tick_s`` the longest time spent in one tick (poll + ingest + core);
    ``overruns`` deadlines skipped because a tick ran past them (cycle slips).
    """

    period_s: float
    ticks: int
    overruns: int
    lateness_p50_s: float
    lateness_p90_s: float
    lateness_p99_s: float
    lateness_max_s: float
    worst_tick_s: float
    mean_tick_s: float
    samples: int
    samples_per_tick_mean: float
    samples_per_tick_max: int

    def to_json_dict(self) -> dict:
        return {k: (round(v, 9) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


class RecordedSource:
    """Records with known arrival times (s), per link, released as the tick time passes them.

    ``streams`` maps a link to ``(records, arrival_s)`` sorted by arrival.
    """

    def __init__(self, streams: dict[str, tuple[np.ndarray, np.ndarray]]):
        self.streams = {k: (r, np.asarray(a, dtype=float)) for k, (r, a) in streams.items()}
        self._pos = dict.fromkeys(self.streams, 0)
        # each link's next arrival time (inf when exhausted): a tick before it
        # releases nothing and needs no search (most ticks of a slow sensor)
        self._next = {k: _arrival_at(a, 0) for k, (_, a) in self.streams.items()}

    @property
    def start_s(self) -> float:
        firsts = [a[0] for _, a in self.streams.values() if len(a)]
        return min(firsts) if firsts else 0.0

    @property
    def end_s(self) -> float:
        lasts = [a[-1] for _, a in self.streams.values() if len(a)]
        return max(lasts) if lasts else 0.0

    @property
    def exhausted(self) -> bool:
        return all(self._pos[k] >= len(a) for k, (_, a) in self.streams.items())

    def __call__(self, now_s: float) -> list[SampleBatch]:
        out = []
        for link, nxt in self._next.items():
            if not nxt <= now_s:
                continue
            recs, arr = self.streams[link]
            i = self._pos[link]
            j = int(arr.searchsorted(now_s, side="right"))
            if j > i:
                out.append(SampleBatch(link, recs[i:j], now_s))
                self._pos[link] = j
                self._next[link] = _arrival_at(arr, j)
        return out


def _arrival_at(arr: np.ndarray, i: int) -> float:
    return float(arr[i]) if i < len(arr) else math.inf


class RateLoop:
    """Fixed-rate executive over ``core``; see module docstring.

    ``on_tick(result)`` is called after every tick (outputs, displays).
    """

    def __init__(
        self,
        core: MonitorCore,
        clock: Clock,
        rate_hz: float,
        source: SampleSource,
        on_tick: Callable[[TickResult], None] | None = None,
    ):
        if abs(float(rate_hz) - core.config.rate_hz) > 1e-9 * core.config.rate_hz:
            raise ValueError(
                f"loop rate {rate_hz} Hz is not the core's configured {core.config.rate_hz} Hz"
            )
        self.core = core
        self.clock = clock
        self.rate_hz = float(rate_hz)
        self.period_ns = int(round(NS / self.rate_hz))
        self.source = source
        self.on_tick = on_tick
        self.start_ns: int | None = None
        self.k = 0  # index of the next deadline
        # Lifetime totals, and the lateness of the last HEALTH_WINDOW ticks for
        # the percentiles: bounded memory and a cheap health() over months.
        self._late_recent = np.zeros(HEALTH_WINDOW, dtype=np.int64)
        self._ticks = 0
        self._late_max = 0
        self._busy_max = 0
        self._busy_sum = 0
        self._samples_sum = 0
        self._samples_max = 0
        self.overruns = 0
        self._stop = False

    def stop(self) -> None:
        """Ask ``run`` to return after the current tick."""
        self._stop = True

    def deadline_ns(self, k: int) -> int:
        assert self.start_ns is not None
        return self.start_ns + k * self.period_ns

    def step(self) -> TickResult:
        """Wait for the next deadline and run one tick."""
        if self.start_ns is None:
            self.start_ns = self.clock.now_ns()
        clock = self.clock
        deadline = self.start_ns + self.k * self.period_ns
        clock.sleep_until_ns(deadline)
        woke = clock.now_ns()
        late = woke - deadline if woke > deadline else 0
        self._late_recent[self._ticks % HEALTH_WINDOW] = late
        if late > self._late_max:
            self._late_max = late
        self._ticks += 1
        t_s = deadline / NS
        n = 0
        for batch in self.source(t_s):
            n += len(batch.records)
            self.core.ingest(batch.link, batch.records, batch.host_time_s)
        result = self.core.tick(t_s)
        if self.on_tick is not None:
            self.on_tick(result)
        done = clock.now_ns()
        busy = done - woke
        if busy > self._busy_max:
            self._busy_max = busy
        self._busy_sum += busy
        self._samples_sum += n
        if n > self._samples_max:
            self._samples_max = n
        # next deadline: the first one still in the future (skip, count overruns)
        nxt = self.k + 1
        next_deadline = deadline + self.period_ns
        if done > next_deadline:
            skipped = (done - next_deadline) // self.period_ns + 1
            self.overruns += int(skipped)
            nxt += int(skipped)
        self.k = nxt
        return result

    def run(
        self,
        *,
        ticks: int | None = None,
        until_s: float | None = None,
        stop: Callable[[], bool] | None = None,
    ) -> LoopHealth:
        """Tick until ``ticks`` ticks ran, the tick time passes ``until_s``, or ``stop()``."""
        n = 0
        self._stop = False
        while not self._stop:
            if ticks is not None and n >= ticks:
                break
            if until_s is not None and self.start_ns is not None:
                if self.deadline_ns(self.k) / NS > until_s + 1e-12:
                    break
            if stop is not None and stop():
                break
            self.step()
            n += 1
        return self.health()

    def health(self) -> LoopHealth:
        """Lifetime counts, maxima and means; lateness percentiles over the last
        ``HEALTH_WINDOW`` ticks."""
        n = self._ticks
        late = self._late_recent[: min(n, HEALTH_WINDOW)].astype(float) / NS

        def pct(q):
            return float(np.percentile(late, q)) if len(late) else math.nan

        return LoopHealth(
            period_s=self.period_ns / NS,
            ticks=n,
            overruns=self.overruns,
            lateness_p50_s=pct(50),
            lateness_p90_s=pct(90),
            lateness_p99_s=pct(99),
            lateness_max_s=self._late_max / NS if n else math.nan,
            worst_tick_s=self._busy_max / NS if n else math.nan,
            mean_tick_s=self._busy_sum / n / NS if n else math.nan,
            samples=self._samples_sum,
            samples_per_tick_mean=self._samples_sum / n if n else 0.0,
            samples_per_tick_max=self._samples_max,
        )


def run_batch(
    core: MonitorCore,
    source: RecordedSource,
    rate_hz: float,
    *,
    start_s: float | None = None,
    until_s: float | None = None,
    on_tick: Callable[[TickResult], None] | None = None,
) -> LoopHealth:
    """Run ``core`` over recorded data as fast as possible on a simulated clock.

    Ticks start at ``start_s`` (default: the first arrival, rounded down to a
    tick) and run until ``until_s`` (default: one tick past the last arrival).
    """
    period_ns = int(round(NS / rate_hz))
    if start_s is None:
        start_s = math.floor(source.start_s * rate_hz) / rate_hz
    if until_s is None:
        until_s = source.end_s + 1.0 / rate_hz
    clock = SimClock(int(round(start_s * NS)))
    loop = RateLoop(core, clock, rate_hz, source, on_tick)
    loop.start_ns = (clock.now_ns() // period_ns) * period_ns
    return loop.run(until_s=until_s)


# --- captures: raw bytes of one link -----------------------------------------


def decode_capture(data: bytes) -> np.ndarray:
    """All SAMPLE records of a raw byte capture, in stream order."""
    from drivers.decoder import StreamDecoder

    dec = StreamDecoder()
    parts = [dec.feed(data).samples, dec.flush().samples]
    parts = [p for p in parts if len(p)]
    if not parts:
        return np.empty(0, dtype=SAMPLE_RECORD_DTYPE)
    return np.concatenate(parts)


#: A sensor clock that jumps forward by more than this (s) between two samples
#: restarted: a capture's timeline never gets a gap longer than this from one
#: jump (a garbage timestamp of 2^63 us would otherwise be ticked through).
MAX_CLOCK_JUMP_S = 86400.0


def capture_arrivals(records: np.ndarray) -> np.ndarray:
    """Host arrival times (s) for records of a capture that has no host timestamps.

    Each sensor's clock is put on a common timeline: the first address seen
    starts at its own sensor time; every later address, and every address
    again after its clock restarts (reboot: it went backwards, or forward by
    more than ``MAX_CLOCK_JUMP_S``), is aligned to the time of the record
    before it in the stream.  The result is made non-decreasing, in stream order.
    """
    n = len(records)
    out = np.zeros(n)
    if n == 0:
        return out
    t = records["t_us"].astype(np.float64) * 1e-6
    if t[0] > TEN_YEARS_S:  # not a clock since power-on: the timeline starts at 0
        t -= t[0]
    addr = records["addr"].astype(np.int64)
    # segment = (address, number of clock restarts so far for that address)
    seg = np.zeros(n, dtype=np.int64)
    for a in np.unique(addr):
        idx = np.flatnonzero(addr == a)
        d = np.diff(t[idx])
        restart = np.r_[False, (d < 0) | (d > MAX_CLOCK_JUMP_S)]
        seg[idx] = np.cumsum(restart)
    key = addr * (n + 1) + seg
    uniq, first = np.unique(key, return_index=True)
    offset = {}
    order = np.argsort(first)
    for u, f in zip(uniq[order].tolist(), first[order].tolist(), strict=True):
        if f == 0:
            offset[u] = 0.0  # the first sensor's clock is the timeline
        else:
            prev_key = int(key[f - 1])
            offset[u] = (t[f - 1] + offset[prev_key]) - t[f]
    return np.maximum.accumulate(t + _map_offsets(key, offset))


def _map_offsets(key: np.ndarray, offset: dict) -> np.ndarray:
    ks = np.array(sorted(offset))
    vals = np.array([offset[k] for k in ks])
    return vals[np.searchsorted(ks, key)]
