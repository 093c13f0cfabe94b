"""The station picture: a pure state machine fed with ``(topic, payload, now)``.

It keeps, from the boards' messages (``common.station_wire``):

* per node its status: a birth (``online``) or Will (``online`` False) with the
  node's session number; a status, estimate or alarm of a lower session than
  the last one seen is stale and ignored, so an old Will that the broker
  publishes late never overrides a newer birth; a message of a higher session
  is a new run of the node (its birth may not have been seen);
* per (node, volume) the latest estimate, stale after its ``expiry_s`` (else
  ``offline_after_s``) and ignored once its node is offline;
* per (node, volume) the alarm state and the last alarm events;
* per hatch each node's report (kept even while its node is offline: the
  retained report of a board whose old Will is retained counts again once
  the board's newer session shows): the newest report of a node that is not
  offline wins; none: unknown (None).

From these it fuses each volume seen by several boards (inverse variance on
pressure, weight = healthy sensors, and on the volume's share of its board's
group mass rate) and builds the segments the advisor reasons on:
``graph.segments(hatch states)`` (an unknown hatch counts as closed) and, per
segment, the sum of the board groups' mass rates, each group counted once
(``VolumeEstimateMsg.group``: the volumes one board's number covers), their
variances added.

Everything the picture needs is retained on the broker except the estimates,
which come at the telemetry rate: a restarted aggregator is whole after one
telemetry period.  No clock is read here: ``now`` (Unix seconds, s) comes in.
Units: Pa, kg/day, s, m^3.
"""

from __future__ import annotations

import enum
import math
from collections import deque
from dataclasses import dataclass, field, fields

from common import station_wire as wire
from common.station_wire import HatchPosition, TopicKind, WireError
from station.segment import SegmentEstimate

#: Alarm levels from lowest to highest (``firmware_host.alarms.Level`` names).
LEVELS = ("ADVISORY", "CAUTION", "WARNING", "EMERGENCY")
#: How many alarm events the picture keeps (newest last).
MAX_EVENTS = 50


class NodeState(enum.Enum):
    UNKNOWN = "unknown"  # named in the station file, never heard from
    ONLINE = "online"  # its birth (or a message of its current session) seen
    STALE = "stale"  # online, but silent for offline_after_s
    OFFLINE = "offline"  # its Will (online false) of its current session seen


def level_rank(level: str | None) -> int:
    """0 for no alarm, 1..4 ADVISORY..EMERGENCY; an unknown level name ranks as ADVISORY."""
    if not level:
        return 0
    try:
        return LEVELS.index(level.upper()) + 1
    except ValueError:
        return 1


@dataclass(frozen=True)
class Counters:
    """Messages taken and left out since the start."""

    accepted: int = 0
    bad: int = 0  # not a topic or payload of the contract, or inconsistent with its topic
    stale: int = 0  # of an older session, or of a node already offline
    unknown: int = 0  # a node, volume or hatch the station file does not name
    last_problem: str = ""


@dataclass(frozen=True)
class NodeView:
    node: str
    state: NodeState
    session: int | None
    age_s: float | None  # since the last message taken (s)
    version: str


@dataclass(frozen=True)
class VolumeView:
    """One volume, fused over the boards that estimate it.

    ``mass_rate_kg_day``: this volume's share of the leak (its board group's
    mass rate times its part of the group's volume), fused by inverse variance;
    ``reserve_s``: the shortest reserve any board gives; ``nodes``: the boards
    whose fresh estimate is in it; ``watched_by``: the boards the station file names.
    """

    volume: str
    pressure_pa: float | None
    mass_rate_kg_day: float | None
    sigma_kg_day: float | None
    reserve_s: float | None
    healthy_sensors: int
    settled: bool
    regime: str
    alarm: str | None
    alarm_kind: str | None
    alarm_nodes: tuple[str, ...]
    nodes: tuple[str, ...]
    watched_by: tuple[str, ...]
    t_unix: float | None


@dataclass(frozen=True)
class HatchView:
    name: str
    open: bool | None  # None: unknown
    node: str | None  # who said so
    source: str
    t_unix: float | None  # when it said so
    since_s: float | None  # since when this state holds


