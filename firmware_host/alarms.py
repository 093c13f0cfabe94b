"""Alarm levels, events and the per-alarm state machine (ISA-18.2 style).

Each alarm (a key such as ``"cabin:LEAK"`` or ``"bus0:3:SENSOR_STUCK"``) is
raised when its condition has held for the persistence time, returns to normal
when the clear condition (the limit with hysteresis) has held for the clear
time, and latches until acknowledged:

    NORMAL --persist--> ACTIVE_UNACK --ack--> ACTIVE_ACK --clear--> NORMAL
                        ACTIVE_UNACK --clear--> RTN_UNACK --ack--> NORMAL

Every transition is an ``AlarmEvent``; its ``message`` says the alarm's
quantity in words (``describe``), naming a sensor by its configured name and
its ``link:addr`` id (``label``).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from dataclasses import dataclass


class AlarmLevel(enum.IntEnum):
    """Severity, ordered."""

    ADVISORY = 1
    CAUTION = 2
    WARNING = 3
    EMERGENCY = 4


class AlarmKind(enum.Enum):
    """What an alarm is about."""

    LEAK = "leak"  # CAUTION: mass loss above limit, significant
    LOW_RESERVE = "low_reserve"  # WARNING: reserve time below limit
    RAPID_DEPRESS = "rapid_depress"  # EMERGENCY: falling faster than the limit
    RESERVE_CRITICAL = "reserve_critical"  # EMERGENCY: reserve below the short limit
    SENSOR_STALE = "sensor_stale"
    SENSOR_STUCK = "sensor_stuck"
    SENSOR_OUT_OF_RANGE = "sensor_out_of_range"
    SENSOR_STATUS = "sensor_status"
    SENSOR_REBOOT = "sensor_reboot"
    SENSOR_SPIKE = "sensor_spike"
    SENSOR_DISAGREE = "sensor_disagree"
    SENSOR_NOISY = "sensor_noisy"
    #: ADVISORY: a slow drift against the group's other sensors (half the CAUTION limit)
    SENSOR_DRIFT = "sensor_drift"
    LINK_UNKNOWN_ADDRESS = "link_unknown_address"
    #: ADVISORY: a volume already in CAUTION LEAK leaks markedly faster (a second leak)
    LEAK_RATE_ROSE = "leak_rate_rose"
    #: ADVISORY: an output (archive, telemetry, a link's capture) cannot be written
    OUTPUT_FAILED = "output_failed"


class Transition(enum.Enum):
    """An alarm's change of state."""

    RAISED = "raised"
    RETURN_TO_NORMAL = "return_to_normal"
    ACKNOWLEDGED = "acknowledged"


class AlarmState(enum.Enum):
    NORMAL = "normal"
    ACTIVE_UNACK = "active_unack"
    ACTIVE_ACK = "active_ack"
    RTN_UNACK = "rtn_unack"


@dataclass(frozen=True)
class AlarmEvent:
    """One alarm transition at host time ``t_s`` (s).

    ``source`` is a volume name or a sensor id ``"link:addr"`` (or a link name);
    ``value`` the alarmed quantity and ``limit`` the limit crossed, both in
    ``unit``; ``message`` the same in words, for people (never parsed: ``key``,
    ``value``, ``limit`` and ``unit`` are the data); ``replayed`` is True for
    events from recorded data.
    """

    t_s: float
    source: str
    level: AlarmLevel
    kind: AlarmKind
    transition: Transition
    value: float
    limit: float
    unit: str
    message: str
    replayed: bool = False

    @property
    def key(self) -> str:
        return f"{self.source}:{self.kind.name}"

    def to_json_dict(self) -> dict:
        def num(x: float) -> float | None:
            return None if x is None or not math.isfinite(x) else round(float(x), 6)

        return {
            "t_s": round(self.t_s, 6),
            "key": self.key,
            "source": self.source,
            "level": self.level.name,
            "kind": self.kind.name,
            "transition": self.transition.name,
            "value": num(self.value),
            "limit": num(self.limit),
            "unit": self.unit,
            "message": self.message,
            "replayed": self.replayed,
        }


