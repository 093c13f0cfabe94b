"""The alarm book: every ``Alarm`` state machine, by typed key.

Volume alarms are keyed by (family, volume), sensor advisories by (channel,
fault kind), link advisories by link.  Only alarms that are not idle are kept:
an alarm is created when its condition first holds and forgotten once it is
NORMAL with no timer running.  Events come out in the order the alarms are
stepped.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from firmware_host.alarms import ActiveAlarm, Alarm, AlarmEvent, AlarmKind, AlarmLevel, AlarmState
from firmware_host.stages.alarm_rules import VolumeConditions, VolumeFamily
from firmware_host.stages.health import FAULT_KINDS, STALE_COL, STUCK_COL, FaultKind

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
_FAULT_UNIT = {STALE_COL: "s", STUCK_COL: "samples"}


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


AlarmKey = VolumeAlarmKey | SensorAlarmKey | LinkAlarmKey


class AlarmBook:
    """The alarms of one monitor; ``replay`` marks every event as replayed."""

    def __init__(self, volume_names: list[str], sensor_ids: list[str], *, replay: bool):
        self.volume_names = volume_names
        self.sensor_ids = sensor_ids
        self.replay = replay
        self._alarms: dict[AlarmKey, Alarm] = {}
        self._volume_live: dict[VolumeFamily, dict[int, Alarm]] = {}
        self._sensor_live: dict[tuple[int, int], Alarm] = {}
        self._unknown_seen: dict[str, tuple[int, float]] = {}

    def _new(self, key: AlarmKey, source: str, level: AlarmLevel, kind: AlarmKind, unit: str):
        a = self._alarms[key] = Alarm(source, level, kind, unit)
        return a

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
    ) -> None:
        """Step the sensor advisories: one per active fault ``(C, K)`` and those not idle.

        The stale advisory's value is the sample age (s) against
        ``stale_limit_s()``, the stuck one's the run of identical samples
        against ``stuck_samples``; the others are 1 while active, limit 0.
        """
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
            ev = a.update(now_s, on, not on, val, lim, persistence_s, clear_s, self.replay)
            if ev is not None:
                events.append(ev)
            if a.idle():
                del self._alarms[SensorAlarmKey(c, k)]
                del live[(c, k)]

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

    def active(self) -> list[ActiveAlarm]:
        """Alarms not NORMAL (raised, or returned to normal but unacknowledged), worst first."""
        out = [a.snapshot() for a in self._alarms.values() if a.state is not AlarmState.NORMAL]
        out.sort(key=lambda x: (-int(x.level), x.key))
        return out
