"""The station's MQTT wire contract: topic tree and JSON messages (schema 1).

Shared by the board's publisher (``firmware_host.runtime.station_publisher``)
and the aggregator (``station``); pure Python, no MQTT client here.

Topics, all under ``cabinwatch/v1/<station>/``.  Everything a board writes
is under its own ``node/<node>/`` (so one ACL pattern, ``node/%u/#``, confines
it, and two boards that see one volume never overwrite each other's retained
state; the aggregator fuses them)::

    node/<node>/status                           retained; birth (online) and Will (offline)
    node/<node>/volume/<volume>/estimate         telemetry rate, QoS 0, expiry ~3 periods
    node/<node>/volume/<volume>/alarm            retained: the volume's current highest level
    node/<node>/volume/<volume>/alarm/event      every transition, QoS 1, not retained
    node/<node>/hatch/<hatch>/state              retained: open / closed / unknown
    station/assessment                           retained: the isolation advisor's picture

Every payload is a JSON object with ``"schema": 1``, written with
``allow_nan=False`` (non-finite numbers go out as ``null``), UTF-8, MQTT 5
content type ``application/json``.  Times are Unix seconds (``t_unix``).
Units: pressure Pa, rates Pa/s, mass rates kg/day, hole mm, reserve s.
"""

from __future__ import annotations

import enum
import json
import math
import re
from dataclasses import MISSING, asdict, dataclass, field, fields

SCHEMA_VERSION = 1
ROOT = "cabinwatch/v1"
CONTENT_TYPE = "application/json"

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class WireError(ValueError):
    """A payload or topic that does not follow this contract (one line)."""


def check_name(what: str, name: str) -> str:
    """A station, node, volume or hatch name usable as one topic level."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise WireError(f"{what} {name!r}: use 1-64 of A-Z a-z 0-9 _ . -")
    return name


# -- topics ----------------------------------------------------------------


def station_root(station: str) -> str:
    return f"{ROOT}/{check_name('station', station)}"


def node_root(station: str, node: str) -> str:
    return f"{station_root(station)}/node/{check_name('node', node)}"


def node_status_topic(station: str, node: str) -> str:
    return f"{node_root(station, node)}/status"


def estimate_topic(station: str, node: str, volume: str) -> str:
    return f"{node_root(station, node)}/volume/{check_name('volume', volume)}/estimate"


def alarm_topic(station: str, node: str, volume: str) -> str:
    return f"{node_root(station, node)}/volume/{check_name('volume', volume)}/alarm"


def alarm_event_topic(station: str, node: str, volume: str) -> str:
    return f"{alarm_topic(station, node, volume)}/event"


def hatch_topic(station: str, node: str, hatch: str) -> str:
    return f"{node_root(station, node)}/hatch/{check_name('hatch', hatch)}/state"


def assessment_topic(station: str) -> str:
    return f"{station_root(station)}/station/assessment"


def node_subtree(station: str, node: str) -> str:
    """What a board may write (its ACL): everything under its node."""
    return f"{node_root(station, node)}/#"


def station_subscription(station: str) -> str:
    """What the aggregator subscribes to: the whole station."""
    return f"{station_root(station)}/#"


class TopicKind(enum.Enum):
    NODE_STATUS = "node_status"
    ESTIMATE = "estimate"
    ALARM = "alarm"
    ALARM_EVENT = "alarm_event"
    HATCH = "hatch"
    ASSESSMENT = "assessment"


@dataclass(frozen=True)
class Topic:
    """A parsed topic: ``node`` None for the station's own topics, ``name`` the
    volume or hatch (None for status and assessment)."""

    station: str
    kind: TopicKind
    node: str | None
    name: str | None


def parse_topic(topic: str) -> Topic:
    """The parts of a topic of this tree; WireError otherwise."""
    parts = topic.split("/")
    if len(parts) < 4 or "/".join(parts[:2]) != ROOT:
        raise WireError(f"topic {topic!r}: not under {ROOT}/")
    station, rest = parts[2], parts[3:]
    match rest:
        case ["node", node, "status"]:
            return Topic(station, TopicKind.NODE_STATUS, node, None)
        case ["node", node, "volume", vol, "estimate"]:
            return Topic(station, TopicKind.ESTIMATE, node, vol)
        case ["node", node, "volume", vol, "alarm"]:
            return Topic(station, TopicKind.ALARM, node, vol)
        case ["node", node, "volume", vol, "alarm", "event"]:
            return Topic(station, TopicKind.ALARM_EVENT, node, vol)
        case ["node", node, "hatch", hatch, "state"]:
            return Topic(station, TopicKind.HATCH, node, hatch)
        case ["station", "assessment"]:
            return Topic(station, TopicKind.ASSESSMENT, None, None)
    raise WireError(f"topic {topic!r}: unknown kind")


# -- messages --------------------------------------------------------------


class HatchPosition(enum.Enum):
    OPEN = "open"
    CLOSED = "closed"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class NodeStatus:
    """A board's birth (``online``) or death (Will, ``online`` False).

    ``session`` grows at every start of the node (persisted by the board): a
    status with a lower session than the last birth seen is stale and ignored.
    """

    node: str
    session: int
    online: bool
    t_unix: float
    version: str = ""
    volumes: tuple[str, ...] = ()
    hatches: tuple[str, ...] = ()


@dataclass(frozen=True)
class VolumeEstimateMsg:
    """One volume's estimate as a board sees it (``firmware_host`` VolumeEstimate).

    ``settled`` False: rate, hole and reserves are still settling (shown with
    their sigma, never as a fact).  ``reserve_s`` is the orifice-law reserve to
    the configured minimum pressure (None: not losing pressure).  ``window_s``
    the span of the estimation window behind the rate: the rate describes the
    last ``window_s`` seconds, so it says nothing yet of a change younger than that.
    """

    node: str
    session: int
    volume: str
    t_unix: float
    group: tuple[str, ...]
    group_volume_m3: float
    pressure_pa: float | None
    dpdt_comp_pa_s: float | None
    dpdt_comp_sigma_pa_s: float | None
    mass_rate_kg_day: float | None
    mass_rate_sigma_kg_day: float | None
    hole_mm: float | None
    reserve_s: float | None
    regime: str
    healthy_sensors: int
    settled: bool
    state: str
    expiry_s: float | None = None
    #: the span (s) of the window the rate comes from (the board's best window);
    #: None: unknown (an older board) or no window yet
    window_s: float | None = None


@dataclass(frozen=True)
class AlarmStateMsg:
    """A volume's current highest alarm (retained); ``level`` None: nothing active."""

    node: str
    session: int
    volume: str
    t_unix: float
    level: str | None
    kind: str | None
    since_unix: float | None
    value: float | None = None
    limit: float | None = None
    unit: str = ""
    message: str = ""