@dataclass(frozen=True)
class SegmentView(SegmentEstimate):
    """A segment (volumes joined by open hatches) and what is known of it: the
    advisor's ``SegmentEstimate`` (handed to it as is) and where its numbers come from.

    ``covered``: the volumes whose boards' numbers are in the sum; the rest of
    the segment is counted at the same loss per m^3 (one segment, one
    pressure).  ``nodes``: the boards that contributed.
    """

    covered: frozenset[str]
    nodes: tuple[str, ...]


@dataclass(frozen=True)
class Snapshot:
    """The whole picture at ``t_unix``: what the view, the JSON lines and the advisor use."""

    station: str
    t_unix: float
    nodes: tuple[NodeView, ...]
    volumes: tuple[VolumeView, ...]
    hatches: tuple[HatchView, ...]
    segments: tuple[SegmentView, ...]
    events: tuple[wire.AlarmEventMsg, ...]
    counters: Counters

    def hatch_states(self) -> dict[str, bool | None]:
        return {h.name: h.open for h in self.hatches}


@dataclass
class _Node:
    session: int | None = None
    online: bool | None = None  # None: no status seen (taken online from its messages)
    version: str = ""
    last_rx: float | None = None


@dataclass
class _Est:
    msg: wire.VolumeEstimateMsg
    rx_s: float


@dataclass
class _Hatch:
    reports: dict[str, tuple[wire.HatchStateMsg, float]] = field(default_factory=dict)
    state: bool | None = None
    since_s: float | None = None
    by: wire.HatchStateMsg | None = None
    #: when it was last seen to move between open and closed (station s; None: never)
    moved_s: float | None = None


def _finite(x) -> float | None:
    if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
        return None
    return float(x)


def _regime(ests: list) -> str:
    """The boards' regime of a volume: theirs if they agree, "mixed", "" without estimates."""
    regimes = {m.regime for m in ests}
    if not regimes:
        return ""
    return regimes.pop() if len(regimes) == 1 else "mixed"


def _fuse(values: list[tuple[float, float | None]]) -> tuple[float | None, float | None]:
    """Inverse-variance mean of ``(value, sigma)``; values without a usable sigma
    count only when none has one (then their plain mean, sigma None)."""
    weighted = [(v, s) for v, s in values if s is not None and s > 0]
    if weighted:
        w = [1.0 / (s * s) for _, s in weighted]
        total = sum(w)
        return sum(wi * v for wi, (v, _) in zip(w, weighted, strict=True)) / total, math.sqrt(
            1.0 / total
        )
    if values:
        return sum(v for v, _ in values) / len(values), None
    return None, None


