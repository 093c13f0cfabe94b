"""Scheduled sensor faults, applied to a block of samples at once.

Kinds (hil.scenario.SENSOR_FAULT_KINDS):

- ``stuck``: from ``start`` to ``end`` every sample repeats the first one of the window;
- ``spike``: the first ``count`` samples at or after ``start`` get ``magnitude_pa`` added;
- ``step``: ``magnitude_pa`` added from ``start`` to ``end`` (a step bias);
- ``drift``: ``rate_pa_per_day`` accumulated from ``start``; held after ``end``;
- ``dropout``: the sensor sends nothing (no SAMPLE, no answer, no SEQ used);
- ``noisy``: white noise multiplied by ``factor``;
- ``reboot``: at ``start`` the sensor restarts: clock and SEQ from 0, rate and zero offset
  back to their power-up values, silent for ``boot_s``, the first SAMPLE flags status bit 5;
- ``out_of_range``: status bit 0 set from ``start`` to ``end``.
"""

from __future__ import annotations

import numpy as np

from hil.scenario import SensorFault


class SensorFaults:
    """The faults of one sensor, with the state stuck values and spikes need."""

    def __init__(self, faults: list[SensorFault], boot_s: float = 2.0):
        self.faults = list(faults)
        self.boot_s = boot_s
        self.reboot_times = sorted(f.start_s for f in faults if f.kind == "reboot")
        self._by_kind: dict[str, list[tuple[int, SensorFault]]] = {}
        for i, f in enumerate(self.faults):
            self._by_kind.setdefault(f.kind, []).append((i, f))
        self._spike_left = {i: f.count for i, f in self._by_kind.get("spike", [])}
        self._stuck: dict[int, tuple[float, float]] = {}

    def _windows(self, kind: str):
        return self._by_kind.get(kind, [])

    @staticmethod
    def _in(ts: np.ndarray, f: SensorFault) -> np.ndarray:
        return (ts >= f.start_s) & (ts < f.end_s)

    def silent(self, t_s: float) -> bool:
        return any(f.start_s <= t_s < f.end_s for _, f in self._windows("dropout"))

    def sending_mask(self, ts: np.ndarray) -> np.ndarray:
        keep = np.ones(len(ts), dtype=bool)
        for _, f in self._windows("dropout"):
            keep &= ~self._in(ts, f)
        return keep

    def noise_factor(self, ts: np.ndarray) -> np.ndarray | float:
        out: np.ndarray | float = 1.0
        for _, f in self._windows("noisy"):
            out = out * np.where(self._in(ts, f), f.factor, 1.0)
        return out

    def out_of_range_mask(self, ts: np.ndarray) -> np.ndarray | bool:
        out: np.ndarray | bool = False
        for _, f in self._windows("out_of_range"):
            out = out | self._in(ts, f)
        return out

    def apply_pressure(self, ts: np.ndarray, p: np.ndarray) -> np.ndarray:
        for _, f in self._windows("step"):
            p = p + np.where(self._in(ts, f), f.magnitude_pa, 0.0)
        for _, f in self._windows("drift"):
            dt = np.clip(ts, f.start_s, f.end_s) - f.start_s
            p = p + f.rate_pa_per_day / 86400.0 * dt
        for i, f in self._windows("spike"):
            left = self._spike_left[i]
            if left <= 0:
                continue
            idx = np.flatnonzero(ts >= f.start_s)[:left]
            if len(idx):
                p = p.copy()
                p[idx] += f.magnitude_pa
                self._spike_left[i] = left - len(idx)
        return p

    def apply_stuck(self, ts: np.ndarray, p: np.ndarray, tc: np.ndarray):
        for i, f in self._windows("stuck"):
            m = self._in(ts, f)
            if not m.any():
                continue
            if i not in self._stuck:
                j = int(np.flatnonzero(m)[0])
                self._stuck[i] = (float(p[j]), float(tc[j]))
            sp, st = self._stuck[i]
            p = np.where(m, sp, p)
            tc = np.where(m, st, tc)
        return p, tc

    def active(self, t_s: float) -> list[str]:
        """Kinds of the faults in effect at ``t_s`` (reboot and spike: for a moment)."""
        out = []
        for f in self.faults:
            if f.kind in ("reboot", "spike"):
                if f.start_s <= t_s < f.start_s + max(self.boot_s, 1.0):
                    out.append(f.kind)
            elif f.start_s <= t_s < f.end_s or (f.kind == "drift" and t_s >= f.start_s):
                out.append(f.kind)
        return out
