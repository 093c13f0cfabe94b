"""Two naive alarm panels, run on the same bytes as the monitor (the scorecard's baselines).

Each panel decodes the tapped link bytes with its own ``StreamDecoder`` and
looks only at SAMPLE records: no temperature compensation, no fusion of
sensors, no health checks, no voting.  Each keeps one alarm per sensor that is
raised when its condition first holds and clears after ``clear_s`` (30 s, the
monitor's ``Limits.clear_s``) without it; ``alarms`` lists the raises as
``(t_s, sensor_id)``, ``t_s`` the time the bytes reached the panel.

* ``StepPanel``: alarm when two consecutive readings of one sensor differ by
  more than a fixed step (``step_pa``).  ``step_for_noise(noise_pa)`` gives
  6 standard deviations of the difference of two white-noise readings,
  6 * sqrt(2) * noise: about 1e-9 false alarms per reading on white noise.
* ``SlopePanel``: least-squares slope of one sensor's raw pressure over a
  fixed moving window (``window_s``, 60 s, both ends in: a sample exactly
  60 s old is in) against the sensor's own timestamps; alarm when the slope
  is below ``-threshold_pa_s``, the fall rate of the monitor's CAUTION mass
  rate in that volume
  (``slope_threshold_pa_s``).  When a sensor's timestamps go backwards (a
  reboot) its window restarts: the least any slope needs to compute at all.
  The first slope is computed once the window holds ``window_s`` of data.

Both panels buffer the samples and judge them a round at a time, each
sensor's vectorized (``SampleBuffer``); ``alarms`` is up to date when read.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from common.gas import fall_rate_pa_s
from drivers.decoder import StreamDecoder


def step_for_noise(noise_pa: float, k: float = 6.0) -> float:
    """A step (Pa) that white noise of ``noise_pa`` exceeds at ``k`` sigma of a difference."""
    return k * math.sqrt(2.0) * noise_pa


def slope_threshold_pa_s(kg_day: float, volume_m3: float, t_k: float = 295.15) -> float:
    """Fall rate (Pa/s) of ``kg_day`` lost from ``volume_m3`` at ``t_k``."""
    return fall_rate_pa_s(kg_day, volume_m3, t_k)


#: Pressure change per kelvin of gas temperature at 101.3 kPa and 295.15 K (Pa/K).
PA_PER_K = 101_325.0 / 295.15


def floor_time_s(
    k_sigma: float,
    noise_pa: float,
    n_sensors: int,
    rate_hz: float,
    slope_pa_s: float,
    temp_noise_k: float = 0.0,
) -> float:
    """PHYSICS.md "What limits detection": T = (12 k^2 sigma^2 / (f s^2))^(1/3),
    sigma = noise / sqrt(M): the shortest straight-line fit that shows the slope
    ``slope_pa_s`` at ``k_sigma`` standard errors.

    With ``temp_noise_k`` (K, white, per sample) the noise is that of the
    temperature-compensated pressure P T_ref / T, which any detector that tells a
    leak from a thermal swing must use: sigma^2 = noise^2 + (P/T temp_noise)^2.
    """
    if slope_pa_s <= 0:
        return math.inf
    sigma2 = (noise_pa**2 + (PA_PER_K * temp_noise_k) ** 2) / n_sensors
    return (12.0 * k_sigma**2 * sigma2 / (rate_hz * slope_pa_s**2)) ** (1.0 / 3.0)


class _Latch:
    """One alarm per key: raised when the condition holds, cleared ``clear_s`` after it."""

    def __init__(self, clear_s: float):
        self.clear_s = clear_s
        self.last_true: dict[str, float] = {}
        self.active: set[str] = set()
        self.alarms: list[tuple[float, str]] = []

    def update_many(self, key: str, cond: np.ndarray, t_s: np.ndarray) -> None:
        """``key``'s next evaluations ``cond`` of its condition, at ``t_s`` (s,
        non-decreasing), in order.

        A true evaluation raises the alarm unless it is active; a false one
        ``clear_s`` or more after the last true one clears it.  So a true one
        raises unless an earlier true one did and no false one since came
        ``clear_s`` after it: time not decreasing, the last false one before it
        is the one to ask."""
        if not len(cond):
            return
        idx = np.flatnonzero(cond)
        clear = self.clear_s
        active = key in self.active
        last = self.last_true.get(key)
        if not len(idx):
            if active and t_s[-1] - last >= clear:
                self.active.discard(key)
            return
        raise_ = np.empty(len(idx), dtype=bool)
        # the first true one: after the state carried in
        i0 = int(idx[0])
        raise_[0] = not active or (i0 > 0 and t_s[i0 - 1] - last >= clear)
        # the others: after the true one before them, with false ones between
        prev = idx[:-1]
        cur = idx[1:]
        gap = cur - 1 > prev
        raise_[1:] = gap & (t_s[np.maximum(cur - 1, 0)] - t_s[prev] >= clear)
        self.alarms.extend((t, key) for t in t_s[idx[raise_]].tolist())
        last = float(t_s[idx[-1]])
        self.last_true[key] = last
        if int(idx[-1]) < len(cond) - 1 and t_s[-1] - last >= clear:
            self.active.discard(key)
        else:
            self.active.add(key)


class SampleBuffer:
    """SAMPLE records of several links buffered as they come, handed out per
    sensor (``link:addr``) in stream order, vectorized: ``CHUNK`` samples a round."""

    #: buffered samples (all sensors) that make a round
    CHUNK = 4096

    def __init__(self):
        # (link, addr, sensor time us, pressure Pa, arrival s) of each batch
        self._buf: list[tuple[str, np.ndarray, np.ndarray, np.ndarray, float]] = []
        self._n = 0

    def add(self, link: str, recs: np.ndarray, now_s: float) -> bool:
        """Buffer ``recs`` of ``link`` that arrived at ``now_s`` (s); True when a round is full."""
        if len(recs):
            # (copies: the caller may reuse its buffer; columns: a structured
            # array's concatenation costs a type promotion per array)
            self._buf.append(
                (link, recs["addr"].copy(), recs["t_us"].copy(), recs["pressure_pa"].copy(), now_s)
            )
            self._n += len(recs)
        return self._n >= self.CHUNK

    def drain(self) -> Iterator[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
        """Each sensor's buffered samples, emptying the buffer: ``(sensor id, sensor
        time s, pressure Pa, arrival s)``."""
        by_link: dict[str, list] = {}
        for b in self._buf:
            by_link.setdefault(b[0], []).append(b)
        self._buf = []
        self._n = 0
        for link, items in by_link.items():
            addr = np.concatenate([b[1] for b in items])
            order = np.argsort(addr, kind="stable")
            addr = addr[order]
            t = (np.concatenate([b[2] for b in items]) * 1e-6)[order]
            p = np.concatenate([b[3] for b in items]).astype(np.float64)[order]
            now = np.repeat([b[4] for b in items], [len(b[1]) for b in items])[order]
            cuts = np.flatnonzero(addr[1:] != addr[:-1]) + 1
            for lo, hi in zip([0, *cuts.tolist()], [*cuts.tolist(), len(addr)], strict=True):
                yield f"{link}:{addr[lo]}", t[lo:hi], p[lo:hi], now[lo:hi]


class _Panel:
    """Samples are buffered (``SampleBuffer``) and processed per sensor, a round at
    a time and whenever ``alarms`` is read, so the alarms are up to date when
    read (their times are those at which the bytes reached the panel)."""

    name = "panel"

    def __init__(self, clear_s: float = 30.0):
        self.decoders: dict[str, StreamDecoder] = {}
        self.latch = _Latch(clear_s)
        self._buf = SampleBuffer()

    @property
    def alarms(self) -> list[tuple[float, str]]:
        """``(t_s, sensor id)`` of every raise so far, in time order."""
        self._drain()
        return self.latch.alarms

    def feed(self, link: str, data: bytes, now_s: float) -> None:
        """Bytes of ``link`` that reached the panel at ``now_s``."""
        dec = self.decoders.get(link)
        if dec is None:
            dec = self.decoders[link] = StreamDecoder()
        self.feed_records(link, dec.feed(data, now_s).samples, now_s)

    def feed_records(self, link: str, recs: np.ndarray, now_s: float) -> None:
        """SAMPLE records of ``link`` (decoded) that reached the panel at ``now_s`` (s)."""
        if self._buf.add(link, recs, now_s):
            self._drain()

    def _drain(self) -> None:
        alarms = self.latch.alarms
        n0 = len(alarms)
        for sid, t, p, now in self._buf.drain():
            self.process(sid, t, p, now)
        # a round's alarms come sensor by sensor: in time order (they all came
        # after the earlier rounds' samples)
        alarms[n0:] = sorted(alarms[n0:], key=lambda a: a[0])

    def process(self, sid: str, t: np.ndarray, p: np.ndarray, now: np.ndarray) -> None:
        """Sensor ``sid``'s next samples, in stream order: sensor time ``t`` (s),
        pressure ``p`` (Pa), arrival ``now`` (s)."""
        raise NotImplementedError


class StepPanel(_Panel):
    """Alarm when |p[i] - p[i-1]| of one sensor exceeds ``step_pa``."""

    name = "step panel"

    def __init__(self, step_pa: float, clear_s: float = 30.0):
        super().__init__(clear_s)
        self.step_pa = step_pa
        self.last: dict[str, float] = {}

    def process(self, sid: str, t: np.ndarray, p: np.ndarray, now: np.ndarray) -> None:
        prev = self.last.get(sid)
        self.last[sid] = float(p[-1])
        if prev is None:
            d, now = np.diff(p), now[1:]
        else:
            d = np.diff(p, prepend=prev)
        self.latch.update_many(sid, np.abs(d) > self.step_pa, now)


_EMPTY = np.empty(0)
#: Half the sensor clock's resolution (1 us), s: a sample exactly ``window_s``
#: before another is in its window whatever the rounding of their times.
TIE_S = 0.5e-6


class SlopePanel(_Panel):
    """Alarm when one sensor's least-squares slope over ``window_s`` is below ``-threshold``.

    The pressures are offset by the sensor's first reading, and the times by
    each processed stretch's first, before summing, so the sums keep their
    precision.
    """

    name = "slope panel"

    def __init__(self, threshold_pa_s: float, window_s: float = 60.0, clear_s: float = 30.0):
        super().__init__(clear_s)
        self.threshold = threshold_pa_s
        self.window_s = window_s
        self.p_ref: dict[str, float] = {}
        self.last_t: dict[str, float] = {}
        # each sensor's samples of its current segment within the last window_s
        self._tail: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def process(self, sid: str, t: np.ndarray, p: np.ndarray, now: np.ndarray) -> None:
        if sid not in self.p_ref:
            self.p_ref[sid] = float(p[0])
        q = p - self.p_ref[sid]
        # a sample not after the one before it: the sensor's clock restarted
        prev = np.concatenate(([self.last_t.get(sid, -math.inf)], t[:-1]))
        starts = np.flatnonzero(t <= prev).tolist()
        self.last_t[sid] = float(t[-1])
        # the last segment's tail first (context only), then the new samples
        tail_t, tail_q = self._tail.get(sid, (_EMPTY, _EMPTY))
        k = len(tail_t)
        ts_all = np.concatenate((tail_t, t))
        qs_all = np.concatenate((tail_q, q))
        bounds = sorted({0, *(i + k for i in starts), len(ts_all)})
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
            first = max(k - lo, 0)  # the tail's samples are judged already
            now_seg = now[max(lo - k, 0) : hi - k]
            self._segment(sid, ts_all[lo:hi], qs_all[lo:hi], first, now_seg)
        ts, qs = ts_all[lo:hi], qs_all[lo:hi]
        tail_from = int(np.searchsorted(ts, ts[-1] - (self.window_s + TIE_S), side="left"))
        self._tail[sid] = (ts[tail_from:], qs[tail_from:])

    def _segment(self, sid, ts, qs, first, now) -> None:
        """The slopes at samples ``first``... of a segment (times ``ts`` increasing)."""
        W = self.window_s
        # the window holds the samples up to W old, ties included
        left = np.searchsorted(ts, ts - (W + TIE_S), side="left")[first:]
        i = np.arange(first, len(ts))
        full = ts[i] - ts[left] >= 0.98 * W
        if not np.count_nonzero(full):
            return
        x = ts - ts[0]
        c = np.zeros((4, len(ts) + 1))
        np.cumsum(x, out=c[0, 1:])
        np.cumsum(qs, out=c[1, 1:])
        np.cumsum(x * x, out=c[2, 1:])
        np.cumsum(x * qs, out=c[3, 1:])
        s = c[:, i + 1] - c[:, left]  # window sums of x, q, xx, xq
        n = (i - left + 1).astype(np.float64)
        den = n * s[2] - s[0] * s[0]
        ok = full & (n >= 3) & (den > 0)
        slope = (n[ok] * s[3][ok] - s[0][ok] * s[1][ok]) / den[ok]
        self.latch.update_many(sid, slope < -self.threshold, now[ok])
