"""Monitor configuration: volumes, sensors, hatches, windows, limit sets.

``load_config(path)`` reads TOML (``tomllib``); ``config_from_dict(data, source)``
validates a plain dict.  Every mistake raises ``ConfigError(path, dotted key,
problem)``; unknown keys are rejected, except the top-level tables ``links``,
``outputs``, ``display`` and ``station``, which belong to the runtime and are kept verbatim
in ``MonitorConfig.extra``.

Units are in the names: ``_pa`` pascal, ``_s`` seconds, ``_hz`` hertz, ``_m3``
cubic metres, ``_kg_day`` kilograms per day, ``_pa_min`` pascal per minute.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from common import bounds
from common.tomltable import Table, read_toml
from firmware_host.sizing import check_sizing

#: 520 mmHg, a quoted physiological limit on the ISS (PHYSICS.md).
DEFAULT_P_MIN_PA = 69_300.0
DEFAULT_WINDOWS_S = (10.0, 60.0, 600.0, 1800.0, 7200.0)
#: Top-level tables owned by the runtime, passed through untouched.
PASSTHROUGH_TABLES = ("links", "outputs", "display", "station")


@dataclass(frozen=True)
class VolumeConfig:
    """A pressurized volume (module, tunnel) of ``volume_m3`` cubic metres."""

    name: str
    volume_m3: float


@dataclass(frozen=True)
class SensorConfig:
    """One transducer: ``addr`` on ``link``, mounted in ``volume``.

    ``rate_hz`` is the expected output rate (for staleness); ``range_pa`` the
    calibrated range (min, max) in pascal; ``name`` what people call it (may
    be empty), used in messages.
    """

    link: str
    addr: int
    volume: str
    rate_hz: float = 10.0
    range_pa: tuple[float, float] = (0.0, 130_000.0)
    name: str = ""

    @property
    def sensor_id(self) -> str:
        """``"link:addr"``, the name used in events' sources and keys."""
        return f"{self.link}:{self.addr}"

    @property
    def label(self) -> str:
        """How messages name it: ``"name (link:addr)"``, or ``"link:addr"`` without a name."""
        return f"{self.name} ({self.sensor_id})" if self.name else self.sensor_id


@dataclass(frozen=True)
class HatchConfig:
    """A hatch between two volumes; ``open`` is its initial state."""

    name: str
    volume_a: str
    volume_b: str
    open: bool = True


@dataclass(frozen=True)
class Limits:
    """One named limit set.  Times in s, rates as named.

    * CAUTION (leak): fused mass loss above ``caution_leak_kg_day`` and at least
      ``caution_sigma`` standard errors above zero.
    * WARNING: straight-line reserve time below ``warning_reserve_s``.
    * EMERGENCY: pressure falling faster than ``emergency_rate_pa_min`` by
      ``emergency_sigma`` standard errors, or reserve below ``emergency_reserve_s``.
      Also, at once (no persistence), when at least two healthy sensors of a
      volume each read a drop below the median of their previous samples of more
      than ``emergency_drop_sigma`` times their usual scatter plus what the rate
      limit allows over that time (0: off): the fastest leaks show in the first
      sample after they open, long before a fitted slope is significant.
    * Each level is raised after its persistence and clears after the
      condition has been below the limit by the ``hysteresis`` fraction for
      ``clear_s``.  CAUTION and the reserve alarms clear only on evidence: the
      estimate ``clear_sigma`` standard errors towards the worse side must be
      inside the limit with the hysteresis (a noisy reading that merely fails
      to be significant clears nothing).  With two or more healthy sensors in a volume at least two
      must vote: each one's own estimate above ``vote_fraction`` of the limit
      and ``vote_sigma`` standard errors from zero.

    The default CAUTION limit, 2 kg/day, is about twice the whole station's
    design leakage (0.9 kg/day, PHYSICS.md): the PrK crack (0.45-1.7 kg/day)
    is watched on its estimate, a leak like Soyuz MS-09's (21 kg/day) alarms.
    """

    caution_leak_kg_day: float = 2.0
    caution_sigma: float = 5.0
    caution_persistence_s: float = 10.0
    warning_reserve_s: float = 12 * 3600.0
    warning_persistence_s: float = 10.0
    emergency_rate_pa_min: float = 67.0
    emergency_sigma: float = 3.0
    emergency_reserve_s: float = 3600.0
    emergency_persistence_s: float = 1.0
    emergency_drop_sigma: float = 6.0
    advisory_persistence_s: float = 0.0
    hysteresis: float = 0.2
    clear_s: float = 30.0
    clear_sigma: float = 2.0
    vote_fraction: float = 0.5
    vote_sigma: float = 2.0