@dataclass(frozen=True)
class AlarmEventMsg:
    """One alarm transition (QoS 1); ``seq`` counts a node's events in a session."""

    node: str
    session: int
    seq: int
    volume: str
    t_unix: float
    level: str
    kind: str
    transition: str
    value: float | None
    limit: float | None
    unit: str
    message: str


@dataclass(frozen=True)
class HatchStateMsg:
    """A hatch's position, who said so (``node`` and ``source``: operator, config) and when."""

    node: str
    hatch: str
    position: str
    source: str
    t_unix: float


@dataclass(frozen=True)
class AssessmentMsg:
    """The isolation advisor's picture (retained on ``station/assessment``).

    ``probabilities`` per volume (sum 1 over the candidates); ``proposal`` the
    next action (``{"hatch", "close", "hold_s", "reason"}``) or None;
    ``located`` the volume found (None until decided); ``evidence`` per side
    (``{"volumes", "mass_rate_kg_day", "sigma_kg_day"}``).
    """

    station: str
    t_unix: float
    leaking: bool
    probabilities: dict[str, float]
    proposal: dict | None
    located: str | None
    evidence: list[dict] = field(default_factory=list)
    message: str = ""


MESSAGES: dict[TopicKind, type] = {
    TopicKind.NODE_STATUS: NodeStatus,
    TopicKind.ESTIMATE: VolumeEstimateMsg,
    TopicKind.ALARM: AlarmStateMsg,
    TopicKind.ALARM_EVENT: AlarmEventMsg,
    TopicKind.HATCH: HatchStateMsg,
    TopicKind.ASSESSMENT: AssessmentMsg,
}


def _finite(x):
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    return x


def encode(msg) -> bytes:
    """The payload of ``msg`` (a dataclass above): strict JSON, NaN/inf as null."""
    d = _finite(asdict(msg))
    d["schema"] = SCHEMA_VERSION
    return json.dumps(d, allow_nan=False, separators=(",", ":")).encode("utf-8")


def _no_constant(name: str):
    raise WireError(f"non-JSON number {name}")


def decode(kind: TopicKind, payload: bytes):
    """The message of ``kind`` in ``payload``; WireError naming what is wrong."""
    try:
        d = json.loads(payload.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WireError(f"{kind.value}: not JSON ({exc})") from None
    if not isinstance(d, dict):
        raise WireError(f"{kind.value}: not a JSON object")
    if d.get("schema") != SCHEMA_VERSION:
        raise WireError(f"{kind.value}: schema {d.get('schema')!r}, expected {SCHEMA_VERSION}")
    cls = MESSAGES[kind]
    names = {f.name for f in fields(cls)}
    required = {
        f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING
    }
    missing = required - d.keys()
    if missing:
        raise WireError(f"{kind.value}: missing {', '.join(sorted(missing))}")
    args = {k: v for k, v in d.items() if k in names}  # newer fields: ignored
    for k in ("volumes", "hatches", "group"):
        if k in args and isinstance(args[k], list):
            args[k] = tuple(args[k])
    return cls(**args)
