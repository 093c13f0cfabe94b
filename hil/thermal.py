"""Prescribed gas temperature per volume: set point, orbit sinusoid, slow cycle,
linear drift and smoothed steps, evaluated in closed form at any times."""

from __future__ import annotations

import math

import numpy as np

from common.gas import KELVIN
from hil.scenario import Scenario


class ThermalModel:
    """Temperature in kelvin of every volume, vectorized over volumes or times.

    A step of ``delta_k`` at ``t0`` is approached as ``delta (1 - exp(-(t - t0)/tau))``:
    the air of a module does not change temperature instantly.
    """

    def __init__(self, scenario: Scenario):
        vols = scenario.volumes
        self.names = [v.name for v in vols]
        th = [v.thermal for v in vols]
        self.base_k = np.array([t.setpoint_c + KELVIN for t in th])
        self.orbit_a = np.array([t.orbit_amplitude_k for t in th])
        self.orbit_w = np.array([2 * math.pi / t.orbit_period_s for t in th])
        self.orbit_ph = np.radians([t.orbit_phase_deg for t in th])
        self.slow_a = np.array([t.slow_amplitude_k for t in th])
        self.slow_w = np.array([2 * math.pi / t.slow_period_s for t in th])
        self.slow_ph = np.radians([t.slow_phase_deg for t in th])
        self.drift = np.array([t.drift_k_per_day / 86400.0 for t in th])
        idx = {n: i for i, n in enumerate(self.names)}
        # steps: (volume index, t0, delta, tau)
        self.steps = [
            (idx[e.target], e.t_s, e.delta_k, max(e.tau_s, 1e-9))
            for e in scenario.events
            if e.kind == "temperature_step"
        ]

    def at(self, t_s: float) -> np.ndarray:
        """Temperature (K) of every volume at one time."""
        t = float(t_s)
        out = (
            self.base_k
            + self.orbit_a * np.sin(self.orbit_w * t + self.orbit_ph)
            + self.slow_a * np.sin(self.slow_w * t + self.slow_ph)
            + self.drift * t
        )
        for i, t0, d, tau in self.steps:
            if t > t0:
                out[i] += d * -math.expm1(-(t - t0) / tau)
        return out

    def series(self, i: int, t_s: np.ndarray) -> np.ndarray:
        """Temperature (K) of volume ``i`` at many times."""
        t = np.asarray(t_s, dtype=np.float64)
        out = (
            self.base_k[i]
            + self.orbit_a[i] * np.sin(self.orbit_w[i] * t + self.orbit_ph[i])
            + self.slow_a[i] * np.sin(self.slow_w[i] * t + self.slow_ph[i])
            + self.drift[i] * t
        )
        for j, t0, d, tau in self.steps:
            if j == i:
                dt = np.maximum(t - t0, 0.0)
                out = out + d * -np.expm1(-dt / tau)
        return out

    def fastest_tau_s(self, t_s: float) -> float:
        """Shortest time scale of the temperature around ``t_s`` (for the step size)."""
        taus = [float(np.min(1.0 / self.orbit_w)) * 4]
        for _, t0, _, tau in self.steps:
            if t0 <= t_s < t0 + 5 * tau:
                taus.append(tau)
        return min(taus)
