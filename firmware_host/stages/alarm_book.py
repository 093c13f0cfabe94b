"""The alarm book: every ``Alarm`` state machine, by typed key.

Volume alarms are keyed by (family, volume), sensor advisories by (channel,
fault kind), link advisories by link, output advisories (``OUTPUT_FAILED``,
``step_output``, reported by the runtime) by output name.  Only alarms that are not idle are kept:
an alarm is created when its condition first holds and forgotten once it is
NORMAL with no timer running.  Events come out in the order the alarms are
stepped.

Messages name a sensor by its configured name and id (``sensor_labels``,
``"cabin-a (bus0:5)"``) and say the quantity the health stage measured
(``SensorReadings``); sources and keys stay ``link:addr``.  A volume in CAUTION
LEAK whose leak rate rises markedly gets an ADVISORY ``LEAK_RATE_ROSE``
(``step_rate_rose``, the rule ``alarm_rules.leak_rate_rose``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from firmware_host.alarms import (
    ActiveAlarm,
    Alarm,
    AlarmEvent,
    AlarmKind,
    AlarmLevel,
    AlarmState,
    Detail,
    Transition,
    describe,
    fmt_duration,
    fmt_num,
)
from firmware_host.config import HealthConfig, Limits
from firmware_host.stages.alarm_rules import (
    VolumeConditions,
    VolumeFamily,
    leak_rate_rose,
    rate_rose_base,
)
from firmware_host.stages.health import (
    DISAGREE_COL,
    DRIFT_COL,
    FAULT_KINDS,
    NOISY_COL,
    STALE_COL,
    STUCK_COL,
    FaultKind,
    column,
)

FAULT_ALARM = {
    FaultKind.STALE: AlarmKind.SENSOR_STALE,
    FaultKind.STUCK: AlarmKind.SENSOR_STUCK,
    FaultKind.OUT_OF_RANGE: AlarmKind.SENSOR_OUT_OF_RANGE,
    FaultKind.STATUS: AlarmKind.SENSOR_STATUS,
    FaultKind.REBOOT: AlarmKind.SENSOR_REBOOT,
    FaultKind.SPIKE: AlarmKind.SENSOR_SPIKE,
    FaultKind.DISAGREE: AlarmKind.SENSOR_DISAGREE,
    FaultKind.NOISY: AlarmKind.SENSOR_NOISY,
    FaultKind.DRIFT: AlarmKind.SENSOR_DRIFT,
}
_FAULT_UNIT = {STALE_COL: "s", STUCK_COL: "samples"}
_OUT_OF_RANGE_COL = column(FaultKind.OUT_OF_RANGE)
_STATUS_COL = column(FaultKind.STATUS)
_REBOOT_COL = column(FaultKind.REBOOT)
_SPIKE_COL = column(FaultKind.SPIKE)


@dataclass(frozen=True)
class SensorReadings:
    """What the health stage measured, per sensor ``(C,)``, for the advisories' words.

    ``noise_pa``: residual scatter per sample of the window that tells a noisy
    sensor (Pa), ``usual_noise_pa`` its usual value learnt while healthy;
    ``level_offset_pa`` the fitted pressure now minus the median of the
    volume's sensors that have no fault of their own, ``slope_offset_pa_s`` the
    same of the slope (Pa/s) in the window up to ``disagree_max_window_s``
    where it is most significant, ``slope_window_s`` (NaN: unknown);
    ``range_pa`` ``(2, C)`` the calibrated ranges; ``health`` the thresholds;
    ``drift_pa_s``/``drift_window_s``/``drift_limit_pa_s`` the slow drift
    against the group's other sensors, its window and limit
    (``SensorHealth.check_drift``; NaN: none found).
    """

    noise_pa: np.ndarray
    usual_noise_pa: np.ndarray
    level_offset_pa: np.ndarray
    slope_offset_pa_s: np.ndarray
    slope_window_s: np.ndarray
    range_pa: np.ndarray
    health: HealthConfig
    drift_pa_s: np.ndarray | None = None
    drift_window_s: np.ndarray | None = None
    drift_limit_pa_s: np.ndarray | None = None

    @staticmethod
    def from_stages(
        fits_stderr_pa_s: np.ndarray,
        fits_n_samples: np.ndarray,
        fits_slope_pa_s: np.ndarray,
        level_now_pa: np.ndarray,
        windows_s: np.ndarray,
        noise_window: int,
        slope_windows: np.ndarray,
        scatter_base: np.ndarray,
        own_fault: np.ndarray,
        has_sample: np.ndarray,
        volume_of: np.ndarray,
        range_pa: np.ndarray,
        health: HealthConfig,
        drift: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    ) -> SensorReadings:
        """From the window fits and the health stage's arrays.

        The health stage judges noise by ``stderr * sqrt(n)`` of the
        ``disagree_window_s`` window (the slope's error times the root of the
        sample count: Pa/s, proportional to the per-sample scatter) and keeps
        its usual value in those units (``SensorHealth.scatter_base``).  A
        window of W s evenly covered has ``Sxx = n W^2 / 12``, so the scatter
        per sample is that times ``W / sqrt(12)`` (Pa).
        """
        j, ws = noise_window, slope_windows  # the windows SensorHealth compares
        to_pa = windows_s[j] / np.sqrt(12.0)
        noise = fits_stderr_pa_s[j] * np.sqrt(np.maximum(fits_n_samples[j], 1.0)) * to_pa
        ok = has_sample & ~own_fault
        C = len(level_now_pa)
        offset = np.full(C, np.nan)
        slope_off = np.full((len(ws), C), np.nan)
        for v in np.unique(volume_of).tolist():
            members = volume_of == v
            for x, out in (
                (level_now_pa, offset),
                *((fits_slope_pa_s[w], slope_off[i]) for i, w in enumerate(ws)),
            ):
                peers = x[members & ok & np.isfinite(x)]
                if len(peers):
                    out[members] = x[members] - np.median(peers)
        # the slope's offset in the window where it is most significant against the
        # sensor's own standard error (health flags any window)
        z = np.abs(slope_off) / fits_stderr_pa_s[ws]
        big = np.where(np.isfinite(z), z, -1.0)
        k = big.argmax(axis=0)
        idx = np.arange(C)
        return SensorReadings(
            noise,
            scatter_base * to_pa,
            offset,
            slope_off[k, idx],
            windows_s[ws][k],
            range_pa,
            health,
            *(drift or (None, None, None)),
        )


def _drift_words(c: int, r: SensorReadings | None, raised: bool) -> str:
    """The drift advisory in words: how far, over which window, against which limit."""
    if r is None or r.drift_pa_s is None or not np.isfinite(r.drift_pa_s[c]):
        if not raised:
            return "no drift against its group's other sensors for the hold time"
        return "drifts from its group's other sensors"
    day = 86400.0
    return (
        f"drifts {fmt_num(float(r.drift_pa_s[c]) * day)} Pa/day from its group's other "
        f"sensors over {fmt_duration(float(r.drift_window_s[c]))} (limit "
        f"{fmt_num(float(r.drift_limit_pa_s[c]) * day)} Pa/day: half the CAUTION limit "
        "in its volume's estimate)"
    )


def sensor_detail(
    col: int, c: int, value: float, limit: float, raised: bool, r: SensorReadings | None
) -> str:
    """Sensor ``c``'s fault in column ``col`` in words; ``value``/``limit`` as the
    advisory carries them (age and stale limit in s, stuck run and limit);
    ``raised`` False: as it returns to normal."""
    kind = FAULT_ALARM[FAULT_KINDS[col]]
    if col in (STALE_COL, STUCK_COL):
        return describe(kind, value, limit, "", raised)
    hc = None if r is None else r.health
    if col == NOISY_COL and r is not None and np.isfinite(r.noise_pa[c]):
        return (
            f"noise {fmt_num(float(r.noise_pa[c]))} Pa, "
            f"usual {fmt_num(float(r.usual_noise_pa[c]))} Pa"
        )
    if col == NOISY_COL:
        return "residual scatter several times its usual and its volume's quietest sensor's"
    if col == DISAGREE_COL:
        off = np.nan if r is None else float(r.level_offset_pa[c])
        if not np.isfinite(off):
            return "level or slope away from its volume's other sensors"
        where = f"level {fmt_num(abs(off))} Pa {'above' if off >= 0 else 'below'}"
        if hc is not None and abs(off) <= hc.disagree_pa:
            ds = float(r.slope_offset_pa_s[c])
            if np.isfinite(ds):
                return (
                    f"rate {fmt_num(ds * 3600)} Pa/h from the volume's median "
                    f"over {fmt_duration(float(r.slope_window_s[c]))}, {where}"
                )
            return f"slope away from its volume's other sensors, {where} the median"
        return f"{where} the volume's median"
    if col == DRIFT_COL:
        return _drift_words(c, r, raised)
    if not raised:
        return "no such fault for the hold time"
    if col == _OUT_OF_RANGE_COL:
        if r is None:
            return "samples outside the calibrated range"
        lo, hi = r.range_pa[0, c] / 1000.0, r.range_pa[1, c] / 1000.0
        t_lo, t_hi = hc.temp_range_c
        return (
            f"samples outside {fmt_num(lo)}-{fmt_num(hi)} kPa or "
            f"{fmt_num(t_lo)}..{fmt_num(t_hi)} deg C, or flagged out of range"
        )
    if col == _STATUS_COL:
        return "the sensor's status reports a fault"
    if col == _REBOOT_COL:
        return "rebooted (its clock went back or it said so)"
    if col == _SPIKE_COL:
        if hc is None:
            return "spike removed"
        return (
            f"spike removed (more than {fmt_num(hc.spike_pa)} Pa or "
            f"{fmt_num(hc.spike_temp_k)} K from its neighbours' median)"
        )
    return describe(kind, value, limit, "")


@dataclass(frozen=True)
class VolumeAlarmKey:
    family: VolumeFamily
    volume: int


@dataclass(frozen=True)
class SensorAlarmKey:
    channel: int
    fault_col: int  # column of the FaultKind (``health.column``)


@dataclass(frozen=True)
class LinkAlarmKey:
    link: str


@dataclass(frozen=True)
class RateRoseKey:
    volume: int


@dataclass(frozen=True)
class OutputAlarmKey:
    """An output of the runtime: ``archive``, ``telemetry``, ``capture:LINK``."""

    output: str


AlarmKey = VolumeAlarmKey | SensorAlarmKey | LinkAlarmKey | RateRoseKey | OutputAlarmKey


class AlarmBook:
    """The alarms of one monitor; ``replay`` marks every event as replayed."""

    def __init__(
        self,
        volume_names: list[str],
        sensor_ids: list[str],
        *,
        replay: bool,
        sensor_labels: list[str] | None = None,
    ):
        self.volume_names = volume_names
        self.sensor_ids = sensor_ids
        self.sensor_labels = list(sensor_ids) if sensor_labels is None else sensor_labels
        self.replay = replay
        self._alarms: dict[AlarmKey, Alarm] = {}
        self._volume_live: dict[VolumeFamily, dict[int, Alarm]] = {}
        self._sensor_live: dict[tuple[int, int], Alarm] = {}
        self._unknown_seen: dict[str, tuple[int, float]] = {}
        # LEAK_RATE_ROSE: per volume, the rate (kg/day) a further rise is judged
        # from while its CAUTION LEAK is active and when that CAUTION or the last
        # advisory was raised (s), and the advisories not idle
        self._rose_base: dict[int, float] = {}
        self._rose_since: dict[int, float] = {}
        self._rose_live: dict[int, Alarm] = {}

    def _new(
        self,
        key: AlarmKey,
        source: str,
        level: AlarmLevel,
        kind: AlarmKind,
        unit: str,
        label: str | None = None,
    ):
        a = self._alarms[key] = Alarm(source, level, kind, unit, label)
        return a

    def any_volume_live(self) -> bool:
        """True if any volume alarm (leak, reserve, rapid depressurization) is not idle."""
        return any(self._volume_live.values())

    def any_sensor_live(self) -> bool:
        """True if any sensor advisory is not idle."""
        return bool(self._sensor_live)

    def family_live(self, family: VolumeFamily) -> bool:
        """True if any alarm of ``family`` is not idle."""
        return bool(self._volume_live.get(family))

    def step_volumes(
        self, cond: VolumeConditions, now_s: float, clear_s: float, events: list[AlarmEvent]
    ) -> None:
        """Step the alarms of ``cond.family``: those raised now and those not idle."""
        fam = cond.family
        live = self._volume_live.setdefault(fam, {})
        rc, cc, val, pers = cond.raise_, cond.clear, cond.value, cond.persistence_s
        cand = set(np.flatnonzero(rc).tolist())
        cand.update(live)
        for v in sorted(cand):
            a = live.get(v)
            if a is None:
                a = live[v] = self._new(
                    VolumeAlarmKey(fam, v), self.volume_names[v], fam.level, fam.kind, fam.unit
                )
            ev = a.update(
                now_s,
                bool(rc[v]),
                bool(cc[v]),
                float(val[v]),
                float(cond.limit),
                float(pers[v]) if isinstance(pers, np.ndarray) else pers,
                clear_s,
                self.replay,
            )
            if ev is not None:
                events.append(ev)
            if a.idle():
                del live[v]
                del self._alarms[VolumeAlarmKey(fam, v)]

    def step_sensors(
        self,
        now_s: float,
        active: np.ndarray,
        fault_value: np.ndarray,
        stale_limit_s: Callable[[], np.ndarray],
        stuck_samples: float,
        persistence_s: float,
        clear_s: float,
        events: list[AlarmEvent],
        readings: Callable[[], SensorReadings] | None = None,
    ) -> None:
        """Step the sensor advisories: one per active fault ``(C, K)`` and those not idle.

        The stale advisory's value is the sample age (s) against
        ``stale_limit_s()``, the stuck one's the run of identical samples
        against ``stuck_samples``; the others are 1 while active, limit 0.
        ``readings()`` (called only for an event) gives the words of the others'
        messages: the noise and its usual value, the level's offset.
        """
        got: list[SensorReadings | None] = []

        def detail_of(c: int, k: int) -> Detail:
            def detail(value: float, limit: float, raised: bool) -> str:
                if not got:
                    got.append(None if readings is None else readings())
                return sensor_detail(k, c, value, limit, raised, got[0])

            return detail

        rows, cols = np.nonzero(active)
        live = self._sensor_live
        cand = set(zip(rows.tolist(), cols.tolist(), strict=True))
        cand.update(live)
        stale_limit = None
        for c, k in sorted(cand):
            a = live.get((c, k))
            if a is None:
                a = live[(c, k)] = self._new(
                    SensorAlarmKey(c, k),
                    self.sensor_ids[c],
                    AlarmLevel.ADVISORY,
                    FAULT_ALARM[FAULT_KINDS[k]],
                    _FAULT_UNIT.get(k, ""),
                    self.sensor_labels[c],
                )
            on = bool(active[c, k])
            if k == STALE_COL:
                if stale_limit is None:
                    stale_limit = stale_limit_s()
                val, lim = float(fault_value[c, k]), float(stale_limit[c])
            elif k == STUCK_COL:
                val, lim = float(fault_value[c, k]), float(stuck_samples)
            else:
                val, lim = (1.0 if on else 0.0), 0.0
            ev = a.update(
                now_s, on, not on, val, lim, persistence_s, clear_s, self.replay, detail_of(c, k)
            )
            if ev is not None:
                events.append(ev)
            if a.idle():
                del self._alarms[SensorAlarmKey(c, k)]
                del live[(c, k)]

    def step_rate_rose(
        self,
        now_s: float,
        mass_rate_kg_day: np.ndarray,
        sigma_kg_day: np.ndarray,
        limits: Limits,
        events: list[AlarmEvent],
    ) -> None:
        """ADVISORY ``LEAK_RATE_ROSE`` where a volume's CAUTION LEAK is active
        (raised, acknowledged or not) and its mass rate rose markedly
        (``alarm_rules.leak_rate_rose``) from the rate the CAUTION was raised
        at, or the last such advisory was (the rate now while either is less
        than ``alarm_rules.RATE_ROSE_SETTLE_S`` old: ``rate_rose_base``); call
        after ``step_volumes`` of the LEAK family.  A further rise raises it
        again; it returns to normal (at once) when the CAUTION does.  Value:
        the rate now, limit: the rate it rose from (kg/day)."""
        caution = self._volume_live.get(VolumeFamily.LEAK, {})
        base = self._rose_base
        for v, a in caution.items():
            if a.state in (AlarmState.ACTIVE_UNACK, AlarmState.ACTIVE_ACK):
                # called every slow tick after the CAUTION's step: a CAUTION not yet
                # in ``base`` was raised now, and its value is the one it was raised at
                if v not in base:
                    base[v] = a.value
                    self._rose_since[v] = a.raised_t
            else:
                base.pop(v, None)
        for v in [v for v in base if v not in caution]:
            del base[v]
        if not base and not self._rose_live:
            return
        V = len(self.volume_names)
        from_kg_day = np.full(V, np.nan)
        since = np.full(V, np.inf)
        for v, b in base.items():
            from_kg_day[v] = b
            since[v] = now_s - self._rose_since[v]
        from_kg_day = rate_rose_base(from_kg_day, mass_rate_kg_day, since)
        for v in base:
            base[v] = float(from_kg_day[v])
        rose = leak_rate_rose(from_kg_day, mass_rate_kg_day, sigma_kg_day, limits)
        for v in sorted(set(np.flatnonzero(rose).tolist()) | set(self._rose_live)):
            a = self._rose_live.get(v)
            if a is None:
                a = self._rose_live[v] = self._new(
                    RateRoseKey(v),
                    self.volume_names[v],
                    AlarmLevel.ADVISORY,
                    AlarmKind.LEAK_RATE_ROSE,
                    "kg/day",
                )
            b = base.get(v, math.nan)

            def detail(value: float, limit: float, raised: bool, b=b) -> str:
                if math.isnan(b):
                    return f"its CAUTION LEAK returned to normal (leak {fmt_num(value)} kg/day)"
                return f"leak rate rose from {fmt_num(b)} to {fmt_num(value)} kg/day"

            ev = a.update(
                now_s,
                bool(rose[v]),
                v not in base,
                float(mass_rate_kg_day[v]),
                b,
                limits.caution_persistence_s,
                0.0,
                self.replay,
                detail,
                reannounce=True,
            )
            if ev is not None:
                events.append(ev)
                if ev.transition is Transition.RAISED:
                    base[v] = ev.value
                    self._rose_since[v] = now_s
            if a.idle():
                del self._rose_live[v]
                del self._alarms[RateRoseKey(v)]

    def step_links(
        self, now_s: float, unknown: dict[str, int], clear_s: float, events: list[AlarmEvent]
    ) -> None:
        """Unknown addresses per link: raised when new ones come, clear after
        ``clear_s`` (s) without."""
        for link, count in unknown.items():
            key = LinkAlarmKey(link)
            seen = self._unknown_seen.get(link, (0, -math.inf))
            if count != seen[0]:
                seen = (count, now_s)
                self._unknown_seen[link] = seen
            fresh = (now_s - seen[1]) < clear_s
            a = self._alarms.get(key)
            if a is None:
                if not fresh:
                    continue
                a = self._new(
                    key, link, AlarmLevel.ADVISORY, AlarmKind.LINK_UNKNOWN_ADDRESS, "frames"
                )
            ev = a.update(now_s, fresh, not fresh, float(count), 0.0, 0.0, 0.0, self.replay)
            if ev is not None:
                events.append(ev)
            if a.idle():
                del self._alarms[key]

    def step_output(
        self, output: str, error: str | None, now_s: float, events: list[AlarmEvent]
    ) -> None:
        """ADVISORY ``OUTPUT_FAILED`` of ``output``: raised at once while ``error`` (the
        failure in words) is not None, returned to normal at once when it is None.
        Value 1 while failing, limit 0; the message names the error."""
        key = OutputAlarmKey(output)
        a = self._alarms.get(key)
        failing = error is not None
        if a is None:
            if not failing:
                return
            a = self._new(key, output, AlarmLevel.ADVISORY, AlarmKind.OUTPUT_FAILED, "")

        def detail(value: float, limit: float, raised: bool) -> str:
            if raised:
                return f"cannot write ({error}); monitoring continues"
            return "written again"

        ev = a.update(
            now_s,
            failing,
            not failing,
            1.0 if failing else 0.0,
            0.0,
            0.0,
            0.0,
            self.replay,
            detail,
        )
        if ev is not None:
            events.append(ev)
        if a.idle():
            del self._alarms[key]

    def acknowledge(self, alarm_key: str | None, t_s: float) -> list[AlarmEvent]:
        """Acknowledge one alarm by its string key (``"source:KIND"``) or all (None)
        at host time ``t_s`` (s); returns the events."""
        out = []
        for key, a in list(self._alarms.items()):
            if alarm_key is not None and a.key != alarm_key:
                continue
            ev = a.acknowledge(t_s, self.replay)
            if ev is not None:
                out.append(ev)
            if a.idle():
                self._forget(key)
        return out

    def _forget(self, key: AlarmKey) -> None:
        del self._alarms[key]
        if isinstance(key, VolumeAlarmKey):
            self._volume_live.get(key.family, {}).pop(key.volume, None)
        elif isinstance(key, SensorAlarmKey):
            self._sensor_live.pop((key.channel, key.fault_col), None)
        elif isinstance(key, RateRoseKey):
            self._rose_live.pop(key.volume, None)

    def active(self) -> list[ActiveAlarm]:
        """Alarms not NORMAL (raised, or returned to normal but unacknowledged), worst first."""
        out = [a.snapshot() for a in self._alarms.values() if a.state is not AlarmState.NORMAL]
        out.sort(key=lambda x: (-int(x.level), x.key))
        return out
