"""The monitor core: samples in, estimates and alarm events out.  No I/O, no clock.

``MonitorCore.ingest(link, records, host_time_s)`` takes decoded SAMPLE records
(``drivers.frames.SAMPLE_RECORD_DTYPE``) of one link; ``tick(now_s)`` turns the
samples that arrived since the last tick into one ring-buffer slot per channel,
updates the slopes of every window, sensor health, the per-volume fused
estimates and the alarms, and returns a ``TickResult``.  All per-sample and
per-channel work is vectorized in numpy; Python loops run over windows, volumes
and the (few) alarms that are not idle.  See docs/monitor.md.

Units: time s (host clock), pressure Pa, temperature deg C in records and K in
estimates, slopes Pa/s, mass rates kg/day, hole diameter mm.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache, cached_property

import numpy as np

from drivers.protocol import Status
from firmware_host.alarms import (
    ActiveAlarm,
    Alarm,
    AlarmEvent,
    AlarmKind,
    AlarmLevel,
    AlarmState,
)
from firmware_host.config import Limits, MonitorConfig
from firmware_host.ringbuffer import KELVIN, Fit, Tier

R_AIR = 287.05  # J/(kg K)
GAMMA = 1.4
#: (2/(gamma+1))^((gamma+1)/(2(gamma-1))), the choked-flow factor.
CHOKE = (2.0 / (GAMMA + 1.0)) ** ((GAMMA + 1.0) / (2.0 * (GAMMA - 1.0)))
SECONDS_PER_DAY = 86400.0
#: A module's typical temperature rate (K/s): 1 K of orbital swing over 92 minutes.
THERMAL_RATE_K_S = 2 * math.pi / 5520.0
#: A raw slope that fell by more than this many typical thermal rates within the
#: temperature lag is a leak's onset, not a thermal swing (see ``_fuse``).
THERMAL_JUMP = 2.0
#: After such an onset a window up to this long (s) keeps using the undelayed slope
#: until its delayed copy has passed the onset (lag + window).
JUMP_HOLD_MAX_WINDOW_S = 60.0
#: Smallest slope standard error used as a weight (Pa/s).
SE_FLOOR = 1e-6


@cache
def _median_d2_white(n: int) -> float:
    """E[median of the squared successive differences of ``n`` white samples] / (2 sigma^2):
    0.455 for many samples, 0.66 for the 6 differences of a 7-sample register.
    Computed once per ``n`` (a fixed seed, 4000 draws: within about 1 %)."""
    z = np.random.default_rng(0).standard_normal((4000, n))
    return float(np.median(np.diff(z, axis=1) ** 2, axis=1).mean()) / 2.0


class HealthState(enum.Enum):
    """A sensor's standing in its volume's estimates."""

    NO_DATA = "no_data"
    OK = "ok"
    FAULTED = "faulted"
    RECOVERING = "recovering"


class FaultKind(enum.IntFlag):
    """Sensor faults (bit flags)."""

    STALE = 1
    STUCK = 2
    OUT_OF_RANGE = 4
    STATUS = 8
    REBOOT = 16
    SPIKE = 32
    DISAGREE = 64
    NOISY = 128


FAULT_KINDS = tuple(FaultKind)
_DIS = FAULT_KINDS.index(FaultKind.DISAGREE)
_NOISY = FAULT_KINDS.index(FaultKind.NOISY)
#: Faults that are the sensor's own (all but disagreement, where a pair cannot tell).
_OWN = np.array([i for i in range(len(FAULT_KINDS)) if i != _DIS])
FAULT_ALARM = {
    FaultKind.STALE: AlarmKind.SENSOR_STALE,
    FaultKind.STUCK: AlarmKind.SENSOR_STUCK,
    FaultKind.OUT_OF_RANGE: AlarmKind.SENSOR_OUT_OF_RANGE,
    FaultKind.STATUS: AlarmKind.SENSOR_STATUS,
    FaultKind.REBOOT: AlarmKind.SENSOR_REBOOT,
    FaultKind.SPIKE: AlarmKind.SENSOR_SPIKE,
    FaultKind.DISAGREE: AlarmKind.SENSOR_DISAGREE,
    FaultKind.NOISY: AlarmKind.SENSOR_NOISY,
}
_STATUS_RANGE_BITS = int(Status.PRESSURE_OUT_OF_RANGE | Status.TEMPERATURE_OUT_OF_RANGE)
_STATUS_FAULT_BITS = int(Status.SELF_TEST_FAILED | Status.ADC_SATURATED | Status.WARMING_UP)
_STATUS_BAD_BITS = _STATUS_RANGE_BITS | _STATUS_FAULT_BITS
_CONFIG_CHANGED = int(Status.CONFIG_CHANGED)


class Regime(enum.Enum):
    """Flow regime of a leak, told from the shape of the decay."""

    UNKNOWN = "unknown"
    ORIFICE = "orifice"  # dP/dt ~ -P (exponential decay)
    CRACK = "crack"  # dP/dt ~ -P^2 (1/P linear in time)


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

    def to_json_dict(self) -> dict:
        d = {k: _num(getattr(self, k)) for k in self.__dataclass_fields__ if k != "dpdt"}
        d["group"] = list(self.group)
        d["regime"] = self.regime.name
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


def _num(x):
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, (np.floating, np.integer)):
        x = x.item()
        return None if isinstance(x, float) and not math.isfinite(x) else x
    return x


@dataclass(frozen=True)
class _TickData:
    """Arrays behind a TickResult (never mutated after the tick)."""

    core: MonitorCore
    vol: dict
    sens: dict


@dataclass(frozen=True)
class TickResult:
    """What one tick produced: events, and (built on first access) the estimates."""

    t_s: float
    tick: int
    n_samples: int
    events: tuple[AlarmEvent, ...]
    _data: _TickData = field(repr=False, compare=False)

    @cached_property
    def volumes(self) -> tuple[VolumeEstimate, ...]:
        return self._data.core._build_volumes(self._data.vol)

    @cached_property
    def sensors(self) -> tuple[SensorEstimate, ...]:
        return self._data.core._build_sensors(self._data.sens, self.t_s)

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


# --- volume alarm families ---------------------------------------------------


@dataclass(frozen=True)
class _Family:
    kind: AlarmKind
    level: AlarmLevel
    unit: str


_VOLUME_FAMILIES = (
    _Family(AlarmKind.LEAK, AlarmLevel.CAUTION, "kg/day"),
    _Family(AlarmKind.LOW_RESERVE, AlarmLevel.WARNING, "s"),
    _Family(AlarmKind.RAPID_DEPRESS, AlarmLevel.EMERGENCY, "Pa/min"),
    _Family(AlarmKind.RESERVE_CRITICAL, AlarmLevel.EMERGENCY, "s"),
)


_TRUE = np.ones(1, dtype=bool)


def _group_starts(ch: np.ndarray) -> np.ndarray:
    """Start index of each run of equal values in sorted ``ch``."""
    return np.flatnonzero(np.concatenate((_TRUE, ch[1:] != ch[:-1])))


def _fuse_slopes(slope, se, use, M, vch):
    """Inverse-variance mean of each volume's usable channels, ``(nW, C) -> (nW, V)``.

    The error is inflated by the Birge ratio when the channels scatter more
    than their own errors say.
    """
    valid = use & np.isfinite(slope) & np.isfinite(se)
    w = np.where(valid, 1.0 / np.maximum(se, SE_FLOOR) ** 2, 0.0)
    sv = np.where(valid, slope, 0.0)
    sw = w @ M.T
    f = (w * sv) @ M.T / sw
    resid = np.where(valid, (sv - f[:, vch]) ** 2 * w, 0.0) @ M.T
    cnt = valid.astype(float) @ M.T
    birge = np.sqrt(np.maximum(1.0, resid / np.maximum(cnt - 1, 1)))
    return f, birge / np.sqrt(sw)


class MonitorCore:
    """The monitor's decision core; see module docstring.

    ``replay=True`` marks every event as replayed and never calls the live
    response hooks (``add_response``).
    """

    def __init__(self, config: MonitorConfig, *, replay: bool = False):
        self.config = config
        self.replay = bool(replay)
        self.limits: Limits = config.limits
        self._responses: list[Callable[[AlarmEvent], None]] = []
        est, hc = config.estimator, config.health

        # channels and volumes
        self.sensors = config.sensors
        C = self.n_channels = len(self.sensors)
        self.sensor_ids = [s.sensor_id for s in self.sensors]
        self.volume_names = [v.name for v in config.volumes]
        self.volume_m3 = np.array([v.volume_m3 for v in config.volumes])
        V = len(self.volume_names)
        vidx = {n: i for i, n in enumerate(self.volume_names)}
        self.ch_vol = np.array([vidx[s.volume] for s in self.sensors], dtype=np.int64)
        self.member = np.zeros((V, C))
        self.member[self.ch_vol, np.arange(C)] = 1.0
        # padded (V, Smax) table of channel indices for per-volume medians
        smax = max(1, int(self.member.sum(axis=1).max()))
        self._vol_table = np.full((V, smax), -1, dtype=np.int64)
        for v in range(V):
            chs = np.flatnonzero(self.ch_vol == v)
            self._vol_table[v, : len(chs)] = chs
        self._lut: dict[str, np.ndarray] = {}
        for c, s in enumerate(self.sensors):
            self._lut.setdefault(s.link, np.full(256, -1, dtype=np.int64))[s.addr] = c
        self.links = sorted(self._lut)
        self.unknown: dict[str, int] = {}
        self.range_lo = np.array([s.range_pa[0] for s in self.sensors])
        self.range_hi = np.array([s.range_pa[1] for s in self.sensors])
        self.sensor_rate_hz = np.array([s.rate_hz for s in self.sensors])
        self.stale_after_s = hc.stale_periods / self.sensor_rate_hz

        # hatches and groups
        self.hatch_open = {h.name: h.open for h in config.hatches}
        self._hatch = {h.name: (vidx[h.volume_a], vidx[h.volume_b]) for h in config.hatches}
        self.group_changed_t = np.full(V, -np.inf)
        self._settled_from_c: np.ndarray | None = None  # set by set_hatch
        self._compute_groups()

        # tiers and windows
        self.dt_tick = 1.0 / config.rate_hz
        periods = [self.dt_tick, max(1.0, self.dt_tick), max(60.0, self.dt_tick)]
        keeps = [est.raw_keep_s, est.mid_keep_s, est.slow_keep_s]
        assign: list[list[tuple[int, int]]] = [[], [], []]  # (global window, slots)
        self.windows_s = np.asarray(config.windows_s, dtype=float)
        self.win_tier = np.zeros(len(self.windows_s), dtype=np.int64)
        for j, w in enumerate(self.windows_s):
            for k, per in enumerate(periods):
                m = max(3, int(round(w / per)))
                if m <= est.max_window_slots or k == len(periods) - 1 or j == 0:
                    assign[k].append((j, m))
                    self.win_tier[j] = k
                    break
        self.tiers: list[Tier] = []
        self._tier_windows: list[np.ndarray] = []
        # an extra short window on the raw tier, only for the rapid-depressurization test
        em_m = int(round(est.emergency_window_s / self.dt_tick)) if est.emergency_window_s else 0
        self._em_window = em_m >= 3
        for k, per in enumerate(periods):
            slots = [m for _, m in assign[k]]
            if k == 0 and self._em_window:
                slots.append(em_m)
            length = max([int(math.ceil(keeps[k] / per))] + slots)
            rebase = max(1, int(round(est.rebase_s / per)))
            self.tiers.append(Tier(C, per, length, slots, config.t_ref_k, rebase))
            self._tier_windows.append(np.array([j for j, _ in assign[k]], dtype=np.int64))
        self._bin = [None, None, None]  # current bin index of decimated tiers
        self._bin_acc = np.zeros((2, 4, C))
        nW = len(self.windows_s)
        self._fit_cache: list[Fit | None] = [None, None, None]
        fast = self.windows_s <= est.emergency_max_window_s
        self._fast_windows = np.flatnonzero(fast) if fast.any() else np.array([0])
        dis = np.flatnonzero(self.windows_s <= hc.disagree_window_s)
        self._dis_window = int(dis[-1]) if len(dis) else 0
        # slopes are compared over every window up to disagree_max_window_s
        dws = np.flatnonzero(self.windows_s <= max(hc.disagree_max_window_s, self.windows_s[0]))
        self._dis_windows = dws
        self._nW = nW
        # full estimation runs every slow_period_s (a rate group); the fast path
        # (ingest, raw tier, rapid-depressurization alarm) runs every tick
        self._slow_period_s = max(est.slow_period_s, self.dt_tick)
        self._next_slow_s = -math.inf
        self._slow_count = 0
        # the rapid-depressurization test runs every tick: only windows on the raw tier
        on_raw = self._fast_windows[self.win_tier[self._fast_windows] == 0]
        self._fast_windows = on_raw if len(on_raw) else np.array([0])
        self._fast_local = np.searchsorted(self._tier_windows[0], self._fast_windows)
        if self._em_window:
            self._fast_local = np.append(self._fast_local, len(self._tier_windows[0]))
        self._em_min_slots = est.emergency_min_samples
        # lengths (s) of the windows the rapid-depressurization test reads
        self._rapid_window_s = self.windows_s[self._fast_windows]
        if self._em_window:
            self._rapid_window_s = np.append(self._rapid_window_s, em_m * self.dt_tick)
        lag = max(0.0, est.temp_lag_s - est.pressure_lag_s)
        self._lag_ticks = int(round(lag / self._slow_period_s))
        self._lag_s = self._lag_ticks * self._slow_period_s
        # per (window, volume): until when the undelayed slope is used after a jump
        self._jump_until = np.full((len(self.windows_s), len(self.volume_names)), -np.inf)
        self._lag_hist = np.full((self._lag_ticks + 1, 2, nW, C), np.nan)

        # per-channel ingest state
        self.last_t_us = np.zeros(C, dtype=np.int64)
        self.has_t = np.zeros(C, dtype=bool)
        self.clock_off = np.zeros(C)
        self.clock_upd = np.zeros(C)
        self.clock_anchor = np.full((2, C), np.nan)  # sensor s, offset at anchor
        self.clock_rate_ppm = np.full(C, np.nan)
        self.last_raw_p = np.full(C, np.nan)
        self.stuck_run = np.zeros(C, dtype=np.int64)
        # the last two valid samples (t_host, p, T) of each channel, for the median filter
        self.H1 = np.zeros((4, C))
        self.H1[0] = 1.0
        # registers of the last 2h+1 valid samples (t_host, p, T) for the median filter
        self._reg_h = int(hc.spike_max_samples)
        self._reg_w = 2 * self._reg_h + 1
        self.Rt = np.zeros((C, self._reg_w))
        self.Rp = np.zeros((C, self._reg_w))
        self.RT = np.zeros((C, self._reg_w))
        self.reg_n = np.zeros(C, dtype=np.int64)
        self._med_d2 = _median_d2_white(self._reg_w)
        self.has1 = np.zeros(C, dtype=bool)
        self._drift_allow = est.clock_drift_ppm * 1e-6
        self._range_mid = (self.range_lo + self.range_hi) / 2
        self._range_half = (self.range_hi - self.range_lo) / 2
        self._temp_mid = sum(hc.temp_range_c) / 2
        self._temp_half = (hc.temp_range_c[1] - hc.temp_range_c[0]) / 2
        self._spike_pa = hc.spike_pa
        self._spike_k = hc.spike_temp_k
        self.acc = np.zeros((4, C))  # n, sum t, sum p, sum T of this tick
        self.ev_flags = np.zeros(C, dtype=np.int64)
        self.last_arrival = np.full(C, np.nan)
        self.n_total = np.zeros(C, dtype=np.int64)
        self.has1 = np.zeros(C, dtype=bool)

        # health
        K = len(FAULT_KINDS)
        self.fault_last = np.full((C, K), -np.inf)
        self.fault_value = np.zeros((C, K))
        self.health_state = np.zeros(C, dtype=np.int64)
        self.usable = np.zeros(C, dtype=bool)
        self.excl_last = np.full(C, -np.inf)
        self.faulted = np.zeros(C, dtype=bool)
        self._drop = np.zeros(C, dtype=bool)  # stuck or outvoted: its data stays out
        self.period_est = np.full(C, np.nan)  # sample period (s) from the sensor clock
        self.rate_est = self.sensor_rate_hz.copy()
        self._rate_prev = (np.zeros(C, dtype=np.int64), np.zeros(C, dtype=np.int64))
        self.scatter_base = np.full(C, np.nan)  # usual residual scatter (Pa) of each sensor
        self.scatter_age = np.zeros(C)
        self.noise_var = np.full(C, np.nan)  # usual per-sample pressure variance (Pa^2)
        self.noise_n = np.zeros(C)  # updates of noise_var so far
        self._drop_thr = np.full(C, np.inf)  # sudden-drop threshold (Pa), _learn_noise
        self._active_faults = np.zeros((C, K), dtype=bool)

        # regime per volume
        self.regime = [Regime.UNKNOWN] * V
        self.regime_n = np.full(V, np.nan)

        # alarms
        self._alarms: dict[tuple, Alarm] = {}
        self._unknown_seen: dict[str, tuple[int, float]] = {}
        self.limit_set_name = config.limit_set
        self._live: dict[str, dict] = {"v": {}, "s": {}}
        self._last_vol: dict = {}
        self._last_sens: dict = {}
        self._pending_events: list[AlarmEvent] = []
        self.tick_count = 0
        self.samples_this_tick = 0
        self.samples_total = 0
        self.last_tick_s = math.nan
        self.start_s = math.nan
        self.last_result: TickResult | None = None

    # --- configuration at run time ------------------------------------------
    def _compute_groups(self) -> None:
        V = len(self.volume_names)
        parent = list(range(V))

        def find(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        for name, (a, b) in self._hatch.items():
            if self.hatch_open[name]:
                parent[find(a)] = find(b)
        roots = np.array([find(i) for i in range(V)])
        self.group_id = roots
        self._group_matrix = (roots[:, None] == roots[None, :]).astype(float)
        self.group_m3 = np.array([self.volume_m3[roots == roots[i]].sum() for i in range(V)])
        self.group_members = [
            tuple(self.volume_names[j] for j in np.flatnonzero(roots == roots[i])) for i in range(V)
        ]

    def set_hatch(self, name: str, is_open: bool, now_s: float) -> None:
        """Record a hatch's state; the volumes whose group changes get a settling time."""
        if name not in self.hatch_open:
            raise KeyError(f"unknown hatch {name!r}")
        old = self.group_m3.copy()
        old_ids = self.group_id.copy()
        self.hatch_open[name] = bool(is_open)
        self._compute_groups()
        changed = (old != self.group_m3) | (old_ids != self.group_id)
        a, b = self._hatch[name]
        changed[[a, b]] = True
        self.group_changed_t[changed] = now_s
        # per channel: when its volume's windows are clean again (rapid test)
        self._settled_from_c = (self.group_changed_t + self.config.estimator.hatch_settle_s)[
            self.ch_vol
        ]

    def _volume_settled(self, now_s: float) -> np.ndarray:
        """Volumes whose group has not changed for ``hatch_settle_s``."""
        return (now_s - self.group_changed_t) >= self.config.estimator.hatch_settle_s

    def set_limit_set(self, name: str) -> None:
        """Switch the active limit set (``flight``, ``ground-test``, ...)."""
        self.limits = self.config.limit_sets[name]
        self.limit_set_name = name

    def add_response(self, fn: Callable[[AlarmEvent], None]) -> None:
        """Call ``fn(event)`` on every live event (never when replaying)."""
        self._responses.append(fn)

    # --- ingest ----------------------------------------------------------------
    def ingest(self, link: str, records: np.ndarray, host_time_s: float) -> None:
        """Take a batch of SAMPLE records of ``link`` that arrived by ``host_time_s`` (s).

        Vectorized over channels: the batch is cut into rounds holding at most
        one sample per channel (the r-th of each channel, in stream order), and
        each round is checked for clock restarts, mapped to host time, checked
        for range/status, stuck values and spikes (median of a register of
        2h+1 samples, h samples of delay) and summed into this tick's slot, all
        channels at once.  A clean batch of one sample per channel is one round.
        """
        m = len(records)
        if m == 0:
            return
        lut = self._lut.get(link)
        if lut is None:
            self.unknown[link] = self.unknown.get(link, 0) + m
            return
        ch = lut[records["addr"]]
        if np.count_nonzero(ch < 0):
            known = ch >= 0
            self.unknown[link] = self.unknown.get(link, 0) + int(m - known.sum())
            records = records[known]
            ch = ch[known]
            m = len(ch)
            if m == 0:
                return
        self.samples_this_tick += m
        C = self.n_channels
        counts = np.bincount(ch, minlength=C)
        self.n_total += counts
        if m == C and np.count_nonzero(counts) == C:
            # one sample of every channel (the usual batch): the stable sort by channel
            # is the inverse permutation, no argsort needed
            order = np.empty(m, dtype=np.intp)
            order[ch] = np.arange(m)
            chs = np.arange(C)
        else:
            order = np.argsort(ch, kind="stable")
            chs = ch[order]
        self.last_arrival[chs] = host_time_s
        cols = (
            records["t_us"][order].astype(np.int64),
            records["pressure_pa"][order],
            records["temperature_c"][order].astype(np.float64),
            records["status"][order],
        )
        new = chs[1:] != chs[:-1]
        if np.count_nonzero(new) == m - 1:  # one sample per channel: a single round
            self._ingest_round(chs, *cols, host_time_s)
            return
        flag = np.concatenate((_TRUE, new))
        starts = np.flatnonzero(flag)
        rank = np.arange(m) - starts[np.cumsum(flag) - 1]
        for r in range(int(rank.max()) + 1):
            sel = rank == r
            self._ingest_round(chs[sel], *(c[sel] for c in cols), host_time_s)

    def _ingest_round(self, ch, t_us, p, temp, st, host_time_s: float) -> None:
        """At most one record per channel (``ch`` unique and ascending, as ``ingest``
        makes it); columns as in the record, sensor time in us, host time in s.

        Runs every tick for every channel, so it is written for few numpy calls
        (each costs about a microsecond whatever its length): the exceptions a
        clean round does not have (status bits, reboot, first sample, out of
        range, young clock, spikes) are detected with one ``np.count_nonzero``
        each and only then handled, and registers are addressed by flat index
        ``channel * W + position``.  Same operations on the same values as the
        plain per-case code, so the same bits.
        """
        # A reboot (the sensor clock went backwards) raises an advisory.  A reported
        # configuration change (status bit 5) without one is what the host's own
        # SET_RATE or ZERO_OFFSET causes: the history is forgotten, since an offset
        # change would otherwise look like a pressure step, but nothing is alarmed.
        had = self.has_t[ch]
        reboot = had & (t_us < self.last_t_us[ch])
        any_status = np.count_nonzero(st) > 0
        any_reboot = np.count_nonzero(reboot) > 0
        if any_status or any_reboot:
            reset = reboot
            if any_status:
                reset = reboot | (had & ((st & _CONFIG_CHANGED) != 0))
            if any_reboot:
                self.ev_flags[ch[reboot]] |= int(FaultKind.REBOOT)
            if reset.any():
                self._reset_channels(ch[reset])
                had = self.has_t[ch]
        all_had = np.count_nonzero(had) == len(ch)
        # clock mapping: lower envelope of (host arrival - sensor time), drifting up slowly
        t_sens = t_us * 1e-6
        cand = host_time_s - t_sens
        off = self.clock_off[ch] + self._drift_allow * (host_time_s - self.clock_upd[ch])
        if all_had:
            np.minimum(off, cand, out=off)
        else:
            off = np.where(had, np.minimum(off, cand), cand)
        self.clock_off[ch] = off
        self.clock_upd[ch] = host_time_s
        if not all_had:
            self.clock_anchor[0, ch[~had]] = t_sens[~had]
            self.clock_anchor[1, ch[~had]] = off[~had]
        # the rate reference: the lowest offset seen in the first minute
        young = (t_sens - self.clock_anchor[0, ch]) < 60.0
        if np.count_nonzero(young):
            cy = ch[young]
            self.clock_anchor[1, cy] = np.minimum(self.clock_anchor[1, cy], off[young])
        self.last_t_us[ch] = t_us
        self.has_t[ch] = True
        th = off + t_sens

        # range and status bits
        ok = np.abs(p - self._range_mid[ch]) <= self._range_half[ch]
        ok &= np.abs(temp - self._temp_mid) <= self._temp_half
        if any_status or np.count_nonzero(ok) < len(ok):
            bad = ~ok
            oor = bad | ((st & _STATUS_RANGE_BITS) != 0)
            stat = (st & _STATUS_FAULT_BITS) != 0
            self.ev_flags[ch[oor]] |= int(FaultKind.OUT_OF_RANGE)
            self.ev_flags[ch[stat]] |= int(FaultKind.STATUS)
            valid = ~(oor | stat)
            if not valid.all():
                ch, th, p, temp = ch[valid], th[valid], p[valid], temp[valid]
                if len(ch) == 0:
                    return

        # each channel's ring register of its last 2h+1 valid samples (t_host, p, T),
        # addressed through flat views (channel c, position j at c * W + j); a fresh
        # channel's register is filled with its first sample
        W, h = self._reg_w, self._reg_h
        Rt = self.Rt.reshape(-1, copy=False)
        Rp = self.Rp.reshape(-1, copy=False)
        RT = self.RT.reshape(-1, copy=False)
        cnt = self.reg_n[ch]
        fresh = cnt == 0
        any_fresh = np.count_nonzero(fresh) > 0
        if any_fresh:
            cf = ch[fresh]
            self.Rt[cf] = th[fresh, None]
            self.Rp[cf] = p[fresh, None]
            self.RT[cf] = temp[fresh, None]
        pos = cnt % W
        row = ch * W
        prev_p = Rp[row + (pos - 1) % W]
        k_new = row + pos
        Rt[k_new] = th
        Rp[k_new] = p
        RT[k_new] = temp
        n_in = cnt + 1
        self.reg_n[ch] = n_in
        # stuck: run length of identical pressures
        same = p == prev_p
        if any_fresh:
            same &= ~fresh
        self.stuck_run[ch] = np.where(same, self.stuck_run[ch] + 1, 1)
        # spikes: the middle sample is judged against the median of the register (h samples
        # of delay): up to h outliers in a row are caught, a ramp or a step never is.
        # Only registers spanning more than the threshold can hold a spike.  One sort of
        # the p and T registers stacked gives each one's spread (last - first = max - min)
        # and median (at h); four max/min reductions along the short axis cost 4x more.
        judge = n_in > h
        k_mid = row + (pos - h) % W  # flat index of the middle sample
        reg = np.empty((2, len(ch), W))  # sorted copies of the p and T registers
        self.Rp.take(ch, axis=0, out=reg[0], mode="clip")  # (ch is in range)
        self.RT.take(ch, axis=0, out=reg[1], mode="clip")
        reg.sort(axis=2)
        spread = reg[:, :, -1] - reg[:, :, 0]
        wide = (spread[0] > self._spike_pa) | (spread[1] > self._spike_k)
        wide &= judge
        emit = judge
        if np.count_nonzero(wide):
            sel = np.flatnonzero(wide)
            spike = np.zeros(len(ch), dtype=bool)
            spike[sel] = (np.abs(Rp[k_mid[sel]] - reg[0, sel, h]) > self._spike_pa) | (
                np.abs(RT[k_mid[sel]] - reg[1, sel, h]) > self._spike_k
            )
            if spike.any():
                self.ev_flags[ch[spike]] |= int(FaultKind.SPIKE)
                emit = judge & ~spike
        n_emit = np.count_nonzero(emit)
        acc = self.acc
        if n_emit == self.n_channels:  # every channel (ch is then 0, 1, ..., C - 1)
            acc[0] += 1.0
            acc[1] += Rt[k_mid]
            acc[2] += Rp[k_mid]
            acc[3] += RT[k_mid]
        elif n_emit:
            ce = ch[emit]
            ke = k_mid[emit]
            acc[0, ce] += 1.0
            acc[1, ce] += Rt[ke]
            acc[2, ce] += Rp[ke]
            acc[3, ce] += RT[ke]
        H1 = self.H1  # rows: 1, t, p, T of each channel's last valid sample
        if len(ch) == self.n_channels:  # every channel: rows, not scattered elements
            H1[1] = th
            H1[2] = p
            H1[3] = temp
            self.has1[:] = True
        else:
            H1[1, ch] = th
            H1[2, ch] = p
            H1[3, ch] = temp
            self.has1[ch] = True

    def _clear_history(self, mask: np.ndarray) -> None:
        """Forget the ring-buffer history of the channels in ``mask``."""
        for tier in self.tiers:
            tier.clear_channels(mask)
        for acc in self._bin_acc:
            acc[:, mask] = 0.0
        self.acc[:, mask] = 0.0
        self._fit_cache = [None, None, None]

    def _reset_channels(self, chs: np.ndarray) -> None:
        """Forget history, clock mapping and filter state of channels ``chs``."""
        if len(chs) == 0:
            return
        mask = np.zeros(self.n_channels, dtype=bool)
        mask[chs] = True
        for tier in self.tiers:
            tier.clear_channels(mask)
        for acc in self._bin_acc:
            acc[:, mask] = 0.0
        self.acc[:, mask] = 0.0
        self.has_t[mask] = False
        self.has1[mask] = False
        self.reg_n[mask] = 0
        self.stuck_run[mask] = 0
        self.last_raw_p[mask] = np.nan
        self.clock_anchor[:, mask] = np.nan
        self._fit_cache = [None, None, None]

    # --- tick -----------------------------------------------------------------
    def tick(self, now_s: float) -> TickResult:
        """Process the samples ingested since the last tick; ``now_s`` host time (s)."""
        if math.isnan(self.start_s):
            self.start_s = now_s
            self.last_arrival[np.isnan(self.last_arrival)] = now_s
        self.tick_count += 1
        n_samples = self.samples_this_tick
        self.samples_total += n_samples
        self.samples_this_tick = 0
        C = self.n_channels

        # 1. one slot per channel on the raw tier; bins of the decimated tiers
        acc = self.acc
        if np.count_nonzero(self._drop):  # (a third of ndarray.any()'s call overhead)
            acc[:, self._drop] = 0.0
        n = acc[0]
        means = np.zeros((3, C))
        np.divide(acc[1:], n, out=means, where=n > 0)
        self.tiers[0].push(means[0], means[1], means[2], n)
        self._fit_cache[0] = None
        regime_due = False
        bins = self._bin_acc  # (2, 4, C): the open 1-s and 60-s bins
        for k in (1, 2):
            tier = self.tiers[k]
            b = math.floor(now_s / tier.period_s)
            if self._bin[k] is None:
                self._bin[k] = b
            elif b > self._bin[k]:
                ba = bins[k - 1]
                bm = np.zeros((3, C))
                np.divide(ba[1:], ba[0], out=bm, where=ba[0] > 0)
                tier.push(bm[0], bm[1], bm[2], ba[0])
                skipped = min(b - self._bin[k] - 1, tier.length)
                zero = np.zeros(C)
                for _ in range(skipped):
                    tier.push(zero, zero, zero, zero)
                ba[:] = 0.0
                self._bin[k] = b
                self._fit_cache[k] = None
                regime_due = regime_due or k == 2
        bins += acc
        acc[:] = 0.0

        events = self._pending_events
        self._pending_events = []
        slow = now_s >= self._next_slow_s - 1e-9
        if slow:
            P = self._slow_period_s
            self._next_slow_s = (math.floor(now_s / P + 1e-9) + 1) * P
            self._slow_tick(now_s, regime_due, events)
        else:
            # fast path: rapid depressurization on the raw tier only
            sp, sep = self.tiers[0].pressure_slopes(self._fast_local, self._em_min_slots)
            self._rapid_alarm(now_s, sp, sep, events)
        if events and not self.replay:
            for ev in events:
                for fn in self._responses:
                    fn(ev)
        sens = dict(self._last_sens)
        sens["arrival"] = self.last_arrival.copy()
        self.last_tick_s = now_s
        result = TickResult(
            now_s, self.tick_count, n_samples, tuple(events), _TickData(self, self._last_vol, sens)
        )
        self.last_result = result
        return result

    def _slow_tick(self, now_s: float, regime_due: bool, events: list) -> None:
        """Full estimation: fits of every window, health, fusion, all alarms."""
        C = self.n_channels
        nW = self._nW
        slope_p = np.empty((nW, C))
        se_p = np.empty((nW, C))
        slope_T = np.empty((nW, C))
        se_T = np.empty((nW, C))
        level_p = np.empty((nW, C))
        mean_T = np.empty((nW, C))
        nsamp = np.empty((nW, C))
        for k, tier in enumerate(self.tiers):
            js = self._tier_windows[k]
            if not len(js):
                continue
            fit = self._fit_cache[k]
            if fit is None:
                fit = self._fit_cache[k] = tier.fit()
            nj = len(js)  # the raw tier may hold the extra rapid-depressurization window last
            slope_p[js] = fit.slope_pa_s[:nj]
            se_p[js] = fit.stderr_pa_s[:nj]
            slope_T[js] = fit.slope_temp_k_s[:nj]
            se_T[js] = fit.stderr_temp_k_s[:nj]
            level_p[js] = fit.mean_pa[:nj] + fit.slope_pa_s[:nj] * (now_s - fit.t_mean_s[:nj])
            mean_T[js] = fit.mean_temp_c[:nj]
            nsamp[js] = fit.n[:nj]
        # pressure slopes delayed by the temperature sensors' lag, for compensation
        L = self._lag_ticks
        hist = self._lag_hist
        i = self._slow_count % (L + 1)
        hist[i, 0] = slope_p
        hist[i, 1] = se_p
        di = max(self._slow_count - L, 0) % (L + 1)
        self._slow_count += 1
        slope_pd = hist[di, 0]
        se_pd = hist[di, 1]

        self._measured_rates()
        self._update_health(now_s, slope_p, se_p, level_p[0], nsamp)
        self._learn_noise()
        base = self.last_t_us * 1e-6 - self.clock_anchor[0]
        with np.errstate(invalid="ignore", divide="ignore"):
            self.clock_rate_ppm = np.where(
                base > 60.0, (self.clock_off - self.clock_anchor[1]) / base * -1e6, np.nan
            )
        # a sensor counts in a window only where it covered it (a gap changes what a
        # straight line makes of the thermal cycle, and the group temperature would
        # no longer describe the same samples)
        est = self.config.estimator
        rate = self.rate_est
        cov = nsamp >= est.min_fill * self.windows_s[:, None] * rate[None, :]
        vol = self._fuse(now_s, slope_p, se_p, slope_pd, se_pd, slope_T, se_T, mean_T, cov, level_p)
        if regime_due:
            self._update_regime(now_s)
            vol["regime"] = list(self.regime)
            vol["regime_n"] = self.regime_n.copy()
        self._volume_alarms(now_s, vol, level_p[0], events)
        sp, sep = self.tiers[0].pressure_slopes(self._fast_local, self._em_min_slots)
        self._rapid_alarm(now_s, sp, sep, events)
        self._advisory_alarms(now_s, events)
        self._last_vol = vol
        self._last_sens = {
            "state": self.health_state.copy(),
            "faults": self._active_faults.copy(),
            "p": np.where(self.has1, self.H1[2], np.nan),
            "temp": np.where(self.has1, self.H1[3], np.nan),
            "slope_q": vol["sq_c"],
            "off": self.clock_off.copy(),
            "rate": self.clock_rate_ppm.copy(),
            "n": self.n_total.copy(),
        }

    # --- health ----------------------------------------------------------------
    def _measured_rates(self) -> np.ndarray:
        """Each sensor's sample rate (Hz) from its own clock, else the configured one.

        Sensor-clock time over samples counted since the last call, averaged
        slowly; a gap or a reboot moves it at most by a factor of two per call.
        """
        dn = self.n_total - self._rate_prev[0]
        dts = (self.last_t_us - self._rate_prev[1]) * 1e-6
        self._rate_prev = (self.n_total.copy(), self.last_t_us.copy())
        ok = (dn > 0) & (dts > 0) & self.has_t
        with np.errstate(invalid="ignore", divide="ignore"):
            inst = dts / dn
            p = self.period_est
            upd = np.where(np.isfinite(p), p + 0.05 * (np.clip(inst, 0.5 * p, 2.0 * p) - p), inst)
        self.period_est = np.where(ok, upd, p)
        self.rate_est = np.where(
            np.isfinite(self.period_est), 1.0 / self.period_est, self.sensor_rate_hz
        )
        return self.rate_est

    def _update_health(self, now_s, slope_p, se_p, level_p, nsamp) -> None:
        hc = self.config.health
        C = self.n_channels
        K = len(FAULT_KINDS)
        cond = np.zeros((C, K), dtype=bool)
        age = now_s - self.last_arrival
        # stale after a few periods: configured, or measured if the sensor runs slower
        stale_after = np.fmax(
            self.stale_after_s, self.config.health.stale_periods * self.period_est
        )
        cond[:, 0] = age > stale_after
        cond[:, 1] = self.stuck_run >= hc.stuck_samples
        ev = self.ev_flags
        for i, kind in enumerate(FAULT_KINDS[2:6], start=2):
            cond[:, i] = (ev & int(kind)) != 0
        self.ev_flags = np.zeros(C, dtype=np.int64)
        # disagreement with the volume median (level now, and slope), among sensors
        # not faulted for another reason
        j = self._dis_window
        others = (now_s - self.fault_last[:, _OWN].max(axis=1)) >= hc.fault_hold_s
        ok = others & ~cond[:, :6].any(axis=1) & np.isfinite(slope_p[j]) & self.has1
        scatter = se_p[j] * np.sqrt(np.maximum(nsamp[j], 1.0))  # residual scatter, Pa
        dw = self._dis_windows
        # slopes are only compared where a sensor covered the window (a gap changes
        # what a straight line makes of a curved thermal signal)
        rate = self.rate_est
        expect = self.windows_s[dw, None] * rate[None, :]
        covered = nsamp[dw] >= 0.9 * expect
        sl = np.where(covered, slope_p[dw], np.nan)
        ok_noisy = ok & (nsamp[j] >= 0.9 * self.windows_s[j] * rate) & (nsamp[j] >= 20)
        sc = np.where(ok_noisy, scatter, np.nan)
        disagree, excl, noisy = self._disagreement(ok, sl, se_p[dw], level_p, sc)
        # noisy also against the sensor's own usual scatter (a slow average while it is
        # healthy), so sensors of different quality in one volume are not flagged
        base = self.scatter_base
        known = self.scatter_age >= hc.noisy_learn_s
        noisy &= known & (sc > hc.noisy_ratio * base)
        learn = np.isfinite(sc) & self.usable & ~noisy
        alpha = min(1.0, self._slow_period_s / hc.noisy_learn_s)
        self.scatter_base = np.where(
            learn, np.where(np.isfinite(base), base + alpha * (sc - base), sc), base
        )
        self.scatter_age = self.scatter_age + np.where(learn, self._slow_period_s, 0.0)
        cond[:, _DIS] = disagree
        cond[:, _NOISY] = noisy
        self.fault_value[:, 0] = age
        self.fault_value[:, 1] = self.stuck_run
        self.fault_last[cond] = now_s
        self.excl_last[excl] = now_s
        since = now_s - self.fault_last
        active = cond | (since < hc.fault_hold_s)
        self._active_faults = active
        # a disagreeing pair raises advisories but stays in (which one is wrong?);
        # with three or more sensors the outlier is left out
        faulted = active[:, _OWN].any(axis=1) | ((now_s - self.excl_last) < hc.fault_hold_s) | excl
        last_any = np.maximum(self.fault_last[:, _OWN].max(axis=1), self.excl_last)
        recovering = ~faulted & ((now_s - last_any) < hc.recover_s)
        self.usable = ~faulted & ~recovering & self.has1
        # data that may be corrupt (stuck, outvoted) leaves the history when the fault is
        # found, and such a sensor adds nothing until it recovers
        drop = active[:, 1] | excl | ((now_s - self.excl_last) < hc.fault_hold_s)
        corrupt = drop & ~self._drop
        if corrupt.any():
            self._clear_history(corrupt)
        self._drop = drop
        self.faulted = faulted
        state = np.full(C, 1)
        state[recovering] = 3
        state[faulted] = 2
        state[~self.has1] = 0
        self.health_state = state

    def _disagreement(self, ok, slope, se, level, scatter):
        """Flag sensors whose level or slope is far from their volume's median, and
        sensors whose residual scatter is ``noisy_ratio`` times the volume's quietest.

        ``slope``/``se`` are ``(windows, C)``: a slope disagreeing in any of the
        windows counts.  Returns (flag, exclude, noisy): with 3+ sensors the
        outliers are excluded; a disagreeing pair is flagged but both stay in.
        """
        hc = self.config.health
        tab = self._vol_table
        valid = (tab >= 0) & ok[np.maximum(tab, 0)]
        cnt = valid.sum(axis=1)
        flag = np.zeros(self.n_channels, dtype=bool)
        excl = np.zeros(self.n_channels, dtype=bool)
        if not (cnt >= 2).any():
            return flag, excl, flag
        idx = np.maximum(tab, 0)
        # medians per volume of every quantity, with one sort
        x = np.vstack((level[None], scatter[None], slope, se))
        k = len(x)
        g = np.where(valid, x[:, idx], np.nan)
        g.sort(axis=2)
        lo = np.broadcast_to(np.maximum((cnt - 1) // 2, 0)[None, :, None], (k, len(cnt), 1))
        hi = np.broadcast_to(np.maximum(cnt // 2, 0)[None, :, None], (k, len(cnt), 1))
        med = 0.5 * (np.take_along_axis(g, lo, 2) + np.take_along_axis(g, hi, 2))[..., 0]
        v = self.ch_vol
        nw = len(slope)
        med_level = med[0]
        quietest = g[1, :, 0]
        med_slope = med[2 : 2 + nw][:, v]
        med_se = med[2 + nw :][:, v]
        with np.errstate(invalid="ignore"):
            d_level = np.abs(level - med_level[v]) > hc.disagree_pa
            dev = np.abs(slope - med_slope)
            d_slope = (
                (dev > hc.disagree_rate_pa_s) & (dev > hc.disagree_sigma * np.hypot(se, med_se))
            ).any(axis=0)
            noisy = ok & (scatter > hc.noisy_ratio * quietest[v])
        flag = ok & (cnt[v] >= 2) & (d_level | d_slope)
        excl = flag & (cnt[v] >= 3)
        return flag, excl, noisy

    # --- fusion ----------------------------------------------------------------
    def _fuse(self, now_s, slope_p, se_p, slope_pd, se_pd, slope_T, se_T, mean_T, cov, level_p):
        """Per-volume fusion over healthy sensors, compensation per group of volumes.

        Raw dP/dt: inverse-variance mean of the volume's sensors (inflated by the
        Birge ratio when they scatter more than their errors).  Compensated:
        the group's gas mass is P/R * sum(V_i / T_i), so with the effective
        temperature T_eff = V_g / sum(V_i / T_i) the compensated slope is
        dPc/dt = (T_ref / T_eff) (dP/dt - P dT_eff/dt / T_eff), using pressure
        slopes delayed by the temperature sensors' lag.
        """
        est = self.config.estimator
        M = self.member
        use = self.usable
        vch = self.ch_vol
        n_h = use.astype(float) @ M.T
        tref = self.config.t_ref_k
        with np.errstate(invalid="ignore", divide="ignore"):
            use_w = use & cov  # (nW, C)
            fp, fpse = _fuse_slopes(slope_p, se_p, use_w, M, vch)
            fpd, fpdse = _fuse_slopes(slope_pd, se_pd, use_w, M, vch)
            # temperature from every sensor whose data is not suspect (a sensor left
            # out for its pressure, stale say, still tells its module's temperature)
            # temperatures from the same sensors as the pressures; a volume with none
            # of those borrows from any sensor whose data is not suspect (a sensor left
            # out for its pressure, stale say, still tells its module's temperature)
            finite_T = np.isfinite(slope_T) & np.isfinite(mean_T)
            tv = use_w & finite_T
            fallback = self.has1 & ~self._drop & cov & finite_T
            none = (tv.astype(float) @ M.T) == 0  # (nW, V)
            tv = np.where(none[:, vch], fallback, tv)
            nt = tv.astype(float) @ M.T
            T_v = (np.where(tv, mean_T, 0.0) @ M.T) / nt + KELVIN  # (nW, V) K
            dT_v = (np.where(tv, slope_T, 0.0) @ M.T) / nt
            seT_v = np.sqrt(np.where(tv, se_T, 0.0) ** 2 @ M.T) / nt
            has = np.isfinite(T_v)
            G = self._group_matrix
            wv = np.where(has, self.volume_m3 / T_v, 0.0)
            vg = np.where(has, self.volume_m3, 0.0) @ G.T
            inv = wv @ G.T
            T_eff = vg / inv
            dT_eff = T_eff**2 / vg * (np.where(has, wv / T_v * dT_v, 0.0) @ G.T)
            seT_eff = T_eff**2 / vg * np.sqrt(np.where(has, wv / T_v * seT_v, 0.0) ** 2 @ G.T)
            lv = use & np.isfinite(level_p[0])
            nl = lv.astype(float) @ M.T
            p_now = np.where(lv, level_p[0], 0.0) @ M.T / nl
            scale = tref / T_eff
            # a volume of the group without any temperature: its thermal swing is unknown
            miss = 1.0 - vg / (self.volume_m3 @ G.T)
            extra = miss * p_now / T_eff * np.fmax(np.abs(dT_eff), THERMAL_RATE_K_S)
            thermal_se2 = (p_now * seT_eff / T_eff) ** 2 + extra**2
            # The pressure slopes are delayed by the temperature sensors' lag so that
            # both describe the same moment.  Where the raw slope now falls faster than
            # it did a lag ago by more than any thermal swing could explain, beyond its
            # noise (the onset or growth of a fast leak), the current slope is used: a
            # fast leak must not be reported as it was a lag ago.
            jump = (fp - fpd) < -(
                THERMAL_JUMP * p_now / T_eff * THERMAL_RATE_K_S
                + est.consistency_sigma * np.hypot(fpse, fpdse)
            )
            # once seen, a jump holds until the delayed window has passed it (the
            # test alone lapses while the delayed window still straddles the onset:
            # a curved decay inflates the errors it is judged against)
            # (short windows only: a long one barely feels the lag, and holding it
            # undelayed for hours would expose it to thermal steps)
            self._jump_until = np.where(
                jump & (self.windows_s[:, None] <= JUMP_HOLD_MAX_WINDOW_S),
                now_s + self._lag_s + self.windows_s[:, None],
                self._jump_until,
            )
            jump = jump | (now_s < self._jump_until)
            now_u = jump & ((((use_w & np.isfinite(slope_p)).astype(float)) @ M.T) > 0)
            filled = now_u | (((use_w & np.isfinite(slope_pd)).astype(float) @ M.T) > 0)
            # a window that began before the volume's group last changed (and settled)
            # mixes two systems: the pressure history of the old group, the size of
            # the new one (an isolated module would inherit its old group's fall)
            start = now_s - self.windows_s[:, None] - np.where(now_u, 0.0, self._lag_s)
            filled &= start >= self.group_changed_t + est.hatch_settle_s
            fsel = np.where(now_u, fp, fpd)
            fsel_se = np.where(now_u, fpse, fpdse)
            fq = scale * (fsel - p_now * dT_eff / T_eff)
            fse = scale * np.sqrt(fsel_se**2 + thermal_se2)
            # per sensor, compensated with its group's temperature, the same choice
            now_c = now_u[:, vch]
            s_sel = np.where(now_c, slope_p, slope_pd)
            se_sel = np.where(now_c, se_p, se_pd)
            sq_c = scale[:, vch] * (s_sel - p_now[vch] * dT_eff[:, vch] / T_eff[:, vch])
            sq_c = np.where(cov, sq_c, np.nan)
            se_c = scale[:, vch] * np.sqrt(se_sel**2 + thermal_se2[:, vch])
            # A straight line through a decaying pressure gives the slope at the middle
            # of its data (half a window ago, plus the lag if delayed).  A leak's flow
            # falls with the pressure (dP/dt = -a P^n: n = 1 orifice, 2 crack), so the
            # slope now is the fitted one times (P_now / P_then)^n =
            # exp(n age slope / P).  Negligible for slow leaks; for a 25 mm hole in
            # 6 m3 (time constant ~100 s) it removes a 25 % overestimate.
            # The rate constant is the slope over the pressure *then* (higher than
            # now): dividing by the pressure now over-corrects by e^(age/tau) in the
            # exponent (-6 % for a 25 mm hole in 6 m3).  A few fixed-point steps
            # give P_then = P_now / ratio and the ratio together.
            age = self.windows_s[:, None] * 0.5 + np.where(now_u, 0.0, self._lag_s)
            crack = np.array([r is Regime.CRACK for r in self.regime])
            fall = -np.minimum(fq, 0.0)  # Pa/s, >= 0
            q_now = scale * p_now
            ratio = np.ones_like(fq)  # P_now / P_then
            for _ in range(4):
                x = np.fmin(fall * ratio / q_now * age, 5.0)  # age / tau (orifice)
                ratio = np.where(crack, 1.0 / (1.0 + x), np.exp(-x))
            decay = np.where(crack, ratio**2, ratio)
            fq = fq * decay
            fse = fse * decay
            decay_c = decay[:, vch]
            sq_c = sq_c * decay_c
            se_c = se_c * decay_c
        # the gas temperature now: the shortest window that has one (a short window
        # can be empty of temperature samples on a tick; a longer one still tells)
        has_t = np.isfinite(T_eff)
        cols = np.arange(T_eff.shape[1])
        temp_k = np.where(has_t.any(axis=0), T_eff[np.argmax(has_t, axis=0), cols], np.nan)
        q_now = p_now * tref / temp_k
        # best window: the most precise filled window whose slope agrees with the shorter ones
        V = len(self.volume_names)
        best_s = np.full(V, np.nan)
        best_se = np.full(V, np.nan)
        best_j = np.full(V, -1)
        going = np.ones(V, dtype=bool)
        cs = est.consistency_sigma
        for j in range(self._nW):
            f = filled[j] & np.isfinite(fq[j]) & np.isfinite(fse[j])
            first = best_j < 0
            with np.errstate(invalid="ignore"):
                cons = np.abs(fq[j] - best_s) <= cs * np.hypot(fse[j], best_se)
            # a longer window is taken if it agrees and is more precise; one that
            # disagrees (the leak changed within it) ends the search
            take = f & going & (first | (cons & (fse[j] < best_se)))
            going &= ~(f & ~first & ~cons)
            best_s = np.where(take, fq[j], best_s)
            best_se = np.where(take, fse[j], best_se)
            best_j = np.where(take, j, best_j)
        k_mass = self.group_m3 / (R_AIR * tref) * SECONDS_PER_DAY  # kg/day per (Pa/s)
        mdot = -k_mass * best_s
        mdot_se = k_mass * best_se
        with np.errstate(invalid="ignore", divide="ignore"):
            area = (mdot / SECONDS_PER_DAY) / (
                est.discharge_coefficient * p_now * np.sqrt(GAMMA / (R_AIR * temp_k)) * CHOKE
            )
            hole_mm = np.where(mdot > 0, np.sqrt(4.0 * np.maximum(area, 0) / np.pi) * 1e3, 0.0)
            pmin = self.config.p_min_pa
            falling = best_s < 0
            head = np.maximum(p_now - pmin, 0.0)
            res_lin = np.where(falling, head / -best_s, np.inf)
            tau = p_now / -best_s
            res_orf = np.where(falling, tau * np.log(np.maximum(p_now, pmin) / pmin), np.inf)
        return {
            "fq": fq,
            "fse": fse,
            "fp": fp,
            "fpse": fpse,
            "sq_c": sq_c,
            "se_c": se_c,
            "filled": filled,
            "p_now": p_now,
            "q_now": q_now,
            "temp_k": temp_k,
            "best_j": best_j,
            "best_s": best_s,
            "best_se": best_se,
            "mdot": mdot,
            "mdot_se": mdot_se,
            "hole_mm": hole_mm,
            "res_lin": res_lin,
            "res_orf": res_orf,
            "n_h": n_h,
            "k_mass": k_mass,
            "regime": list(self.regime),
            "regime_n": self.regime_n.copy(),
            "group_m3": self.group_m3.copy(),
            "groups": list(self.group_members),
        }

    def _update_regime(self, now_s: float) -> None:
        """Tell orifice from crack from the curvature of the compensated decay.

        For dP/dt = -a P^n, n = P P'' / P'^2: 1 for an orifice, 2 for a crack.
        Fit a parabola to each healthy sensor's 1-min history since the
        volume's group last changed; decide when the volume has decayed by
        ``regime_min_decay`` and the exponent's standard error is small.
        """
        est = self.config.estimator
        lag = max(0.0, est.temp_lag_s - est.pressure_lag_s)
        tier = self.tiers[2]
        view = tier.latest(min(tier.head, tier.length)) if tier.head >= 5 else None
        if view is None:
            return
        for v in range(len(self.volume_names)):
            chs = np.flatnonzero((self.ch_vol == v) & self.usable)
            since = self.group_changed_t[v] + est.hatch_settle_s
            ests = []
            for c in chs:
                nn = view.n[:, c].astype(float)
                t = view.t_s[:, c]
                ok = (nn > 0) & (t > since)
                if ok.sum() < 10:
                    continue
                t = t[ok]
                # the gas temperature leads the sensor's reading by the lag difference
                temp = view.temperature_c[ok, c].astype(float)
                temp = np.interp(t + lag, t, temp)
                q = view.pressure_pa[ok, c] * (self.config.t_ref_k / (temp + KELVIN))
                tau = t - 0.5 * (t[0] + t[-1])  # at mid-span the cubic term leaks least
                try:
                    coef, cov = np.polyfit(tau, q, 2, w=np.sqrt(nn[ok]), cov=True)
                except (np.linalg.LinAlgError, ValueError):
                    continue
                c2, b, a = coef
                if not (b < 0 and a > 0):
                    continue
                fit0 = a + b * tau[0] + c2 * tau[0] ** 2
                fit1 = a + b * tau[-1] + c2 * tau[-1] ** 2
                drop = (fit0 - fit1) / fit0
                if drop < est.regime_min_decay:
                    continue
                n_exp = 2 * a * c2 / b**2
                g = np.array([2 * a / b**2, -4 * a * c2 / b**3, 2 * c2 / b**2])
                # residuals that follow each other (thermal residue) carry less
                # information than white noise: inflate by (1 + rho) / (1 - rho)
                r = q - np.polyval(coef, tau)
                rho = float(np.dot(r[:-1], r[1:]) / max(np.dot(r, r), 1e-300))
                rho = min(max(rho, 0.0), 0.95)
                var = float(g @ cov @ g) * (1 + rho) / (1 - rho)
                if var > 0:
                    ests.append((n_exp, var))
            if not ests:
                continue
            wts = np.array([1 / e[1] for e in ests])
            n_hat = float(np.sum(wts * np.array([e[0] for e in ests])) / wts.sum())
            sig = float(1 / np.sqrt(wts.sum()))
            self.regime_n[v] = n_hat
            if sig <= est.regime_max_sigma:
                self.regime[v] = Regime.ORIFICE if n_hat < 1.5 else Regime.CRACK

    # --- alarms ----------------------------------------------------------------
    def _alarm(self, key: tuple, source: str, level: AlarmLevel, kind: AlarmKind, unit: str):
        a = self._alarms.get(key)
        if a is None:
            a = self._alarms[key] = Alarm(source, level, kind, unit)
        return a

    def _update_family(self, fi, rc, cc, val, lim, pers, now_s, events) -> None:
        """Step the alarms of volume family ``fi``: those raised now and those not idle.

        ``pers``: the persistence (s), one for all volumes or one per volume."""
        L = self.limits
        fam = _VOLUME_FAMILIES[fi]
        live = self._live["v"].setdefault(fi, {})
        cand = set(np.flatnonzero(rc).tolist())
        cand.update(live)
        for v in sorted(cand):
            a = live.get(v)
            if a is None:
                a = live[v] = self._alarm(
                    ("v", fi, v), self.volume_names[v], fam.level, fam.kind, fam.unit
                )
            ev = a.update(
                now_s,
                bool(rc[v]),
                bool(cc[v]),
                float(val[v]),
                float(lim),
                float(pers[v]) if isinstance(pers, np.ndarray) else pers,
                L.clear_s,
                self.replay,
            )
            if ev is not None:
                events.append(ev)
            if a.idle():
                del live[v]
                del self._alarms[("v", fi, v)]

    def _voted(self, votes: np.ndarray, n_h: np.ndarray) -> np.ndarray:
        """Volumes where enough healthy sensors vote: all of one, at least two of two or more."""
        return ((votes & self.usable).astype(float) @ self.member.T >= np.minimum(2, n_h)) & (
            n_h > 0
        )

    def _rapid_alarm(self, now_s, sp, sep, events) -> None:
        """EMERGENCY rapid depressurization from the raw pressure slopes of the fast windows.

        Raised when the fused fall rate exceeds the limit by ``emergency_sigma``
        standard errors in any fast window (and the sensors vote).
        """
        L = self.limits
        use = self.usable
        drop_v = self._fast_drop(now_s) if L.emergency_drop_sigma > 0 else None
        # windows that began before their volume's group changed and settled: out
        settle_c = self._settled_from_c
        if settle_c is not None and now_s - self._rapid_window_s.max() < settle_c.max():
            old = (now_s - self._rapid_window_s[:, None]) < settle_c[None, :]
            sp = np.where(old, np.nan, sp)
            sep = np.where(old, np.nan, sep)
        with np.errstate(invalid="ignore"):
            rate_lo_c = (-sp - L.vote_sigma * sep) * 60.0  # Pa/min
            em_vote = (rate_lo_c > L.vote_fraction * L.emergency_rate_pa_min).any(axis=0)
        if not (em_vote & use).any() and not self._live["v"].get(2) and drop_v is None:
            return  # no healthy sensor is anywhere near the limit: nothing can be raised
        with np.errstate(invalid="ignore", divide="ignore"):
            fp, fpse = _fuse_slopes(sp, sep, use, self.member, self.ch_vol)
            rate_v = -fp * 60.0
            rate_lo_v = rate_v - L.emergency_sigma * fpse * 60.0
            rate_max = np.max(np.where(np.isfinite(rate_v), rate_v, -np.inf), axis=0)
            rate_lo_max = np.max(np.where(np.isfinite(rate_lo_v), rate_lo_v, -np.inf), axis=0)
        n_h = use.astype(float) @ self.member.T
        settled = self._volume_settled(now_s)
        rc = settled & (rate_lo_max > L.emergency_rate_pa_min) & self._voted(em_vote, n_h)
        pers: float | np.ndarray = L.emergency_persistence_s
        if drop_v is not None:
            fast = settled & np.isfinite(drop_v)
            rc = rc | fast
            rate_max = np.where(fast, np.fmax(rate_max, drop_v), rate_max)
            pers = np.where(fast, 0.0, L.emergency_persistence_s)
        if not rc.any() and not self._live["v"].get(2):
            return
        cc = ~(rate_max > L.emergency_rate_pa_min * (1 - L.hysteresis)) & (n_h > 0) & ~rc
        self._update_family(2, rc, cc, rate_max, L.emergency_rate_pa_min, pers, now_s, events)

    def _learn_noise(self) -> None:
        """Each healthy sensor's usual per-sample pressure variance (Pa^2), slowly.

        From the successive differences in its spike-filter register (the last
        ``2 h + 1`` valid samples): for white noise d ~ N(0, 2 sigma^2), and the
        median of the d^2 (its mean calibrated for white noise at start-up) is
        robust to a step or a spike among them.  Averaged over
        ``noisy_learn_s``; a trend only raises it.
        """
        W = self._reg_w
        ok = self.usable & (self.reg_n >= W)
        if not ok.any():
            self._update_drop_threshold()
            return
        c = np.flatnonzero(ok)
        order = (((self.reg_n[c] - 1) % W)[:, None] + 1 + np.arange(W)[None, :]) % W
        p = np.take_along_axis(self.Rp[c], order, axis=1)  # oldest first
        v = np.median(np.diff(p, axis=1) ** 2, axis=1) / (2 * self._med_d2)
        base = np.nan_to_num(self.noise_var[c])
        # a running mean at first, then an average over noisy_learn_s
        k = self.noise_n[c] + 1.0
        self.noise_n[c] = k
        slow = min(1.0, self._slow_period_s / self.config.health.noisy_learn_s)
        alpha = np.maximum(1.0 / k, slow)
        self.noise_var[c] = base + alpha * (v - base)
        self._update_drop_threshold()

    def _update_drop_threshold(self) -> None:
        """The sudden-drop test's threshold per sensor (Pa): ``emergency_drop_sigma``
        times its learnt noise (at least 1 Pa) once learnt over a minute and while
        it is healthy, else infinite."""
        k = self.limits.emergency_drop_sigma
        ok = self.usable & (self.noise_n >= 60) & np.isfinite(self.noise_var) & (k > 0)
        sig = np.fmax(np.sqrt(np.where(ok, self.noise_var, 1.0)), 1.0)
        self._drop_thr = np.where(ok, k * sig, np.inf)

    def _fast_drop(self, now_s: float) -> np.ndarray | None:
        """Volumes where two or more healthy sensors each read a sudden drop: the
        mean fall rate (Pa/min) of those sensors, NaN elsewhere; None if none.

        Each sensor's newest valid sample (undelayed: the spike filter's
        register) against the median of its previous ``2 h`` samples and their
        median time: the drop must exceed ``emergency_drop_sigma`` times the
        sensor's usual noise (``_learn_noise``; at least 1 Pa) plus the fall the
        EMERGENCY rate allows over that time.  One sensor's step or spike
        cannot raise it; a leak that opens between two samples can.
        """
        L = self.limits
        Rp = self.Rp
        W = self._reg_w
        thr = self._drop_thr
        # screen (every tick, so three numpy calls): a drop this large below the
        # register's highest sample in two sensors, or nothing
        with np.errstate(invalid="ignore"):
            cand = Rp.max(axis=1) - self.H1[2] > thr
        if np.count_nonzero(cand) < 2:
            return None
        cand &= (self.reg_n >= W) & self.usable
        newest = (self.reg_n - 1) % W
        p_new = Rp[np.arange(self.n_channels), newest]
        c = np.flatnonzero(cand)
        keep = np.ones((len(c), W), dtype=bool)
        keep[np.arange(len(c)), newest[c]] = False
        prev_p = Rp[c][keep].reshape(len(c), W - 1)
        prev_t = self.Rt[c][keep].reshape(len(c), W - 1)
        drop = np.median(prev_p, axis=1) - p_new[c]
        dt = self.Rt[c, newest[c]] - np.median(prev_t, axis=1)
        allow = L.emergency_rate_pa_min / 60.0 * np.maximum(dt, 0.0)
        vote_c = np.zeros(self.n_channels, dtype=bool)
        vote_c[c] = (drop > thr[c] + allow) & (dt > 0)
        n_vote = vote_c.astype(float) @ self.member.T
        if not (n_vote >= 2).any():
            return None
        rate_c = np.zeros(self.n_channels)
        with np.errstate(invalid="ignore", divide="ignore"):
            rate_c[c] = np.where(dt > 0, drop / dt * 60.0, 0.0)
            mean_rate = (np.where(vote_c, rate_c, 0.0) @ self.member.T) / n_vote
        return np.where(n_vote >= 2, mean_rate, np.nan)

    def _onset_leak(self, vol: dict, n_h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Volumes where a window longer than the best one shows the leak by itself,
        and its mass rate (kg/day; NaN elsewhere).

        Just after a leak starts, a long window still holds the time before it:
        its slope is smaller than the short window's, which ends the search for
        the best window there, while the short window alone may not yet be
        significant.  Such a longer window under-reads the leak, so if it is
        above the limit and significant on its own (and the sensors vote on it)
        the leak is real.  Only windows that read *less* than the best count:
        after a leak stops, the long windows that still remember it do not hold
        the alarm up.
        """
        L = self.limits
        fq, fse, filled = vol["fq"], vol["fse"], vol["filled"]
        best_j, best_s = vol["best_j"], vol["best_s"]
        km = vol["k_mass"]
        kmc = km[self.ch_vol]
        out = np.zeros(len(self.volume_names), dtype=bool)
        value = np.full(len(self.volume_names), np.nan)
        with np.errstate(invalid="ignore", divide="ignore"):
            for j in range(self._nW):
                m_j = -km * fq[j]
                cand = (
                    filled[j]
                    & (j > best_j)
                    & (best_j >= 0)
                    & (fq[j] > best_s)
                    & (m_j > L.caution_leak_kg_day)
                    & (m_j > L.caution_sigma * km * fse[j])
                )
                if not cand.any():
                    continue
                m_c = -kmc * vol["sq_c"][j]
                vote = (m_c > L.vote_fraction * L.caution_leak_kg_day) & (
                    m_c > L.vote_sigma * kmc * vol["se_c"][j]
                )
                hit = cand & self._voted(vote, n_h)
                value = np.where(hit, np.fmax(value, m_j), value)
                out |= hit
        return out, value

    def _volume_alarms(self, now_s, vol, level_p, events) -> None:
        """CAUTION leak, WARNING reserve and EMERGENCY reserve from the fused estimates."""
        L = self.limits
        h = L.hysteresis
        mdot, mse = vol["mdot"], vol["mdot_se"]
        res = vol["res_lin"]
        settled = self._volume_settled(now_s)
        sq_c, se_c = vol["sq_c"], vol["se_c"]
        with np.errstate(invalid="ignore", divide="ignore"):
            z = mdot / mse
            signif = z > L.caution_sigma
            # per-sensor votes on the volume's best window
            bj = vol["best_j"][self.ch_vol]
            cidx = np.arange(self.n_channels)
            sj = np.where(bj >= 0, sq_c[np.maximum(bj, 0), cidx], np.nan)
            sej = np.where(bj >= 0, se_c[np.maximum(bj, 0), cidx], np.nan)
            km = vol["k_mass"][self.ch_vol]
            m_c = -km * sj
            leak_vote = (m_c > L.vote_fraction * L.caution_leak_kg_day) & (
                m_c > L.vote_sigma * km * sej
            )
            res_c = np.where(sj < 0, np.maximum(level_p - self.config.p_min_pa, 0) / -sj, np.inf)
            sig_c = -sj > L.vote_sigma * sej
            warn_vote = sig_c & (res_c < L.warning_reserve_s / L.vote_fraction)
            crit_vote = sig_c & (res_c < L.emergency_reserve_s / L.vote_fraction)
            # clear on evidence: the estimate clear_sigma errors towards the worse
            # side is inside the limit with the hysteresis
            cs = L.clear_sigma
            leak_hi = mdot + cs * mse
            fall_hi = -vol["best_s"] + cs * vol["best_se"]
            head = np.maximum(vol["p_now"] - self.config.p_min_pa, 0.0)
            res_lo = np.where(fall_hi > 0, head / fall_hi, np.inf)
        n_h = vol["n_h"]
        leak = signif & (mdot > L.caution_leak_kg_day) & self._voted(leak_vote, n_h)
        onset, m_onset = self._onset_leak(vol, n_h)
        leak |= onset
        fams = (
            (  # CAUTION leak
                0,
                settled & leak,
                leak_hi < L.caution_leak_kg_day * (1 - h),
                np.where(onset & ~(mdot > m_onset), m_onset, mdot),
                L.caution_leak_kg_day,
                L.caution_persistence_s,
            ),
            (  # WARNING reserve
                1,
                settled & signif & (res < L.warning_reserve_s) & self._voted(warn_vote, n_h),
                res_lo > L.warning_reserve_s * (1 + h),
                res,
                L.warning_reserve_s,
                L.warning_persistence_s,
            ),
            (  # EMERGENCY reserve
                3,
                settled & signif & (res < L.emergency_reserve_s) & self._voted(crit_vote, n_h),
                res_lo > L.emergency_reserve_s * (1 + h),
                res,
                L.emergency_reserve_s,
                L.emergency_persistence_s,
            ),
        )
        # An alarm clears only on evidence: a volume whose sensors are all out of
        # range or faulty (an emptied module reads below its sensors' range) keeps
        # its leak alarms up rather than reporting a return to normal.
        seen = n_h > 0
        for fi, rc, cc, val, lim, pers in fams:
            self._update_family(fi, rc, cc & seen & ~rc, val, lim, pers, now_s, events)

    def _advisory_alarms(self, now_s, events) -> None:
        L = self.limits
        hc = self.config.health
        active = self._active_faults
        rows, cols = np.nonzero(active)
        live = self._live["s"]
        cand = set(zip(rows.tolist(), cols.tolist(), strict=True))
        cand.update(live)
        limits_for = {
            0: lambda c: float(
                np.fmax(self.stale_after_s[c], hc.stale_periods * self.period_est[c])
            ),
            1: lambda c: float(hc.stuck_samples),
        }
        for c, k in sorted(cand):
            key = ("s", c, k)
            kind = FAULT_KINDS[k]
            a = live.get((c, k))
            if a is None:
                unit = {0: "s", 1: "samples"}.get(k, "")
                a = live[(c, k)] = self._alarm(
                    key, self.sensor_ids[c], AlarmLevel.ADVISORY, FAULT_ALARM[kind], unit
                )
            on = bool(active[c, k])
            val = float(self.fault_value[c, k]) if k < 2 else (1.0 if on else 0.0)
            lim = limits_for[k](c) if k in limits_for else 0.0
            ev = a.update(
                now_s, on, not on, val, lim, L.advisory_persistence_s, hc.recover_s, self.replay
            )
            if ev is not None:
                events.append(ev)
            if a.idle():
                del self._alarms[key]
                del live[(c, k)]
        # unknown addresses per link: raised when new ones come, clear after recover_s without
        for link, count in self.unknown.items():
            key = ("l", link)
            seen = self._unknown_seen.get(link, (0, -math.inf))
            if count != seen[0]:
                seen = (count, now_s)
                self._unknown_seen[link] = seen
            fresh = (now_s - seen[1]) < hc.recover_s
            a = self._alarms.get(key)
            if a is None:
                if not fresh:
                    continue
                a = self._alarm(
                    key, link, AlarmLevel.ADVISORY, AlarmKind.LINK_UNKNOWN_ADDRESS, "frames"
                )
            ev = a.update(now_s, fresh, not fresh, float(count), 0.0, 0.0, 0.0, self.replay)
            if ev is not None:
                events.append(ev)
            if a.idle():
                del self._alarms[key]

    def acknowledge(
        self, alarm_key: str | None = None, now_s: float | None = None
    ) -> list[AlarmEvent]:
        """Acknowledge one alarm by key (``"source:KIND"``) or all (None).

        The events are returned and also reported with the next tick.
        """
        t = self.last_tick_s if now_s is None else now_s
        if t is None or math.isnan(t):
            t = 0.0
        out = []
        for key, a in list(self._alarms.items()):
            if alarm_key is not None and a.key != alarm_key:
                continue
            ev = a.acknowledge(t, self.replay)
            if ev is not None:
                out.append(ev)
            if a.idle():
                self._forget(key)
        self._pending_events.extend(out)
        if out and not self.replay:
            for ev in out:
                for fn in self._responses:
                    fn(ev)
        return out

    def _forget(self, key: tuple) -> None:
        del self._alarms[key]
        if key[0] == "v":
            self._live["v"].get(key[1], {}).pop(key[2], None)
        elif key[0] == "s":
            self._live["s"].pop((key[1], key[2]), None)

    def active_alarms(self) -> list[ActiveAlarm]:
        """Alarms not NORMAL (raised, or returned to normal but unacknowledged), worst first."""
        out = [a.snapshot() for a in self._alarms.values() if a.state is not AlarmState.NORMAL]
        out.sort(key=lambda x: (-int(x.level), x.key))
        return out

    def snapshot(self) -> dict:
        """A JSON-ready picture of the core: counters, alarms, latest estimates."""
        res = self.last_result
        return {
            "ticks": self.tick_count,
            "samples": self.samples_total,
            "unknown_samples": dict(self.unknown),
            "t_s": None if res is None else res.t_s,
            "limit_set": self.limit_set_name,
            "hatches": dict(self.hatch_open),
            "active_alarms": [
                {
                    "key": a.key,
                    "level": a.level.name,
                    "state": a.state.name,
                    "value": _num(a.value),
                    "limit": _num(a.limit),
                    "unit": a.unit,
                }
                for a in self.active_alarms()
            ],
            "volumes": [] if res is None else [v.to_json_dict() for v in res.volumes],
            "sensors": [] if res is None else [s.to_json_dict() for s in res.sensors],
        }

    # --- building result objects (lazily, off the hot path) -------------------
    def _build_volumes(self, d: dict) -> tuple[VolumeEstimate, ...]:
        out = []
        for v, name in enumerate(self.volume_names):
            slopes = tuple(
                WindowSlope(
                    float(self.windows_s[j]),
                    float(d["fp"][j, v]),
                    float(d["fpse"][j, v]),
                    float(d["fq"][j, v]),
                    float(d["fse"][j, v]),
                    bool(d["filled"][j, v]),
                )
                for j in range(self._nW)
            )
            bj = int(d["best_j"][v])
            out.append(
                VolumeEstimate(
                    volume=name,
                    group=d["groups"][v],
                    group_volume_m3=float(d["group_m3"][v]),
                    pressure_pa=float(d["p_now"][v]),
                    pressure_comp_pa=float(d["q_now"][v]),
                    temperature_k=float(d["temp_k"][v]),
                    dpdt=slopes,
                    best_window_s=float(self.windows_s[bj]) if bj >= 0 else math.nan,
                    mass_rate_kg_day=float(d["mdot"][v]),
                    mass_rate_sigma_kg_day=float(d["mdot_se"][v]),
                    hole_mm=float(d["hole_mm"][v]),
                    reserve_s_linear=float(d["res_lin"][v]),
                    reserve_s_orifice=float(d["res_orf"][v]),
                    regime=d["regime"][v],
                    regime_exponent=float(d["regime_n"][v]),
                    n_healthy_sensors=int(d["n_h"][v]),
                )
            )
        return tuple(out)

    def _build_sensors(self, d: dict, now_s: float) -> tuple[SensorEstimate, ...]:
        states = list(HealthState)
        out = []
        for c, sid in enumerate(self.sensor_ids):
            reasons = tuple(k for i, k in enumerate(FAULT_KINDS) if d["faults"][c, i])
            out.append(
                SensorEstimate(
                    sensor_id=sid,
                    volume=self.sensors[c].volume,
                    health=states[int(d["state"][c])],
                    reasons=reasons,
                    last_sample_age_s=float(now_s - d["arrival"][c]),
                    pressure_pa=float(d["p"][c]),
                    temperature_c=float(d["temp"][c]),
                    dpdt_comp_pa_s=tuple(float(x) for x in d["slope_q"][:, c]),
                    clock_offset_s=float(d["off"][c]),
                    clock_rate_ppm=float(d["rate"][c]),
                    samples=int(d["n"][c]),
                )
            )
        return tuple(out)

    @property
    def memory_bytes(self) -> int:
        """Bytes held by the ring buffer tiers."""
        return sum(t.nbytes for t in self.tiers)