@dataclass(frozen=True)
class ActiveAlarm:
    """An alarm that is not NORMAL (raised, or returned to normal but unacknowledged)."""

    key: str
    source: str
    level: AlarmLevel
    kind: AlarmKind
    state: AlarmState
    raised_t_s: float
    value: float
    limit: float
    unit: str


#: the alarm's quantity in words, from its value, its limit and whether it is
#: raised (False: returned to normal) (``describe``)
Detail = Callable[[float, float, bool], str]


class Alarm:
    """State machine of one alarm key.

    ``label`` names the source in messages (a sensor's configured name and its
    id, ``"cabin-a (bus0:5)"``); the key and the events' ``source`` keep
    ``source``.
    """

    __slots__ = (
        "key",
        "source",
        "label",
        "level",
        "kind",
        "unit",
        "state",
        "pending_since",
        "clear_since",
        "raised_t",
        "value",
        "limit",
    )

    def __init__(
        self, source: str, level: AlarmLevel, kind: AlarmKind, unit: str, label: str | None = None
    ):
        self.key = f"{source}:{kind.name}"
        self.source = source
        self.label = source if label is None else label
        self.level = level
        self.kind = kind
        self.unit = unit
        self.state = AlarmState.NORMAL
        self.pending_since: float | None = None
        self.clear_since: float | None = None
        self.raised_t = math.nan
        self.value = math.nan
        self.limit = math.nan

    def idle(self) -> bool:
        """NORMAL with no persistence timer running: needs no update while its condition is off."""
        return self.state is AlarmState.NORMAL and self.pending_since is None

    def _event(self, t, transition, message, replayed) -> AlarmEvent:
        return AlarmEvent(
            t_s=t,
            source=self.source,
            level=self.level,
            kind=self.kind,
            transition=transition,
            value=self.value,
            limit=self.limit,
            unit=self.unit,
            message=message,
            replayed=replayed,
        )

    def update(
        self,
        now_s: float,
        raise_cond: bool,
        clear_cond: bool,
        value: float,
        limit: float,
        persistence_s: float,
        clear_s: float,
        replayed: bool,
        detail: Detail | None = None,
        reannounce: bool = False,
    ) -> AlarmEvent | None:
        """Advance the state machine; returns the transition event, if any.

        ``raise_cond`` (value beyond the limit) and ``clear_cond`` (value back
        inside by the hysteresis) are exclusive; both False = in the dead band.
        ``detail(value, limit, raised)`` says the quantity in the event's message
        (default ``describe``; called only when there is an event).
        ``reannounce``: a raise condition that persists while the alarm is
        already active raises it again (a new RAISED event, unacknowledged).
        """
        if math.isfinite(value):
            self.value = value
        self.limit = limit
        event = None
        if raise_cond:
            self.clear_since = None
            if self.pending_since is None:
                self.pending_since = now_s
            if (reannounce or self.state in (AlarmState.NORMAL, AlarmState.RTN_UNACK)) and (
                now_s - self.pending_since >= persistence_s - 1e-9
            ):
                self.state = AlarmState.ACTIVE_UNACK
                self.raised_t = now_s
                self.pending_since = None if reannounce else self.pending_since
                event = self._event(
                    now_s,
                    Transition.RAISED,
                    f"{self.level.name} {self.kind.name} {self.label}: "
                    f"{self._detail(detail, limit, True)}",
                    replayed,
                )
        else:
            self.pending_since = None
        if clear_cond and self.state in (AlarmState.ACTIVE_UNACK, AlarmState.ACTIVE_ACK):
            if self.clear_since is None:
                self.clear_since = now_s
            if now_s - self.clear_since >= clear_s - 1e-9:
                self.state = (
                    AlarmState.NORMAL
                    if self.state is AlarmState.ACTIVE_ACK
                    else AlarmState.RTN_UNACK
                )
                self.clear_since = None
                event = self._event(
                    now_s,
                    Transition.RETURN_TO_NORMAL,
                    f"{self.kind.name} {self.label} returned to normal: "
                    f"{self._detail(detail, limit, False)}",
                    replayed,
                )
        elif not clear_cond:
            self.clear_since = None
        return event

    def _detail(self, detail: Detail | None, limit: float, raised: bool) -> str:
        if detail is None:
            return describe(self.kind, self.value, limit, self.unit, raised)
        return detail(self.value, limit, raised)

    def acknowledge(self, now_s: float, replayed: bool) -> AlarmEvent | None:
        if self.state is AlarmState.ACTIVE_UNACK:
            self.state = AlarmState.ACTIVE_ACK
        elif self.state is AlarmState.RTN_UNACK:
            self.state = AlarmState.NORMAL
        else:
            return None
        return self._event(
            now_s, Transition.ACKNOWLEDGED, f"{self.kind.name} {self.label} acknowledged", replayed
        )

    def snapshot(self) -> ActiveAlarm:
        return ActiveAlarm(
            key=self.key,
            source=self.source,
            level=self.level,
            kind=self.kind,
            state=self.state,
            raised_t_s=self.raised_t,
            value=self.value,
            limit=self.limit,
            unit=self.unit,
        )