class StationPicture:
    """The station as its boards report it; ``feed`` it every message.

    ``graph`` and ``boards`` (node -> volumes) come from the station file;
    ``offline_after_s``: a node silent this long is STALE and an estimate
    without its own expiry is stale after it.  ``start_s``: the picture's
    start (station time, s), the ``since_s`` of a segment no hatch report has
    shaped.  ``board_time``: a board's ``t_unix`` in station time (the identity
    unless the station runs sped up, ``StationClock.from_unix``).
    """

    def __init__(self, config, *, start_s: float, board_time=None):
        self.station = config.name
        self.graph = config.graph
        self.offline_after_s = config.offline_after_s
        self.start_s = start_s
        self._bt = board_time if board_time is not None else (lambda t: t)
        self._root = wire.station_root(config.name) + "/"
        self._watchers = {v: config.boards_of(v) for v in self.graph.volumes}
        self._nodes: dict[str, _Node] = {b.node: _Node() for b in config.boards}
        self._est: dict[tuple[str, str], _Est] = {}
        self._alarms: dict[tuple[str, str], wire.AlarmStateMsg] = {}
        self._hatches: dict[str, _Hatch] = {h: _Hatch() for h in self.graph.hatches}
        self._events: deque[wire.AlarmEventMsg] = deque(maxlen=MAX_EVENTS)
        self._event_keys: deque[tuple] = deque(maxlen=4 * MAX_EVENTS)
        self._c = {"accepted": 0, "bad": 0, "stale": 0, "unknown": 0}
        self._problem = ""
        #: the message the last ``feed`` that returned True took
        self.last_msg = None
        self._views: dict[str, tuple] = {}

    # -- feeding -------------------------------------------------------------

    def feed(self, topic: str, payload: bytes, now: float, *, retained: bool = False) -> bool:
        """Take one message received at ``now`` (Unix s); True if the picture changed.
        A bad message is counted and skipped, never raised."""
        try:
            t = wire.parse_topic(topic)
            if t.kind is TopicKind.ASSESSMENT:
                return False  # our own output (or another aggregator's)
            if not topic.startswith(self._root):
                return self._skip("unknown", f"{topic}: another station")
            msg = wire.decode(t.kind, payload)
        except WireError as exc:
            return self._skip("bad", str(exc))
        except Exception as exc:  # a payload whose fields break the dataclass
            return self._skip("bad", f"{topic}: {type(exc).__name__}: {exc}")
        node = self._nodes.get(t.node)
        if node is None:
            return self._skip("unknown", f"node {t.node!r} is not in the station file")
        if getattr(msg, "node", None) != t.node:
            return self._skip("bad", f"{topic}: payload of node {getattr(msg, 'node', None)!r}")
        handler = {
            TopicKind.NODE_STATUS: self._status,
            TopicKind.ESTIMATE: self._estimate,
            TopicKind.ALARM: self._alarm,
            TopicKind.ALARM_EVENT: self._event,
            TopicKind.HATCH: self._hatch,
        }[t.kind]
        problem = _check_types(msg)
        if problem:
            return self._skip("bad", f"{topic}: {problem}")
        result = handler(t, msg, node, now, retained)
        if result is not None:
            return self._skip(*result)
        node.last_rx = now
        self._c["accepted"] += 1
        self.last_msg = msg
        return True

    def _skip(self, what: str, problem: str) -> bool:
        self._c[what] += 1
        self._problem = problem
        return False

    def _session(self, node: _Node, session: int, now: float) -> tuple[str, str] | None:
        """Check a data message's session against the node's; a newer one is a new run."""
        if node.session is not None and session < node.session:
            return ("stale", f"session {session} older than {node.session}")
        if node.session is None or session > node.session:
            was_offline = node.online is False
            node.session, node.online = session, None
            if was_offline:
                self._recompute_hatches(now)
        elif node.online is False:
            return ("stale", f"session {session} already offline")
        return None

    def _status(self, t, msg: wire.NodeStatus, node: _Node, now: float, retained: bool):
        if node.session is not None and msg.session < node.session:
            return ("stale", f"{t.node}: status of session {msg.session} < {node.session}")
        node.session, node.online, node.version = msg.session, bool(msg.online), msg.version
        self._recompute_hatches(now)
        return None

    def _estimate(self, t, msg: wire.VolumeEstimateMsg, node: _Node, now: float, retained: bool):
        if msg.volume != t.name:
            return ("bad", f"{t.node}: estimate of {msg.volume!r} on topic of {t.name!r}")
        if msg.volume not in self.graph.volumes:
            return ("unknown", f"{t.node}: volume {msg.volume!r} is not in the station file")
        group = msg.group or (msg.volume,)
        if msg.volume not in group or any(v not in self.graph.volumes for v in group):
            return ("unknown", f"{t.node}: group {list(group)} of {msg.volume!r} not in the file")
        bad = self._session(node, msg.session, now)
        if bad:
            return bad
        rx = min(now, self._bt(msg.t_unix)) if retained else now
        prev = self._est.get((t.node, msg.volume))
        if prev is not None and prev.msg.session == msg.session and prev.msg.t_unix > msg.t_unix:
            return ("stale", f"{t.node}/{msg.volume}: estimate older than the one held")
        self._est[(t.node, msg.volume)] = _Est(msg, rx)
        return None

    def _alarm(self, t, msg: wire.AlarmStateMsg, node: _Node, now: float, retained: bool):
        if msg.volume != t.name:
            return ("bad", f"{t.node}: alarm of {msg.volume!r} on topic of {t.name!r}")
        if msg.volume not in self.graph.volumes:
            return ("unknown", f"{t.node}: volume {msg.volume!r} is not in the station file")
        bad = self._session(node, msg.session, now)
        if bad:
            return bad
        self._alarms[(t.node, msg.volume)] = msg
        return None

    def _event(self, t, msg: wire.AlarmEventMsg, node: _Node, now: float, retained: bool):
        if msg.volume != t.name:
            return ("bad", f"{t.node}: alarm event of {msg.volume!r} on topic of {t.name!r}")
        key = (msg.node, msg.session, msg.seq)
        if key in self._event_keys:
            return ("stale", f"{t.node}: alarm event {msg.seq} seen before")
        if node.session is not None and msg.session < node.session:
            return ("stale", f"{t.node}: event of session {msg.session} < {node.session}")
        self._event_keys.append(key)
        self._events.append(msg)
        return None

    def _hatch(self, t, msg: wire.HatchStateMsg, node: _Node, now: float, retained: bool):
        if msg.hatch != t.name:
            return ("bad", f"{t.node}: state of hatch {msg.hatch!r} on topic of {t.name!r}")
        h = self._hatches.get(msg.hatch)
        if h is None:
            return ("unknown", f"{t.node}: hatch {msg.hatch!r} is not in the station file")
        try:
            HatchPosition(msg.position)
        except (ValueError, TypeError):
            return ("bad", f"{t.node}: hatch position {msg.position!r}")
        prev = h.reports.get(t.node)
        if prev is not None and prev[0].t_unix > msg.t_unix:
            return ("stale", f"{t.node}: hatch report older than the one held")
        h.reports[t.node] = (msg, now)
        self._recompute_hatches(now)
        return None

    def _recompute_hatches(self, now: float) -> None:
        """Each hatch's state: the newest report of a node not offline (none: unknown).
        A state that changes holds since its report's time when that report is new,
        else since ``now`` (a node that went offline, an older report taking over)."""
        for h in self._hatches.values():
            live = [m for n, (m, _) in h.reports.items() if self._nodes[n].online is not False]
            best = max(live, key=lambda m: m.t_unix, default=None)
            state = None
            if best is not None and best.position != HatchPosition.UNKNOWN.value:
                state = best.position == HatchPosition.OPEN.value
            h.by = best
            if h.since_s is None:
                if best is not None:
                    h.state, h.since_s = state, min(now, self._bt(best.t_unix))
            elif state != h.state:
                t = None if best is None else self._bt(best.t_unix)
                new = t is not None and t > h.since_s
                was = h.state
                h.state, h.since_s = state, min(now, t) if new else now
                if was is not None and state is not None:
                    h.moved_s = h.since_s

    # -- reading -------------------------------------------------------------

    @property
    def counters(self) -> Counters:
        return Counters(**self._c, last_problem=self._problem)

    def node_state(self, name: str, now: float) -> NodeState:
        n = self._nodes[name]
        if n.online is False:
            return NodeState.OFFLINE
        if n.last_rx is None:
            return NodeState.UNKNOWN
        if now - n.last_rx > self.offline_after_s:
            return NodeState.STALE
        return NodeState.ONLINE

    def hatch_states(self) -> dict[str, bool | None]:
        """True open, False closed, None unknown."""
        return {name: h.state for name, h in self._hatches.items()}

    def _fresh(self, now: float) -> dict[tuple[str, str], wire.VolumeEstimateMsg]:
        out = {}
        for (node, vol), e in self._est.items():
            n = self._nodes[node]
            if n.online is False or e.msg.session != n.session:
                continue
            limit = e.msg.expiry_s if _finite(e.msg.expiry_s) else self.offline_after_s
            if now - e.rx_s <= limit:
                out[(node, vol)] = e.msg
        return out

    def snapshot(self, now: float) -> Snapshot:
        """The whole picture at ``now`` (Unix s)."""
        fresh = self._fresh(now)
        nodes = tuple(
            NodeView(
                name,
                self.node_state(name, now),
                n.session,
                None if n.last_rx is None else max(0.0, now - n.last_rx),
                n.version,
            )
            for name, n in self._nodes.items()
        )
        by_vol: dict[str, list[wire.VolumeEstimateMsg]] = {v: [] for v in self.graph.volumes}
        for (_, vol), m in fresh.items():
            by_vol[vol].append(m)
        alarms: dict[str, list[wire.AlarmStateMsg]] = {v: [] for v in self.graph.volumes}
        for (n, vol), a in self._alarms.items():
            if a.level and a.session == self._nodes[n].session:
                alarms[vol].append(a)
        volumes = tuple(self._volume_cached(v, by_vol[v], alarms[v]) for v in self.graph.volumes)
        hatches = tuple(
            HatchView(
                name,
                h.state,
                h.by.node if h.by else None,
                h.by.source if h.by else "",
                h.by.t_unix if h.by else None,
                h.since_s,
            )
            for name, h in self._hatches.items()
        )
        segments = tuple(self._segments(fresh, {v.volume: v for v in volumes}, now))
        return Snapshot(
            self.station, now, nodes, volumes, hatches, segments, tuple(self._events),
            self.counters,
        )  # fmt: skip

    def _group_volume(self, group) -> float:
        return sum(self.graph.volumes[v].volume_m3 for v in group)

    def _volume_cached(self, vol: str, ests: list, alarm_states: list) -> VolumeView:
        """``_volume``, reused while its inputs are the very same messages (most
        volumes between two updates a few tens of ms apart)."""
        held = self._views.get(vol)
        if (
            held is not None
            and len(held[0]) == len(ests)
            and len(held[1]) == len(alarm_states)
            and all(a is b for a, b in zip(held[0], ests, strict=True))
            and all(a is b for a, b in zip(held[1], alarm_states, strict=True))
        ):
            return held[2]
        view = self._volume(vol, ests, alarm_states)
        self._views[vol] = (tuple(ests), tuple(alarm_states), view)
        return view

    def _volume(self, vol: str, ests: list, alarm_states: list) -> VolumeView:
        noise = self.graph.volumes[vol].noise_pa
        p_in, m_in = [], []
        for m in ests:
            p = _finite(m.pressure_pa)
            if p is not None:
                n = max(1, int(m.healthy_sensors or 0))
                p_in.append((p, noise / math.sqrt(n)))
            rate = _finite(m.mass_rate_kg_day)
            if rate is not None:
                share = self.graph.volumes[vol].volume_m3 / self._group_volume(m.group or (vol,))
                sig = _finite(m.mass_rate_sigma_kg_day)
                m_in.append((rate * share, None if sig is None else sig * share))
        pressure, _ = _fuse(p_in)
        rate, sigma = _fuse(m_in)
        reserves = [r for r in (_finite(m.reserve_s) for m in ests) if r is not None]
        alarms = [(level_rank(a.level), a) for a in alarm_states]
        top = max((r for r, _ in alarms), default=0)
        tops = [a for r, a in alarms if r == top and top > 0]
        return VolumeView(
            volume=vol,
            pressure_pa=pressure,
            mass_rate_kg_day=rate,
            sigma_kg_day=sigma,
            reserve_s=min(reserves) if reserves else None,
            healthy_sensors=max((int(m.healthy_sensors or 0) for m in ests), default=0),
            settled=bool(ests) and all(m.settled for m in ests),
            regime=_regime(ests),
            alarm=tops[0].level if tops else None,
            alarm_kind=tops[0].kind if tops else None,
            alarm_nodes=tuple(sorted(a.node for a in tops)),
            nodes=tuple(sorted(m.node for m in ests)),
            watched_by=self._watchers[vol],
            t_unix=max((m.t_unix for m in ests), default=None),
        )

    def _units(self, fresh) -> list[tuple]:
        """Board groups with a mass rate, those of equal volumes fused across boards:
        ``(volumes, mass rate, sigma, settled, nodes, window)``, ``window`` the
        longest estimation window (s) behind it (None: no board said)."""
        per_node: dict[tuple[str, frozenset[str]], wire.VolumeEstimateMsg] = {}
        for (node, vol), m in fresh.items():
            key = (node, frozenset(m.group or (vol,)))
            held = per_node.get(key)
            if held is None or m.t_unix > held.t_unix:
                per_node[key] = m
        by_group: dict[frozenset[str], list[tuple[str, wire.VolumeEstimateMsg]]] = {}
        for (node, group), m in per_node.items():
            if _finite(m.mass_rate_kg_day) is not None:
                by_group.setdefault(group, []).append((node, m))
        units = []
        for group, items in by_group.items():
            rate, sigma = _fuse(
                [(m.mass_rate_kg_day, _finite(m.mass_rate_sigma_kg_day)) for _, m in items]
            )
            settled = all(m.settled for _, m in items)
            windows = [_finite(m.window_s) for _, m in items]
            window = max((w for w in windows if w is not None), default=None)
            nodes = tuple(sorted(n for n, _ in items))
            units.append((group, rate, sigma, settled, nodes, window))
        return units

    def _segments(self, fresh, volumes: dict[str, VolumeView], now: float) -> list[SegmentView]:
        """The segments under the current hatch states.  A segment is settled when
        every estimate in it is, and every estimate's window (``window_s``) is
        shorter than the time since a hatch of the segment was last seen to move
        (open <-> closed): a window that straddles the move still carries the
        slope from before it.  A hatch's first report is not a move.  Nor is it
        settled while a volume of it that no group covers is seen by a board
        (healthy sensors) that has no rate for it yet: the scaled-up rest is an
        extrapolation, not a measurement of the whole."""
        states = self.hatch_states()
        segs = self.graph.segments({h: bool(st) for h, st in states.items()})
        where = {v: i for i, seg in enumerate(segs) for v in seg}
        # per segment: the board groups inside it, larger groups first (one number
        # for more volumes), then the sharper; a group across segments is left out
        inside: list[list] = [[] for _ in segs]
        for u in self._units(fresh):
            i = where[next(iter(u[0]))]
            if u[0] <= segs[i]:
                inside[i].append(u)
        since: list[float] = [self.start_s] * len(segs)
        touched = [False] * len(segs)
        moved: list[float] = [-math.inf] * len(segs)
        for name, h in self._hatches.items():
            if h.since_s is None:
                continue
            hatch = self.graph.hatches[name]
            if h.moved_s is not None:
                for i in {where[hatch.a], where[hatch.b]}:
                    moved[i] = max(moved[i], h.moved_s)
            for i in {where[hatch.a], where[hatch.b]}:
                since[i] = h.since_s if not touched[i] else max(since[i], h.since_s)
                touched[i] = True
        # volumes a board sees (healthy sensors) but has no mass rate for yet: the
        # board's windows are still filling, so the segment's number would be
        # the rest scaled up to it, not a measurement of the whole
        filling = {
            vol
            for (_, vol), m in fresh.items()
            if m.healthy_sensors > 0 and _finite(m.mass_rate_kg_day) is None
        }
        out = []
        for i, seg in enumerate(segs):
            covered: set[str] = set()
            rate = var = 0.0
            sig_known, settled, nodes = True, True, set()
            units = sorted(
                inside[i], key=lambda u: (-len(u[0]), math.inf if u[2] is None else u[2])
            )
            for group, r, sg, ok, who, window in units:
                if group & covered:
                    continue
                if window is not None and window >= now - moved[i]:
                    ok = False  # the window began before the segment's shape
                covered |= group
                rate += r
                if sg is None:
                    sig_known = False
                else:
                    var += sg * sg
                settled = settled and ok
                nodes.update(who)
            if (seg - covered) & filling:
                settled = False
            if covered:
                # the rest of the segment loses air at the same rate per m^3 (one pressure)
                scale = self._group_volume(seg) / self._group_volume(covered)
                m = rate * scale
                sig = math.sqrt(var) * scale if sig_known else None
            else:
                m, sig, settled = None, None, False
            ps = [
                (volumes[v].pressure_pa, self.graph.volumes[v].volume_m3)
                for v in seg
                if volumes[v].pressure_pa is not None
            ]
            pressure = sum(p * w for p, w in ps) / sum(w for _, w in ps) if ps else None
            out.append(
                SegmentView(
                    volumes=seg,
                    mass_rate_kg_day=m,
                    sigma_kg_day=sig,
                    pressure_pa=pressure,
                    healthy_sensors=sum(volumes[v].healthy_sensors for v in seg),
                    settled=settled,
                    since_s=since[i],
                    covered=frozenset(covered),
                    nodes=tuple(sorted(nodes)),
                )
            )
        return out


def _type_ok(value, annotation: str) -> bool:
    """``value`` (from JSON) fits the message field annotated ``annotation``."""
    if annotation.endswith(" | None"):
        if value is None:
            return True
        annotation = annotation[: -len(" | None")]
    if annotation == "str":
        return isinstance(value, str)
    if annotation == "bool":
        return isinstance(value, bool)
    if annotation == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation == "float":
        return (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and (math.isfinite(value))
        )
    if annotation == "tuple[str, ...]":
        return isinstance(value, tuple) and all(isinstance(x, str) for x in value)
    return True  # dicts and lists of the assessment: not read here


def _check_types(msg) -> str | None:
    """Every field of ``msg`` of its declared JSON type (the picture computes with them)."""
    for f in fields(msg):
        v = getattr(msg, f.name)
        if not _type_ok(v, str(f.type)):
            return f"{f.name} {v!r:.40}: must be {f.type}"
    return None
