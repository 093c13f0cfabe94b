"""Synthetic cabin data for tests and benchmarks (no emulator needed).

A ``Cabin`` gives the true temperature-compensated pressure ``Pc(t)`` (Pa) and
gas temperature ``T(t)`` (K) of one volume; the raw pressure is
``P = Pc * T / T_ref``.  ``sensor_records`` samples it like a transducer:
its own clock (booted ``boot_s`` before host time 0), rate, white noise,
bias, and optional per-sample overrides for faults.  ``streams`` merges
sensors per link into what ``loop.RecordedSource`` replays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from common.gas import KELVIN, choked_speed_m_s, fall_rate_pa_s, mass_rate_kg_day
from drivers.frames import SAMPLE_RECORD_DTYPE

T_REF_K = 295.15
ORBIT_S = 5520.0


@dataclass(frozen=True)
class Cabin:
    """One volume's truth.  ``leak`` is ``none``, ``mass`` (``mdot_kg_day``,
    constant, sealed at ``t_stop_s``), ``orifice`` (``hole_mm``, exponential decay)
    or ``crack`` (``crack_per_s``: 1/Pc - 1/P0 = k' t, in 1/(Pa s)), starting at
    ``t_leak_s``."""

    volume_m3: float = 900.0
    p0_pa: float = 101_325.0
    temp0_k: float = 295.15
    thermal_amp_k: float = 0.0
    thermal_phase: float = 0.0
    leak: str = "none"
    t_leak_s: float = 0.0
    mdot_kg_day: float = 0.0
    hole_mm: float = 0.0
    cd: float = 0.61
    crack_per_s: float = 0.0
    t_stop_s: float = math.inf

    def temp_k(self, t: np.ndarray, lag_s: float = 0.0) -> np.ndarray:
        """Gas temperature, or as read through a first-order lag of ``lag_s``."""
        w = 2 * np.pi / ORBIT_S
        gain = 1.0 / math.sqrt(1.0 + (w * lag_s) ** 2)
        return self.temp0_k + self.thermal_amp_k * gain * np.sin(
            w * np.asarray(t) + self.thermal_phase - math.atan(w * lag_s)
        )

    @property
    def tau_s(self) -> float:
        """Orifice decay time constant V / (Cd A c*)."""
        area = math.pi * (self.hole_mm * 1e-3) ** 2 / 4
        cstar = choked_speed_m_s(T_REF_K)
        return self.volume_m3 / (self.cd * area * cstar)

    def pc(self, t: np.ndarray) -> np.ndarray:
        dt = np.maximum(np.asarray(t, dtype=float) - self.t_leak_s, 0.0)
        if self.leak == "none":
            return np.full_like(dt, self.p0_pa)
        if self.leak == "mass":
            rate = fall_rate_pa_s(self.mdot_kg_day, self.volume_m3, T_REF_K)
            return self.p0_pa - rate * np.minimum(dt, max(self.t_stop_s - self.t_leak_s, 0.0))
        if self.leak == "orifice":
            return self.p0_pa * np.exp(-dt / self.tau_s)
        if self.leak == "crack":
            return 1.0 / (1.0 / self.p0_pa + self.crack_per_s * dt)
        raise ValueError(self.leak)

    def pressure(self, t: np.ndarray, lag_s: float = 0.0) -> np.ndarray:
        """Raw pressure; with ``lag_s`` approximately as read through a lag."""
        t = np.asarray(t, dtype=float)
        return self.pc(t - lag_s) * self.temp_k(t, lag_s) / T_REF_K

    def mass_rate_kg_day(self, t: float) -> float:
        """True mass loss rate at time t (kg/day)."""
        h = 1e-3
        dpc = (self.pc(np.array([t + h]))[0] - self.pc(np.array([t - h]))[0]) / (2 * h)
        return float(mass_rate_kg_day(dpc, self.volume_m3, T_REF_K))


@dataclass(frozen=True)
class SynthSensor:
    """A transducer: ``link``/``addr``, ``rate_hz``, white noise (Pa, K), bias, boot time."""

    link: str = "bus0"
    addr: int = 1
    rate_hz: float = 10.0
    noise_pa: float = 3.0
    temp_noise_k: float = 0.0
    bias_pa: float = 0.0
    boot_s: float = 100.0
    phase_s: float = 0.0
    latency_s: float = 0.002
    clock_ppm: float = 0.0
    temp_lag_s: float = 20.0
    pressure_lag_s: float = 0.5


@dataclass
class SensorData:
    """Columns of one sensor's samples; tests edit them to inject faults."""

    sensor: SynthSensor
    t_host: np.ndarray
    t_us: np.ndarray
    pressure_pa: np.ndarray
    temperature_c: np.ndarray
    status: np.ndarray
    keep: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self):
        if self.keep is None:
            self.keep = np.ones(len(self.t_host), dtype=bool)

    def mask(self, t0: float, t1: float) -> np.ndarray:
        return (self.t_host >= t0) & (self.t_host < t1)


