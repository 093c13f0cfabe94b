"""Alarm levels, events and the per-alarm state machine (ISA-18.2 style).

Each alarm (a key such as ``"cabin:LEAK"`` or ``"bus0:3:SENSOR_STUCK"``) is
raised when its condition has held for the persistence time, returns to normal
when the clear condition (the limit with hysteresis) has held for the clear
time, and latches until acknowledged:

    NORMAL --persist--> ACTIVE_UNACK --ack--> ACTIVE_ACK --clear--> NORMAL
                        ACTIVE_UNACK --clear--> RTN_UNACK --ack--> NORMAL

Every transition is an ``AlarmEvent``.
"""

from __future__ import annotations

import enum
import math
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
    LINK_UNKNOWN_ADDRESS = "link_unknown_address"


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
    ``unit``; ``replayed`` is True for events from recorded data.
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


class Alarm:
    """State machine of one alarm key."""

    __slots__ = (
        "key",
        "source",
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

    def __init__(self, source: str, level: AlarmLevel, kind: AlarmKind, unit: str):
        self.key = f"{source}:{kind.name}"
        self.source = source
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
    ) -> AlarmEvent | None:
        """Advance the state machine; returns the transition event, if any.

        ``raise_cond`` (value beyond the limit) and ``clear_cond`` (value back
        inside by the hysteresis) are exclusive; both False = in the dead band.
        """
        if math.isfinite(value):
            self.value = value
        self.limit = limit
        event = None
        if raise_cond:
            self.clear_since = None
            if self.pending_since is None:
                self.pending_since = now_s
            if self.state in (AlarmState.NORMAL, AlarmState.RTN_UNACK) and (
                now_s - self.pending_since >= persistence_s - 1e-9
            ):
                self.state = AlarmState.ACTIVE_UNACK
                self.raised_t = now_s
                event = self._event(
                    now_s,
                    Transition.RAISED,
                    f"{self.level.name} {self.kind.name} {self.source}: "
                    f"{_fmt(self.value)} {self.unit} beyond limit {_fmt(limit)} {self.unit}",
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
                    f"{self.kind.name} {self.source} returned to normal: "
                    f"{_fmt(self.value)} {self.unit} (limit {_fmt(limit)} {self.unit})",
                    replayed,
                )
        elif not clear_cond:
            self.clear_since = None
        return event

    def acknowledge(self, now_s: float, replayed: bool) -> AlarmEvent | None:
        if self.state is AlarmState.ACTIVE_UNACK:
            self.state = AlarmState.ACTIVE_ACK
        elif self.state is AlarmState.RTN_UNACK:
            self.state = AlarmState.NORMAL
        else:
            return None
        return self._event(
            now_s, Transition.ACKNOWLEDGED, f"{self.kind.name} {self.source} acknowledged", replayed
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


def _fmt(x: float) -> str:
    if x is None or not math.isfinite(x):
        return str(x)
    return f"{x:.4g}"
