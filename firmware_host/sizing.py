"""What a monitor configuration makes the core allocate, computed and bounded.

``layout(config)`` gives the ring-buffer tiers (period, slots, the windows on
each), the temperature-lag history and the spike register, with their bytes:
the same numbers ``stages.windows.WindowBank`` and ``stages.conditioning``
then allocate (the window bank takes its tiers from here).  ``check_sizing``
raises ``ConfigError`` naming the key that makes the total exceed
``MAX_BYTES``; ``config_from_dict`` (so ``config check`` and ``monitor``) and
``MonitorCore`` both call it, so a configuration that passes starts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from common.errors import ConfigError
from firmware_host.ringbuffer import NSUM

if TYPE_CHECKING:
    from firmware_host.config import MonitorConfig

#: The most the core's buffers may take (bytes): a board has a few hundred MiB.
MAX_BYTES = 256 * 2**20
#: Bytes per slot and channel: time and pressure float64, temperature and count float32.
SLOT_BYTES = 8 + 8 + 4 + 4
TIER_NAMES = ("raw", "1-s", "60-s")
#: The fewest slots of a tier (the shortest window has 3).
MIN_TIER_SLOTS = 3
KEEP_KEYS = ("estimator.raw_keep_s", "estimator.mid_keep_s", "estimator.slow_keep_s")


@dataclass(frozen=True)
class TierLayout:
    """One tier: a slot every ``period_s`` s, ``length`` slots per channel (each
    written twice), the configured windows on it as (window index, slots),
    ``extra_slots`` of the rapid-depressurization window (0: none), the
    pushes between exact rebuilds of its sums, and the key that sets ``length``."""

    period_s: float
    length: int
    windows: tuple[tuple[int, int], ...]
    extra_slots: int
    rebase_every: int
    key: str
    nbytes: int

    @property
    def window_slots(self) -> list[int]:
        """Slots of every window on this tier, the extra window last."""
        return [m for _, m in self.windows] + ([self.extra_slots] if self.extra_slots else [])


@dataclass(frozen=True)
class Sizing:
    """The core's buffers for ``n_channels`` channels; sizes in bytes."""

    n_channels: int
    tiers: tuple[TierLayout, ...]
    lag_ticks: int
    lag_bytes: int
    register_bytes: int

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in self.tiers) + self.lag_bytes + self.register_bytes

    def summary(self) -> str:
        """One line: ``ring buffer: raw 600 x 0.1 s, ... ; 12 channels, 1.2 MiB``."""
        tiers = ", ".join(
            f"{name} {t.length} x {t.period_s:g} s"
            for name, t in zip(TIER_NAMES, self.tiers, strict=True)
        )
        return (
            f"ring buffer: {tiers}; {self.n_channels} channels, "
            f"{self.nbytes / 2**20:.1f} MiB (limit {MAX_BYTES // 2**20} MiB)"
        )


def tier_periods(rate_hz: float) -> tuple[float, float, float]:
    """Slot periods (s) of the three tiers at a loop of ``rate_hz``."""
    dt = 1.0 / rate_hz
    return dt, max(1.0, dt), max(60.0, dt)


def estimation_period_s(config: MonitorConfig) -> float:
    """How often (s) the full estimation runs: ``slow_period_s``, but never more
    often than the loop ticks or than the fastest sensor delivers a sample
    (between two samples of the fastest sensor there is nothing new to estimate:
    two 0.2 Hz barometers on a 1 Hz loop are estimated every 5 s)."""
    periods = [config.estimator.slow_period_s, 1.0 / config.rate_hz]
    if config.sensors:
        periods.append(min(1.0 / s.rate_hz for s in config.sensors))
    return max(periods)


def quiet_period_s(config: MonitorConfig) -> float:
    """How often (s) the full estimation runs while every volume is quiet:
    ``quiet_period_s`` as a whole number of estimation periods (at least one)."""
    period = estimation_period_s(config)
    return period * max(1, round(config.estimator.quiet_period_s / period))


def lag_periods(config: MonitorConfig) -> int:
    """Estimation periods by which pressure slopes are delayed for temperature
    compensation: the sensors' temperature lag less their pressure lag."""
    est = config.estimator
    lag = max(0.0, est.temp_lag_s - est.pressure_lag_s)
    return int(round(lag / estimation_period_s(config)))


def layout(config: MonitorConfig) -> Sizing:
    """The tiers and buffers ``config`` implies (no allocation; any finite numbers)."""
    est = config.estimator
    C = len(config.sensors)
    periods = tier_periods(config.rate_hz)
    keeps = (est.raw_keep_s, est.mid_keep_s, est.slow_keep_s)
    assign: list[list[tuple[int, int]]] = [[], [], []]
    for j, w in enumerate(config.windows_s):
        for k, per in enumerate(periods):
            m = max(3, int(round(w / per)))
            if m <= est.max_window_slots or k == len(periods) - 1 or j == 0:
                assign[k].append((j, m))
                break
    em_m = int(round(est.emergency_window_s / periods[0])) if est.emergency_window_s else 0
    em_m = em_m if em_m >= 3 else 0
    tiers = []
    for k, per in enumerate(periods):
        keep_slots = int(math.ceil(keeps[k] / per))
        length, key = keep_slots, KEEP_KEYS[k]
        for j, m in assign[k]:
            if m > length:
                length, key = m, f"windows_s[{j}]"
        extra = em_m if k == 0 else 0
        if extra > length:
            length, key = extra, "estimator.emergency_window_s"
        length = max(length, MIN_TIER_SLOTS)  # a keep time of 0 and no window: still a tier
        slots = [m for _, m in assign[k]] + ([extra] if extra else [])
        cache = max(slots) if slots else 0
        nbytes = (2 * length * SLOT_BYTES + cache * NSUM * 8 + 2 * len(slots) * NSUM * 8) * C
        rebase = max(1, int(round(est.rebase_s / per)))
        tiers.append(TierLayout(per, length, tuple(assign[k]), extra, rebase, key, nbytes))
    lag_ticks = lag_periods(config)
    lag_bytes = (lag_ticks + 1) * 2 * len(config.windows_s) * C * 8
    register_bytes = 3 * (2 * config.health.spike_max_samples + 1) * C * 8
    return Sizing(C, tuple(tiers), lag_ticks, lag_bytes, register_bytes)


def check_sizing(config: MonitorConfig) -> Sizing:
    """``layout(config)``, or ``ConfigError`` naming the key whose buffer breaks
    ``MAX_BYTES`` (the largest part when the total does)."""
    size = layout(config)
    if size.nbytes <= MAX_BYTES:
        return size
    parts = [
        (
            t.nbytes,
            t.key,
            f"the {name} tier would hold {t.length} slots of {t.period_s:g} s",
        )
        for name, t in zip(TIER_NAMES, size.tiers, strict=True)
    ]
    parts.append(
        (
            size.lag_bytes,
            "estimator.temp_lag_s",
            f"the temperature-lag history would hold {size.lag_ticks} estimation periods",
        )
    )
    nbytes, key, what = max(parts, key=lambda p: p[0])
    if key.startswith(("windows_s", "estimator.raw_keep_s", "estimator.emergency")):
        what += f" at loop.rate_hz = {config.rate_hz:g}"
    raise ConfigError(
        config.source,
        key,
        f"{what} for {size.n_channels} channels: {_mib(size.nbytes)} of buffers "
        f"(limit {MAX_BYTES // 2**20} MiB)",
    )


def _mib(nbytes: int) -> str:
    mib = nbytes / 2**20
    return f"{mib:.0f} MiB" if mib < 1e6 else f"{mib:.2g} MiB"