def default_limit_sets() -> dict[str, Limits]:
    """``flight`` (defaults) and ``ground-test`` (leak checks with open vents off)."""
    return {
        "flight": Limits(),
        "ground-test": Limits(caution_leak_kg_day=50.0, warning_reserve_s=3600.0),
    }


@dataclass(frozen=True)
class EstimatorConfig:
    """Ring buffer and estimator tuning.

    A window of W s goes on the finest tier (loop period, 1 s, 60 s) where it
    spans at most ``max_window_slots`` slots.  ``raw_keep_s``/``mid_keep_s``/
    ``slow_keep_s`` are the minimum history per tier.  Running sums are rebuilt
    exactly every ``rebase_s``.  ``consistency_sigma``: a longer window is used
    for the best estimate only while its slope agrees with the shorter one.
    ``temp_lag_s``/``pressure_lag_s``: time constants of the sensors' temperature
    and pressure readings; compensation delays the pressure slope by the
    difference so both describe the same moment.  ``slow_period_s``: period of
    the full estimation (fusion, health, leak alarms), at least the loop's period
    and the fastest sensor's sample period; the raw tier and the
    rapid-depressurization alarm run every tick.  While every volume is quiet
    (no leak alarm pending or raised, no hatch settling, no onset being held,
    every estimated loss below half the CAUTION limit) the full estimation runs
    every ``quiet_period_s`` instead (rounded to a multiple of the period; 0:
    never slower).  That alarm looks at the raw-tier
    windows up to ``emergency_max_window_s`` plus an extra short window of
    ``emergency_window_s`` (0: none), each only where a sensor has at least
    ``emergency_min_samples`` samples in it.
    """

    max_window_slots: int = 2000
    raw_keep_s: float = 60.0
    mid_keep_s: float = 3600.0
    slow_keep_s: float = 86400.0
    rebase_s: float = 600.0
    discharge_coefficient: float = 0.61
    consistency_sigma: float = 4.0
    min_fill: float = 0.95
    emergency_max_window_s: float = 60.0
    emergency_window_s: float = 4.0
    emergency_min_samples: int = 8
    regime_min_decay: float = 0.08
    regime_max_sigma: float = 0.25
    hatch_settle_s: float = 30.0
    clock_drift_ppm: float = 200.0
    temp_lag_s: float = 20.0
    slow_period_s: float = 1.0
    quiet_period_s: float = 10.0
    pressure_lag_s: float = 0.5


@dataclass(frozen=True)
class HealthConfig:
    """Sensor health thresholds.

    Stale after ``stale_periods`` expected sample periods without data; stuck
    after ``stuck_samples`` identical pressures; spike when a sample differs
    from the median of it and its ``spike_max_samples`` neighbours on each side
    by more than ``spike_pa`` (or ``spike_temp_k``; up to that many outliers in
    a row, at the cost of that many samples of delay); noisy when its residual
    scatter is ``noisy_ratio`` times both that of the quietest sensor of its
    volume and its own usual scatter (learnt over ``noisy_learn_s``);
    disagreement when a sensor's level differs from its volume's median by
    ``disagree_pa`` or its slope, in any window up to ``disagree_max_window_s``,
    by more than ``disagree_rate_pa_s`` and ``disagree_sigma`` standard errors
    (``disagree_window_s``: the window whose scatter tells a noisy sensor).  A fault
    stays for at least ``fault_hold_s``; a sensor rejoins after ``recover_s``
    healthy.
    """

    stale_periods: float = 3.0
    stuck_samples: int = 20
    spike_pa: float = 150.0
    spike_temp_k: float = 2.0
    spike_max_samples: int = 3
    noisy_ratio: float = 4.0
    noisy_learn_s: float = 600.0
    disagree_pa: float = 100.0
    disagree_rate_pa_s: float = 0.005
    disagree_sigma: float = 5.0
    disagree_window_s: float = 60.0
    disagree_max_window_s: float = 600.0
    fault_hold_s: float = 5.0
    recover_s: float = 30.0
    temp_range_c: tuple[float, float] = (-40.0, 85.0)


