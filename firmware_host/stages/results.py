"""What a tick hands out: events and estimates, as data (no reference to the core).

``TickResult`` holds the arrays of the last slow tick (``VolumeFit``,
``SensorFrame``) and builds the typed per-volume and per-sensor estimates
(``VolumeEstimate``, ``SensorEstimate``) on first access, off the hot path.
``estimates_t_s`` says when the estimates were computed (the last slow tick).

Units: time s, pressure Pa, temperature K (deg C for sensors), slopes Pa/s,
mass rates kg/day, hole diameter mm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from firmware_host.alarms import AlarmEvent
from firmware_host.stages.estimation import EstimateState, VolumeFit
from firmware_host.stages.health import FAULT_KINDS, FaultKind, HealthState
from firmware_host.stages.regime import Regime


def _num(x):
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, (np.floating, np.integer)):
        x = x.item()
        return None if isinstance(x, float) and not math.isfinite(x) else x
    return x


@dataclass(frozen=True)
class WindowSlope:
    """Fused dP/dt over one window: raw and temperature-compensated, Pa/s, 1-sigma."""

    window_s: float
    dpdt_pa_s: float
    stderr_pa_s: float
    dpdt_comp_pa_s: float
    stderr_comp_pa_s: float
    filled: bool


@dataclass(frozen=True)
class VolumeEstimate:
    """Fused estimates of one volume at one tick.

    ``group`` are the volumes connected to it through open hatches and
    ``group_volume_m3`` their total size, used for the mass rate and the hole.
    ``best_window_s`` is the window the mass rate comes from.  Reserve times in
    s (inf: not losing pressure), ``hole_mm`` the equivalent sharp-edged hole.
    ``state`` says whether the rate, hole and reserves are a fact
    (``EstimateState.SETTLED``), a number still settling, flagged with its
    sigma, or none.
    """

    volume: str
    group: tuple[str, ...]
    group_volume_m3: float
    pressure_pa: float
    pressure_comp_pa: float
    temperature_k: float
    dpdt: tuple[WindowSlope, ...]
    best_window_s: float
    mass_rate_kg_day: float
    mass_rate_sigma_kg_day: float
    hole_mm: float
    reserve_s_linear: float
    reserve_s_orifice: float
    regime: Regime
    regime_exponent: float
    n_healthy_sensors: int
    state: EstimateState = EstimateState.SETTLED

    @property
    def settled(self) -> bool:
        """The rate, hole and reserves can be shown as a fact."""
        return self.state is EstimateState.SETTLED

    def to_json_dict(self) -> dict:
        d = {k: _num(getattr(self, k)) for k in self.__dataclass_fields__ if k != "dpdt"}
        d["group"] = list(self.group)
        d["regime"] = self.regime.name
        d["state"] = self.state.name
        d["dpdt"] = [{k: _num(v) for k, v in w.__dict__.items()} for w in self.dpdt]
        return d


@dataclass(frozen=True)
class SensorEstimate:
    """One sensor at one tick: health, reasons, latest values, clock mapping.

    ``dpdt_comp_pa_s`` per window (NaN: not enough data); ``clock_offset_s``
    maps the sensor clock to host time (host = offset + t_us / 1e6) and
    ``clock_rate_ppm`` is the sensor clock's measured rate error.
    """

    sensor_id: str
    volume: str
    health: HealthState
    reasons: tuple[FaultKind, ...]
    last_sample_age_s: float
    pressure_pa: float
    temperature_c: float
    dpdt_comp_pa_s: tuple[float, ...]
    clock_offset_s: float
    clock_rate_ppm: float
    samples: int

    def to_json_dict(self) -> dict:
        return {
            "sensor_id": self.sensor_id,
            "volume": self.volume,
            "health": self.health.name,
            "reasons": [r.name for r in self.reasons],
            "last_sample_age_s": _num(self.last_sample_age_s),
            "pressure_pa": _num(self.pressure_pa),
            "temperature_c": _num(self.temperature_c),
            "dpdt_comp_pa_s": [_num(x) for x in self.dpdt_comp_pa_s],
            "clock_offset_s": _num(self.clock_offset_s),
            "clock_rate_ppm": _num(self.clock_rate_ppm),
            "samples": self.samples,
        }


@dataclass(frozen=True)
class Layout:
    """The names behind the arrays: volumes, windows (s), sensors and their volumes."""

    volume_names: tuple[str, ...]
    windows_s: tuple[float, ...]
    sensor_ids: tuple[str, ...]
    sensor_volumes: tuple[str, ...]


@dataclass(frozen=True)
class SensorFrame:
    """Per-sensor arrays of the last slow tick (``(C,)`` unless noted).

    ``state`` ``HealthState`` codes, ``faults`` ``(C, K)`` active faults,
    ``pressure_pa``/``temperature_c`` the newest valid sample (NaN: none),
    ``slope_comp_pa_s`` ``(nW, C)``, clock offset (s) and rate (ppm), samples
    counted.
    """

    state: np.ndarray
    faults: np.ndarray
    pressure_pa: np.ndarray
    temperature_c: np.ndarray
    slope_comp_pa_s: np.ndarray
    clock_offset_s: np.ndarray
    clock_rate_ppm: np.ndarray
    samples: np.ndarray


@dataclass(frozen=True)
class TickResult:
    """What one tick produced: events, and (built on first access) the estimates.

    ``estimates_t_s`` is the host time (s) of the slow tick that computed the
    estimates (NaN before the first)."""

    t_s: float
    tick: int
    n_samples: int
    events: tuple[AlarmEvent, ...]
    layout: Layout = field(repr=False, compare=False)
    volume_fit: VolumeFit | None = field(default=None, repr=False, compare=False)
    sensor_frame: SensorFrame | None = field(default=None, repr=False, compare=False)
    #: each sensor's last arrival (host time, s) as of this tick
    arrival_s: np.ndarray | None = field(default=None, repr=False, compare=False)

    @classmethod
    def make(cls, t_s, tick, n_samples, events, layout, volume_fit, sensor_frame, arrival_s):
        """The same object as the constructor makes, for the core's every tick: a
        frozen dataclass's ``__init__`` sets each field through
        ``object.__setattr__``; this fills the instance's dict at once."""
        r = object.__new__(cls)
        r.__dict__.update(
            t_s=t_s,
            tick=tick,
            n_samples=n_samples,
            events=events,
            layout=layout,
            volume_fit=volume_fit,
            sensor_frame=sensor_frame,
            arrival_s=arrival_s,
        )
        return r

    @property
    def estimates_t_s(self) -> float:
        return math.nan if self.volume_fit is None else self.volume_fit.t_s

    @cached_property
    def volumes(self) -> tuple[VolumeEstimate, ...]:
        return build_volumes(self.layout, self.volume_fit)

    @cached_property
    def sensors(self) -> tuple[SensorEstimate, ...]:
        return build_sensors(self.layout, self.sensor_frame, self.arrival_s, self.t_s)

    def volume(self, name: str) -> VolumeEstimate:
        for v in self.volumes:
            if v.volume == name:
                return v
        raise KeyError(name)

    def sensor(self, sensor_id: str) -> SensorEstimate:
        for s in self.sensors:
            if s.sensor_id == sensor_id:
                return s
        raise KeyError(sensor_id)


