"""The monitor loop's side of station publishing: ticks into wire messages.

``StationFeed.record_tick(result)`` runs on the loop thread and costs a few
microseconds on most ticks: it turns the tick's alarm transitions into
``AlarmEventMsg`` (numbered ``seq`` within the session), a volume's changed
highest alarm into ``AlarmStateMsg``, a hatch moved since the last tick into
``HatchStateMsg`` (``source`` operator; at start every hatch with ``source``
config), and at the telemetry rate every volume's estimate into a
``VolumeEstimateMsg``; all go to the publisher's ``Handoff`` (never blocks).

An alarm belongs to a volume when its source is the volume or one of the
volume's sensors; link and output alarms (``OUTPUT_FAILED``...) have no
volume topic and are not published.  A volume's level is that of its highest
raised alarm (raised, acknowledged or not); ``since_unix`` when that alarm was
raised.  Host times (``t_s``, the loop's clock) become Unix times through
``unix_now`` read at the tick: ``t_unix = unix_now() - (result.t_s - t_s)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from common import station_wire as wire
from firmware_host.alarms import ActiveAlarm, AlarmState
from firmware_host.runtime.station_publisher import Handoff

#: Alarm states that count for a volume's current level.
RAISED = (AlarmState.ACTIVE_UNACK, AlarmState.ACTIVE_ACK)
#: An estimate message expires after this many telemetry periods.
EXPIRY_PERIODS = 3.0


def _f(x) -> float | None:
    """A finite float, or None."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


class StationFeed:
    """One board's messages for the station; see module docstring."""

    def __init__(
        self,
        handoff: Handoff,
        *,
        node: str,
        session: int,
        volumes: list[str],
        sensor_volumes: dict[str, str],
        active_alarms: Callable[[], list[ActiveAlarm]],
        hatch_open: Callable[[], dict[str, bool]],
        unix_now: Callable[[], float],
        rate_hz: float = 1.0,
    ):
        self.handoff = handoff
        self.node = node
        self.session = session
        self.volumes = list(volumes)
        self._volume_of = {v: v for v in volumes} | dict(sensor_volumes)
        self._active = active_alarms
        self._hatch_open = hatch_open
        self._unix = unix_now
        self.period_s = 1.0 / rate_hz
        self.expiry_s = EXPIRY_PERIODS * self.period_s
        self._next_t = -math.inf
        self.seq = 0
        self._levels: dict[str, tuple] = {}
        self._hatches = dict(hatch_open())

    def start(self, now_s: float) -> None:
        """The initial retained states: no alarm on any volume, every hatch from config."""
        now_unix = self._unix()
        for name, is_open in self._hatches.items():
            self.handoff.put_hatch(self._hatch(name, is_open, "config", now_unix))
        self._alarm_states(now_s, now_unix, set(self.volumes))

    def _hatch(self, name: str, is_open: bool, source: str, t_unix: float) -> wire.HatchStateMsg:
        position = wire.HatchPosition.OPEN if is_open else wire.HatchPosition.CLOSED
        return wire.HatchStateMsg(self.node, name, position.value, source, t_unix)

    def record_tick(self, result) -> None:
        now_unix = None
        if result.events:
            now_unix = self._unix()
            touched = set()
            for ev in result.events:
                volume = self._volume_of.get(ev.source)
                if volume is None:
                    continue
                touched.add(volume)
                self.seq += 1
                self.handoff.put_event(
                    wire.AlarmEventMsg(
                        node=self.node,
                        session=self.session,
                        seq=self.seq,
                        volume=volume,
                        t_unix=now_unix - (result.t_s - ev.t_s),
                        level=ev.level.name,
                        kind=ev.kind.name,
                        transition=ev.transition.name,
                        value=_f(ev.value),
                        limit=_f(ev.limit),
                        unit=ev.unit,
                        message=ev.message,
                    )
                )
            if touched:
                self._alarm_states(result.t_s, now_unix, touched)
        hatches = self._hatch_open()
        if hatches != self._hatches:
            now_unix = now_unix or self._unix()
            for name, is_open in hatches.items():
                if self._hatches.get(name) != is_open:
                    self.handoff.put_hatch(self._hatch(name, is_open, "operator", now_unix))
            self._hatches = dict(hatches)
        if result.t_s >= self._next_t:
            volumes = result.volumes
            if volumes:
                self._next_t = result.t_s + self.period_s
                now_unix = now_unix or self._unix()
                t_unix = now_unix - (result.t_s - result.estimates_t_s)
                if not math.isfinite(t_unix):
                    t_unix = now_unix
                self.handoff.put_estimates([self._estimate(v, t_unix) for v in volumes])

    def _alarm_states(self, now_s: float, now_unix: float, volumes: set[str]) -> None:
        """The current level of each of ``volumes``, handed over where it changed."""
        best: dict[str, ActiveAlarm] = {}
        for a in self._active():
            volume = self._volume_of.get(a.source)
            if volume not in volumes or a.state not in RAISED:
                continue
            cur = best.get(volume)
            if cur is None or (a.level, -a.raised_t_s) > (cur.level, -cur.raised_t_s):
                best[volume] = a
        for volume in sorted(volumes):
            a = best.get(volume)
            key = None if a is None else (a.key, a.level, a.raised_t_s)
            if volume in self._levels and self._levels[volume] == key:
                continue
            self._levels[volume] = key
            if a is None:
                msg = wire.AlarmStateMsg(
                    self.node, self.session, volume, now_unix, None, None, None
                )
            else:
                msg = wire.AlarmStateMsg(
                    node=self.node,
                    session=self.session,
                    volume=volume,
                    t_unix=now_unix,
                    level=a.level.name,
                    kind=a.kind.name,
                    since_unix=now_unix - (now_s - a.raised_t_s),
                    value=_f(a.value),
                    limit=_f(a.limit),
                    unit=a.unit,
                )
            self.handoff.put_alarm(msg)

    def _estimate(self, v, t_unix: float) -> wire.VolumeEstimateMsg:
        best = next((w for w in v.dpdt if w.window_s == v.best_window_s), None)
        return wire.VolumeEstimateMsg(
            node=self.node,
            session=self.session,
            volume=v.volume,
            t_unix=t_unix,
            group=tuple(v.group),
            group_volume_m3=float(v.group_volume_m3),
            pressure_pa=_f(v.pressure_pa),
            dpdt_comp_pa_s=None if best is None else _f(best.dpdt_comp_pa_s),
            dpdt_comp_sigma_pa_s=None if best is None else _f(best.stderr_comp_pa_s),
            mass_rate_kg_day=_f(v.mass_rate_kg_day),
            mass_rate_sigma_kg_day=_f(v.mass_rate_sigma_kg_day),
            hole_mm=_f(v.hole_mm),
            reserve_s=_f(v.reserve_s_orifice),
            regime=v.regime.name,
            healthy_sensors=int(v.n_healthy_sensors),
            settled=bool(v.settled),
            state=v.state.name,
            expiry_s=self.expiry_s,
            window_s=None if best is None else _f(best.window_s),
        )