@dataclass(frozen=True)
class MonitorConfig:
    """Everything the monitor core needs; see module docstring for units."""

    volumes: tuple[VolumeConfig, ...]
    sensors: tuple[SensorConfig, ...]
    hatches: tuple[HatchConfig, ...] = ()
    p_min_pa: float = DEFAULT_P_MIN_PA
    t_ref_k: float = 295.15
    windows_s: tuple[float, ...] = DEFAULT_WINDOWS_S
    rate_hz: float = 10.0
    limit_sets: dict[str, Limits] = field(default_factory=default_limit_sets)
    limit_set: str = "flight"
    estimator: EstimatorConfig = field(default_factory=EstimatorConfig)
    health: HealthConfig = field(default_factory=HealthConfig)
    extra: dict[str, Any] = field(default_factory=dict)
    source: str = "<built-in>"

    @property
    def limits(self) -> Limits:
        """The active limit set."""
        return self.limit_sets[self.limit_set]

    def volume(self, name: str) -> VolumeConfig:
        for v in self.volumes:
            if v.name == name:
                return v
        raise KeyError(name)


# --- validation --------------------------------------------------------------

#: Integer keys of [estimator], [health] and [limits.*]: (lo, hi).  The ring
#: buffer's sizes are bounded as a whole by ``firmware_host.sizing``.
INT_RANGES: dict[str, tuple[int, int]] = {
    "max_window_slots": (3, 1_000_000),
    "emergency_min_samples": (1, 1_000_000),
    "stuck_samples": (1, 1_000_000_000),
    "spike_max_samples": (1, 100),
}
#: Number keys whose range is not the one their unit implies (``_range_of``).
NUM_RANGES: dict[str, bounds.Range] = {
    "noisy_learn_s": bounds.DURATION_S,  # divides
}


def _range_of(name: str) -> bounds.Range:
    """The range of a number key of [estimator], [health] or [limits.*] by its unit:
    times ``_s`` 0..10 years, pressures ``_pa`` 0..1e7, other numbers 0..1e6."""
    if name in NUM_RANGES:
        return NUM_RANGES[name]
    if name.endswith("_s"):
        return bounds.TIME_S
    if name.endswith("_pa"):
        return bounds.Range(0.0, bounds.PRESSURE_PA.hi)
    return bounds.FACTOR


def _dataclass_table(t: Table, cls: type, base: Any = None) -> Any:
    """Dataclass ``cls`` (all fields defaulted, or as in ``base``) with the keys of
    table ``t``: pairs ``[min, max]``, integers (``INT_RANGES``, else >= 1), numbers
    (>= 0, in ``_range_of``), strings, booleans."""
    base = base if base is not None else cls()
    kwargs = {}
    for f in fields(cls):
        if not t.has(f.name):
            continue
        default = getattr(base, f.name)
        if isinstance(default, tuple):
            kwargs[f.name] = t.pair(f.name)
        elif isinstance(default, bool):
            kwargs[f.name] = t.bool(f.name)
        elif isinstance(default, int):
            lo, hi = INT_RANGES.get(f.name, (1, 2**31 - 1))
            kwargs[f.name] = t.int(f.name, lo=lo, hi=hi)
        elif isinstance(default, float):
            kwargs[f.name] = t.num(f.name, min=0.0, rng=_range_of(f.name))
        else:
            kwargs[f.name] = t.str(f.name)
    t.done()
    return replace(base, **kwargs)