def build_volumes(layout: Layout, d: VolumeFit | None) -> tuple[VolumeEstimate, ...]:
    """The typed estimates of every volume from a ``VolumeFit`` (none before the first)."""
    if d is None:
        return ()
    out = []
    nW = len(layout.windows_s)
    for v, name in enumerate(layout.volume_names):
        slopes = tuple(
            WindowSlope(
                float(layout.windows_s[j]),
                float(d.slope_pa_s[j, v]),
                float(d.slope_stderr_pa_s[j, v]),
                float(d.slope_comp_pa_s[j, v]),
                float(d.slope_comp_stderr_pa_s[j, v]),
                bool(d.filled[j, v]),
            )
            for j in range(nW)
        )
        bj = int(d.best_window[v])
        out.append(
            VolumeEstimate(
                volume=name,
                group=d.groups[v],
                group_volume_m3=float(d.group_m3[v]),
                pressure_pa=float(d.pressure_pa[v]),
                pressure_comp_pa=float(d.pressure_comp_pa[v]),
                temperature_k=float(d.temperature_k[v]),
                dpdt=slopes,
                best_window_s=float(layout.windows_s[bj]) if bj >= 0 else math.nan,
                mass_rate_kg_day=float(d.mass_rate_kg_day[v]),
                mass_rate_sigma_kg_day=float(d.mass_rate_sigma_kg_day[v]),
                hole_mm=float(d.hole_mm[v]),
                reserve_s_linear=float(d.reserve_linear_s[v]),
                reserve_s_orifice=float(d.reserve_orifice_s[v]),
                regime=d.regime[v],
                regime_exponent=float(d.regime_exponent[v]),
                n_healthy_sensors=int(d.n_healthy[v]),
                state=EstimateState(int(d.state[v])),
            )
        )
    return tuple(out)


def build_sensors(
    layout: Layout, d: SensorFrame | None, arrival_s: np.ndarray | None, now_s: float
) -> tuple[SensorEstimate, ...]:
    """The typed state of every sensor at host time ``now_s`` (s), with each
    sensor's last arrival ``arrival_s`` (s)."""
    if d is None or arrival_s is None:
        return ()
    out = []
    for c, sid in enumerate(layout.sensor_ids):
        reasons = tuple(k for i, k in enumerate(FAULT_KINDS) if d.faults[c, i])
        out.append(
            SensorEstimate(
                sensor_id=sid,
                volume=layout.sensor_volumes[c],
                health=HealthState(int(d.state[c])),
                reasons=reasons,
                last_sample_age_s=float(now_s - arrival_s[c]),
                pressure_pa=float(d.pressure_pa[c]),
                temperature_c=float(d.temperature_c[c]),
                dpdt_comp_pa_s=tuple(float(x) for x in d.slope_comp_pa_s[:, c]),
                clock_offset_s=float(d.clock_offset_s[c]),
                clock_rate_ppm=float(d.clock_rate_ppm[c]),
                samples=int(d.samples[c]),
            )
        )
    return tuple(out)
