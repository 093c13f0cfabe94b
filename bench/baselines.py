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
  fixed moving window (``window_s``, 60 s) against the sensor's own
  timestamps; alarm when the slope is below ``-threshold_pa_s``, the fall
  rate of the monitor's CAUTION mass rate in that volume
  (``slope_threshold_pa_s``).  When a sensor's timestamps go backwards (a
  reboot) its window restarts: the least any slope needs to compute at all.
  The first slope is computed once the window holds ``window_s`` of data.
"""

from __future__ import annotations

import math
from collections import deque

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

    def update(self, key: str, cond: bool, t_s: float) -> None:
        if cond:
            if key not in self.active:
                self.active.add(key)
                self.alarms.append((t_s, key))
            self.last_true[key] = t_s
        elif key in self.active and t_s - self.last_true[key] >= self.clear_s:
            self.active.discard(key)


class _Panel:
    name = "panel"

    def __init__(self, clear_s: float = 30.0):
        self.decoders: dict[str, StreamDecoder] = {}
        self.latch = _Latch(clear_s)

    @property
    def alarms(self) -> list[tuple[float, str]]:
        return self.latch.alarms

    def feed(self, link: str, data: bytes, now_s: float) -> None:
        """Bytes of ``link`` that reached the panel at ``now_s``."""
        dec = self.decoders.get(link)
        if dec is None:
            dec = self.decoders[link] = StreamDecoder()
        recs = dec.feed(data, now_s).samples
        if not len(recs):
            return
        addrs = recs["addr"].tolist()
        ts = (recs["t_us"] * 1e-6).tolist()
        ps = recs["pressure_pa"].tolist()
        for a, t, p in zip(addrs, ts, ps, strict=True):
            self._sample(f"{link}:{a}", t, p, now_s)

    def _sample(self, sid: str, t: float, p: float, now_s: float) -> None:
        raise NotImplementedError


class StepPanel(_Panel):
    """Alarm when |p[i] - p[i-1]| of one sensor exceeds ``step_pa``."""

    name = "step panel"

    def __init__(self, step_pa: float, clear_s: float = 30.0):
        super().__init__(clear_s)
        self.step_pa = step_pa
        self.last: dict[str, float] = {}

    def _sample(self, sid: str, t: float, p: float, now_s: float) -> None:
        prev = self.last.get(sid)
        self.last[sid] = p
        if prev is not None:
            self.latch.update(sid, abs(p - prev) > self.step_pa, now_s)


class _Window:
    """Running sums of (t, p) over the last ``window_s`` seconds (t relative to t0)."""

    __slots__ = ("q", "t0", "n", "st", "sp", "stt", "stp")

    def __init__(self):
        self.q: deque = deque()
        self.t0 = None
        self.n = 0
        self.st = self.sp = self.stt = self.stp = 0.0

    def add(self, t: float, p: float) -> None:
        if self.t0 is None:
            self.t0 = t
        x = t - self.t0
        self.q.append((x, p))
        self.n += 1
        self.st += x
        self.sp += p
        self.stt += x * x
        self.stp += x * p

    def pop(self) -> None:
        x, p = self.q.popleft()
        self.n -= 1
        self.st -= x
        self.sp -= p
        self.stt -= x * x
        self.stp -= x * p

    def slope(self) -> float:
        n = self.n
        den = n * self.stt - self.st * self.st
        if n < 3 or den <= 0:
            return math.nan
        return (n * self.stp - self.st * self.sp) / den


class SlopePanel(_Panel):
    """Alarm when one sensor's least-squares slope over ``window_s`` is below ``-threshold``.

    The pressures are offset by the sensor's first reading before summing, so
    the running sums keep their precision.
    """

    name = "slope panel"

    def __init__(self, threshold_pa_s: float, window_s: float = 60.0, clear_s: float = 30.0):
        super().__init__(clear_s)
        self.threshold = threshold_pa_s
        self.window_s = window_s
        self.win: dict[str, _Window] = {}
        self.p_ref: dict[str, float] = {}
        self.last_t: dict[str, float] = {}

    def _sample(self, sid: str, t: float, p: float, now_s: float) -> None:
        w = self.win.get(sid)
        if w is None or t <= self.last_t.get(sid, -math.inf):
            w = self.win[sid] = _Window()  # first sample, or the sensor's clock restarted
            self.p_ref.setdefault(sid, p)
        self.last_t[sid] = t
        w.add(t, p - self.p_ref[sid])
        x_new = t - w.t0
        while w.q and w.q[0][0] < x_new - self.window_s:
            w.pop()
        if x_new - w.q[0][0] < self.window_s * 0.98:
            return  # not a full window yet
        s = w.slope()
        if not math.isnan(s):
            self.latch.update(sid, s < -self.threshold, now_s)
        if w.q[0][0] > 3600.0:  # long runs: move the time origin to the window's start
            self.win[sid] = _recentred(w)


def _recentred(w: _Window) -> _Window:
    """The same window with its time origin at its first point (and fresh sums)."""
    base = w.q[0][0]
    nw = _Window()
    nw.t0 = w.t0 + base
    for x, q in w.q:
        nw.add(nw.t0 + x - base, q)
    return nw