def config_from_dict(data: dict, source: str) -> MonitorConfig:
    """Validate ``data`` (as parsed from TOML) into a ``MonitorConfig``.

    ``source`` names the file in error messages.  Raises ``ConfigError``.
    """
    top = Table(source, "", data)

    # volumes
    if not top.has("volumes") or not isinstance(data["volumes"], list) or not data["volumes"]:
        raise top.err("volumes", "at least one [[volumes]] entry is required")
    volumes: list[VolumeConfig] = []
    for t in top.tables("volumes"):
        name = t.ident("name")
        if any(v.name == name for v in volumes):
            raise t.err("name", f"duplicate volume {name!r}")
        volumes.append(VolumeConfig(name, t.num("volume_m3", positive=True, rng=bounds.VOLUME_M3)))
        t.done()
    vol_names = {v.name for v in volumes}

    # sensors
    if not top.has("sensors") or not isinstance(data["sensors"], list) or not data["sensors"]:
        raise top.err("sensors", "at least one [[sensors]] entry is required")
    sensors: list[SensorConfig] = []
    seen: set[tuple[str, int]] = set()
    names: set[str] = set()
    for t in top.tables("sensors"):
        sname = t.str("name", "")  # may be empty: messages then use link:addr
        if sname:
            sname = t.ident("name")
        if sname and sname in names:
            raise t.err("name", f"duplicate sensor name {sname!r}")
        names.add(sname)
        link = t.ident("link")
        addr = t.int("addr", lo=1, hi=250)  # per driver: runtime.runconfig
        vol = t.str("volume")
        if not link or ":" in link:
            raise t.err("link", "must be a non-empty name without ':'")
        if (link, addr) in seen:
            raise t.err("addr", f"duplicate sensor {link}:{addr}")
        seen.add((link, addr))
        if vol not in vol_names:
            raise t.err("volume", f"unknown volume {vol!r}")
        rate = t.num("rate_hz", 10.0, positive=True, rng=bounds.RATE_HZ)
        rng = t.pair("range_pa", (0.0, 130_000.0))
        sensors.append(SensorConfig(link, addr, vol, rate, rng, sname))
        t.done()

    # hatches
    hatches: list[HatchConfig] = []
    for t in top.tables("hatches"):
        name = t.ident("name")
        if any(h.name == name for h in hatches):
            raise t.err("name", f"duplicate hatch {name!r}")
        a = t.str("volume_a")
        b = t.str("volume_b")
        for k, v in (("volume_a", a), ("volume_b", b)):
            if v not in vol_names:
                raise t.err(k, f"unknown volume {v!r}")
        if a == b:
            raise t.err("volume_b", "a hatch joins two different volumes")
        hatches.append(HatchConfig(name, a, b, t.bool("open", True)))
        t.done()

    p_min = top.num("p_min_pa", DEFAULT_P_MIN_PA, positive=True, rng=bounds.PRESSURE_PA)
    t_ref = top.num("t_ref_k", 295.15, positive=True, rng=bounds.Range(1.0, 1273.15))

    windows = top.raw("windows_s", list(DEFAULT_WINDOWS_S))
    if not isinstance(windows, list) or not windows:
        raise top.err("windows_s", "must be a non-empty list of seconds")
    win = tuple(
        top.check_num(w, f"windows_s[{i}]", positive=True, rng=bounds.DURATION_S)
        for i, w in enumerate(windows)
    )
    if list(win) != sorted(set(win)):
        raise top.err("windows_s", "must be strictly increasing")

    loop = top.sub("loop")
    rate_hz = loop.num("rate_hz", 10.0, positive=True, rng=bounds.RATE_HZ)
    loop.done()
    if win[0] * rate_hz < 3:
        raise top.err("windows_s[0]", "shortest window must span at least 3 loop ticks")

    estimator = _dataclass_table(top.sub("estimator"), EstimatorConfig)
    health = _dataclass_table(top.sub("health"), HealthConfig)

    limit_sets = default_limit_sets()
    raw_limits = top.sub("limits")
    for name in raw_limits.data:
        t = raw_limits.sub(name)
        lim = _dataclass_table(t, Limits, base=limit_sets.get(name, Limits()))
        if not 0 <= lim.hysteresis < 1:
            raise t.err("hysteresis", "must be a fraction in [0, 1)")
        if not 0 < lim.vote_fraction <= 1:
            raise t.err("vote_fraction", "must be a fraction in (0, 1]")
        limit_sets[name] = lim
    active = top.str("limit_set", "flight")
    if active not in limit_sets:
        raise top.err("limit_set", f"unknown limit set {active!r} (have {sorted(limit_sets)})")

    extra = {k: data[k] for k in PASSTHROUGH_TABLES if top.has(k)}
    top.done()
    config = MonitorConfig(
        volumes=tuple(volumes),
        sensors=tuple(sensors),
        hatches=tuple(hatches),
        p_min_pa=p_min,
        t_ref_k=t_ref,
        windows_s=win,
        rate_hz=rate_hz,
        limit_sets=limit_sets,
        limit_set=active,
        estimator=estimator,
        health=health,
        extra=extra,
        source=source,
    )
    check_sizing(config)  # what the core will allocate, bounded: "OK" means it starts
    return config


def load_config(path: str | Path) -> MonitorConfig:
    """Read and validate a TOML configuration file.  Raises ``ConfigError``."""
    return config_from_dict(read_toml(path), str(Path(path)))