def fmt_num(x: float) -> str:
    """A number for people: whole units from 100 up, 3 significant digits from 1,
    2 below (``"6020"``, ``"21.3"``, ``"2"``, ``"0.35"``)."""
    if x is None or not math.isfinite(x):
        return "unknown" if x is None or math.isnan(x) else ("-inf" if x < 0 else "inf")
    if abs(x) >= 100:
        return f"{x:.0f}"
    if abs(x) >= 1:
        return f"{x:.3g}"
    return f"{x:.2g}"


def fmt_duration(s: float) -> str:
    """A time span for people: ``"42 s"``, ``"12 min"``, ``"3.2 h"``, ``"4.5 days"``."""
    if s is None or not math.isfinite(s):
        return fmt_num(s)
    a = abs(s)
    if a < 90:
        return f"{fmt_num(s)} s"
    if a < 90 * 60:
        m = s / 60
        return f"{m:.1f} min" if abs(m) < 9.95 else f"{m:.0f} min"
    if a < 48 * 3600:
        return f"{fmt_num(s / 3600)} h"
    return f"{fmt_num(s / 86400)} days"


def describe(kind: AlarmKind, value: float, limit: float, unit: str, raised: bool = True) -> str:
    """An alarm's quantity in words with units, e.g. ``"leak 21.3 kg/day, limit
    2 kg/day"`` (``raised`` False: as it returns to normal); the sensor
    advisories' words come from the alarm book, which knows the health stage's
    values."""
    v, lim = fmt_num(value), fmt_num(limit)
    if kind is AlarmKind.LEAK:
        return f"leak {v} kg/day, limit {lim} kg/day"
    if kind in (AlarmKind.LOW_RESERVE, AlarmKind.RESERVE_CRITICAL):
        return f"reserve {fmt_duration(value)} to the minimum pressure, limit {fmt_duration(limit)}"
    if kind is AlarmKind.RAPID_DEPRESS:
        return f"pressure falling {v} Pa/min, limit {lim} Pa/min"
    if kind is AlarmKind.LINK_UNKNOWN_ADDRESS:
        return f"{v} samples from addresses not in the configuration"
    if kind is AlarmKind.SENSOR_STALE:
        if not raised:
            return f"samples again, the last {fmt_duration(value)} ago"
        return f"no sample for {fmt_duration(value)} (limit {fmt_duration(limit)})"
    if kind is AlarmKind.SENSOR_STUCK:
        if not raised:
            return "its samples vary again"
        return f"{v} identical samples (limit {lim})"
    if kind is AlarmKind.LEAK_RATE_ROSE:
        return f"leak {v} kg/day, raised at {lim} kg/day"
    u = f" {unit}" if unit else ""
    return f"{v}{u}, limit {lim}{u}"