def sensor_data(
    s: SynthSensor, cabin: Cabin, t0: float, t1: float, rng: np.random.Generator
) -> SensorData:
    """Samples of ``s`` on ``cabin`` for host times in [t0, t1)."""
    k0 = math.ceil((t0 - s.phase_s) * s.rate_hz)
    k1 = math.ceil((t1 - s.phase_s) * s.rate_hz)
    t = s.phase_s + np.arange(k0, k1) / s.rate_hz
    p = cabin.pressure(t, s.pressure_lag_s) + s.bias_pa + s.noise_pa * rng.standard_normal(len(t))
    temp = cabin.temp_k(t, s.temp_lag_s) - KELVIN + s.temp_noise_k * rng.standard_normal(len(t))
    t_us = np.round((t + s.boot_s) * (1 + s.clock_ppm * 1e-6) * 1e6).astype(np.uint64)
    return SensorData(s, t, t_us, p, temp, np.zeros(len(t), dtype=np.uint16))


def records_of(d: SensorData) -> tuple[np.ndarray, np.ndarray]:
    """(records, arrival times) of one sensor's kept samples."""
    k = d.keep
    n = int(k.sum())
    rec = np.zeros(n, dtype=SAMPLE_RECORD_DTYPE)
    rec["addr"] = d.sensor.addr
    rec["seq"] = np.arange(n) & 0xFFFF
    rec["status"] = d.status[k]
    rec["t_us"] = d.t_us[k]
    rec["pressure_pa"] = d.pressure_pa[k]
    rec["temperature_c"] = d.temperature_c[k]
    return rec, d.t_host[k] + d.sensor.latency_s


def streams(data: list[SensorData]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per link: the sensors' records merged in arrival order."""
    by_link: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    for d in data:
        by_link.setdefault(d.sensor.link, []).append(records_of(d))
    out = {}
    for link, parts in by_link.items():
        rec = np.concatenate([p[0] for p in parts])
        arr = np.concatenate([p[1] for p in parts])
        order = np.argsort(arr, kind="stable")
        rec = rec[order]
        rec["offset"] = np.arange(len(rec)) * 35
        out[link] = (rec, arr[order])
    return out


def run(core, data: list[SensorData], rate_hz: float, t0: float, t1: float, on_tick=None):
    """Replay ``data`` through ``core`` on a simulated clock from ``t0`` to ``t1`` (s).

    Returns the list of all events.
    """
    from firmware_host.loop import RecordedSource, run_batch

    events = []

    def cb(result):
        events.extend(result.events)
        if on_tick is not None:
            on_tick(result)

    run_batch(core, RecordedSource(streams(data)), rate_hz, start_s=t0, until_s=t1, on_tick=cb)
    return events


def config_for(
    sensors: list[SynthSensor],
    volume_m3: float,
    rate_hz: float = 10.0,
    volume: str = "cabin",
    **kwargs,
):
    """A one-volume ``MonitorConfig`` holding ``sensors`` (extra fields via kwargs)."""
    from firmware_host.config import MonitorConfig, SensorConfig, VolumeConfig

    return MonitorConfig(
        volumes=(VolumeConfig(volume, float(volume_m3)),),
        sensors=tuple(SensorConfig(s.link, s.addr, volume, s.rate_hz) for s in sensors),
        rate_hz=rate_hz,
        **kwargs,
    )
