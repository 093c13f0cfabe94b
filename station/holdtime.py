"""How long a hatch closure must be held before each side's leak rate is known.

PHYSICS.md "What limits detection": a straight-line fit over T s of a pressure
sampled at f Hz with white noise sigma (Pa) from M independent sensors has the
slope standard error ``sigma / sqrt(M) * sqrt(12 / (f T^3))`` (Pa/s).  The gas
law (``common.gas.kg_day_per_pa_s``) turns a volume's slope into its mass rate,
``V / (R T_ref) * 86400`` kg/day per Pa/s.  The aggregator sums the mass rates
of a segment's volumes and adds their variances, so a segment's mass-rate sigma
after a fit of T s is ``C T^-1.5`` with

    C^2 = sum over its volumes with live sensors of
          (kg_day_per_pa_s(V_i) * noise_i)^2 * 12 / (M_i f_i)     (kg/day s^1.5)^2

To decide a side, hold until the expected leak rate L is ``k`` sigma there:
``T_fit = (k C / L)^(2/3)``.  The board's estimator only fits whole windows
(``windows_s``) that start ``settle_s`` after the hatch moved, so the hold is
``settle_s`` plus the shortest window at least ``T_fit`` long; a closure's hold
is that of its slower (bigger or noisier) side.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from common.gas import kg_day_per_pa_s
from firmware_host.config import DEFAULT_WINDOWS_S, EstimatorConfig, MonitorConfig
from station.graph import StationGraph, StationVolume

#: Reference temperature of the boards' mass rates (K): the monitor's default.
T_REF_K: float = MonitorConfig.t_ref_k
#: Time after a hatch moves before the boards' fits use new data (s).
SETTLE_S: float = EstimatorConfig.hatch_settle_s
#: Default sigma multiple a side's expected leak must reach before it is decided.
K_SIGMA = 4.0


def volume_floor_coef(volume: StationVolume, sensors: int, t_ref_k: float = T_REF_K) -> float:
    """C (kg/day s^1.5) of one volume with ``sensors`` live sensors: its mass-rate
    sigma after a straight-line fit of T s is ``C * T**-1.5``; inf without a sensor."""
    if sensors <= 0:
        return math.inf
    k_mass = kg_day_per_pa_s(volume.volume_m3, t_ref_k)
    return k_mass * volume.noise_pa * math.sqrt(12.0 / (sensors * volume.rate_hz))


@dataclass(frozen=True)
class HoldModel:
    """The detection floor of segments and the hold time it sets.

    ``k_sigma``: sigmas the expected leak must reach on each side;
    ``settle_s``: dead time after a hatch moves (s); ``windows_s``: the boards'
    fit windows (s; None: any length); ``t_ref_k``: reference temperature (K).
    """

    k_sigma: float = K_SIGMA
    settle_s: float = SETTLE_S
    windows_s: tuple[float, ...] | None = DEFAULT_WINDOWS_S
    t_ref_k: float = T_REF_K

    def segment_coef(
        self, graph: StationGraph, segment: Iterable[str], live: Mapping[str, int]
    ) -> float:
        """C (kg/day s^1.5) of a segment: the root sum of squares over its volumes
        with live sensors (``live``: healthy sensors per volume); inf if none."""
        c2 = 0.0
        any_live = False
        for name in segment:
            n = live.get(name, 0)
            if n > 0:
                any_live = True
                c2 += volume_floor_coef(graph.volumes[name], n, self.t_ref_k) ** 2
        return math.sqrt(c2) if any_live else math.inf

    def fit_s(self, coef: float, leak_kg_day: float) -> float:
        """Fit length (s) after which ``leak_kg_day`` is ``k_sigma`` sigmas of a
        segment of floor ``coef``; inf for no leak or no sensor."""
        if not (leak_kg_day > 0) or not math.isfinite(coef):
            return math.inf
        return (self.k_sigma * coef / leak_kg_day) ** (2.0 / 3.0)

    def window_s(self, fit_s: float) -> float:
        """The shortest fit window (s) at least ``fit_s`` long; inf if none is."""
        if self.windows_s is None:
            return fit_s
        for w in self.windows_s:
            if w >= fit_s:
                return w
        return math.inf

    def hold_s(self, coefs: Iterable[float], leak_kg_day: float) -> float:
        """Hold (s) after a closure that decides every side of floors ``coefs``."""
        worst = max((self.window_s(self.fit_s(c, leak_kg_day)) for c in coefs), default=0.0)
        return self.settle_s + worst

    def extended_s(self, hold_s: float) -> float:
        """The hold (s) that reaches the boards' next longer window after the one
        ``hold_s`` waits for (three more fit lengths without windows): where an
        unclear decision waits for better data."""
        fit = hold_s - self.settle_s
        if self.windows_s is None:
            return self.settle_s + 4.0 * fit
        longer = [w for w in self.windows_s if w > fit]
        return self.settle_s + (longer[0] if longer else 4.0 * fit)

    def sigma_after(self, coef: float, held_s: float) -> float | None:
        """Mass-rate sigma (kg/day) of the boards' longest full window ``held_s`` s
        after a hatch moved; None while no window is full."""
        span = held_s - self.settle_s
        if span <= 0 or not math.isfinite(coef):
            return None
        if self.windows_s is None:
            w = span
        else:
            full = [w for w in self.windows_s if w <= span]
            if not full:
                return None
            w = full[-1]
        return coef * w**-1.5
