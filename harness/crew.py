"""A scripted crew that follows the isolation advisor (the bench's closed loop).

It subscribes to ``station/assessment`` (MQTT 5, paho-mqtt 2.x) and, once a
proposal has stood for its reaction time (simulated s; 60 by default), carries
it out as a crew would:

1. commands the hatch in the emulator over its control path (``hil.control``);
2. tells each board whose configuration has that hatch over the board's control
   socket (``{"cmd": "hatch", "name": ..., "open": ...}``, as ``cabinwatch ctl``);
3. for a hatch between two boards' volumes (no board has it in its
   configuration), publishes its state itself as node ``crew``
   (``common.station_wire.hatch_topic``, ``HatchStateMsg`` with source ``crew``,
   retained).

At start it publishes the state of every hatch it speaks for (3.), so the
aggregator knows them before the first move.  Every action is recorded with its
times (``CrewAction``).  The decision logic
(``CrewLogic``) is pure: it takes assessments and the time, and says what is due.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from common import station_wire as wire

#: The crew's node name on the station's topic tree.
CREW_NODE = "crew"
#: Default time between a proposal appearing and the crew acting (simulated s).
DEFAULT_REACTION_S = 60.0


@dataclass(frozen=True)
class HatchRoute:
    """Who must hear of a hatch move: the boards that have it in their configuration
    (node -> control socket path) and whether the crew publishes its state."""

    hatch: str
    boards: tuple[str, ...]
    publish: bool


@dataclass(frozen=True)
class CrewAction:
    """One hatch move.  Times in simulated s: ``seen_s`` when the proposal was first
    seen, ``acted_s`` when the crew acted (its clock), ``effect_s`` the emulator's time
    of the move (None if the emulator refused).  ``boards``: node -> "ok" or the
    error; ``published``: the crew's retained hatch state went out."""

    hatch: str
    open: bool
    seen_s: float
    acted_s: float
    effect_s: float | None
    reason: str
    emulator: str
    boards: dict[str, str] = field(default_factory=dict)
    published: bool = False

    def to_json_dict(self) -> dict:
        return {
            "hatch": self.hatch,
            "open": self.open,
            "seen_s": round(self.seen_s, 1),
            "acted_s": round(self.acted_s, 1),
            "effect_s": None if self.effect_s is None else round(self.effect_s, 1),
            "reason": self.reason,
            "emulator": self.emulator,
            "boards": dict(self.boards),
            "published": self.published,
        }


@dataclass(frozen=True)
class Due:
    """A proposal whose reaction time has passed: move ``hatch`` (``open``)."""

    hatch: str
    open: bool
    seen_s: float
    reason: str


class CrewLogic:
    """What the crew does when: pure (no I/O, no clock).

    A proposal is acted on once it has stood ``reaction_s`` (the same hatch and
    direction in every assessment since it was first seen) and the hatch is not
    already where it asks; a proposal that changes restarts the wait.
    ``hatch_open``: the hatches' states at the start (True open).
    """

    def __init__(self, hatch_open: Mapping[str, bool], reaction_s: float = DEFAULT_REACTION_S):
        if reaction_s < 0:
            raise ValueError("reaction_s must be >= 0")
        self.reaction_s = reaction_s
        self.hatch_open = dict(hatch_open)
        self._current: tuple[str, bool] | None = None
        self._seen_s = 0.0
        self._reason = ""
        self.last: wire.AssessmentMsg | None = None

    def on_assessment(self, msg: wire.AssessmentMsg, now_s: float) -> None:
        self.last = msg
        p = msg.proposal
        if not isinstance(p, dict) or not isinstance(p.get("hatch"), str):
            self._current = None
            return
        want = (p["hatch"], not bool(p.get("close", True)))  # (hatch, open)
        if want != self._current:
            self._current = want
            self._seen_s = now_s
            self._reason = str(p.get("reason", ""))

    def due(self, now_s: float) -> Due | None:
        """The proposal to carry out now, if any (then ``done`` it)."""
        if self._current is None:
            return None
        hatch, is_open = self._current
        if self.hatch_open.get(hatch) == is_open:
            return None  # already there (the advisor holds on it)
        if now_s - self._seen_s < self.reaction_s:
            return None
        return Due(hatch, is_open, self._seen_s, self._reason)

    def done(self, hatch: str, is_open: bool) -> None:
        self.hatch_open[hatch] = is_open


def assessment_state(msg: wire.AssessmentMsg) -> str:
    """The advisor's state: the first word of its message, lower case ("" if none)."""
    words = msg.message.split()
    return words[0].lower() if words else ""


class Crew:
    """The crew on the bench: MQTT in, emulator + boards + MQTT out.

    ``emulator(request) -> reply`` and ``board(node, request) -> reply`` carry the
    commands (``hil.control.send_request`` and ``firmware_host`` ``send_command`` in
    the demo); ``clock() -> simulated s``.  ``on_action`` and ``on_assessment`` are
    told of each action and each new assessment (for the hunt's printout).
    """

    def __init__(
        self,
        *,
        broker: str,
        station: str,
        routes: Mapping[str, HatchRoute],
        hatch_open: Mapping[str, bool],
        emulator: Callable[[dict], dict],
        board: Callable[[str, dict], dict],
        clock: Callable[[], float],
        reaction_s: float = DEFAULT_REACTION_S,
        on_action: Callable[[CrewAction], None] | None = None,
        on_assessment: Callable[[wire.AssessmentMsg, float], None] | None = None,
        wall_clock: Callable[[], float] = time.time,
    ):
        self.station = wire.check_name("station", station)
        self.routes = dict(routes)
        self.logic = CrewLogic(hatch_open, reaction_s)
        self.emulator = emulator
        self.board = board
        self.clock = clock
        self.wall_clock = wall_clock
        self.on_action = on_action
        self.on_assessment = on_assessment
        #: the crew's session number (its birth's; grows from run to run: Unix s)
        self.session = int(wall_clock())
        self.actions: list[CrewAction] = []
        self.assessments: list[tuple[float, wire.AssessmentMsg]] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._host, self._port = _broker_address(broker)
        self._client = None
        self._connected = threading.Event()

    # -- MQTT
    def start(self, timeout_s: float = 10.0) -> None:
        import paho.mqtt.client as mqtt

        c = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"cabinwatch-crew-{self.station}",
            protocol=mqtt.MQTTv5,
        )
        c.on_connect = self._on_connect
        c.on_message = self._on_message
        c.connect(self._host, self._port, keepalive=30)
        c.loop_start()
        self._client = c
        if not self._connected.wait(timeout_s):
            self.stop()
            raise ConnectionError(f"crew: no MQTT connection to {self._host}:{self._port}")
        # a node of the station like a board: its birth (retained), then the state of
        # the hatches no board reports, so that the aggregator never takes them for
        # unknown.  No Will: the crew's last word on a hatch stands after it leaves.
        self._publish(
            wire.node_status_topic(self.station, CREW_NODE),
            wire.NodeStatus(
                node=CREW_NODE,
                session=self.session,
                online=True,
                t_unix=self.wall_clock(),
                version="crew",
                hatches=tuple(n for n, r in self.routes.items() if r.publish),
            ),
        )
        for name, route in self.routes.items():
            if route.publish and name in self.logic.hatch_open:
                self.publish_hatch(name, self.logic.hatch_open[name])

    def stop(self) -> None:
        c, self._client = self._client, None
        if c is not None:
            with contextlib.suppress(Exception):
                c.disconnect()
            c.loop_stop()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self.errors.append(f"MQTT connect refused: {reason_code}")
            return
        client.subscribe(wire.assessment_topic(self.station), qos=1)
        self._connected.set()

    def _on_message(self, client, userdata, message) -> None:
        try:
            msg = wire.decode(wire.TopicKind.ASSESSMENT, message.payload)
        except wire.WireError as exc:
            self.errors.append(str(exc))
            return
        now = self.clock()
        with self._lock:
            self.assessments.append((now, msg))
            self.logic.on_assessment(msg, now)
        if self.on_assessment is not None:
            self.on_assessment(msg, now)

    def publish_hatch(self, hatch: str, is_open: bool) -> bool:
        """The crew's word on a hatch between two boards' volumes (retained, QoS 1)."""
        msg = wire.HatchStateMsg(
            node=CREW_NODE,
            hatch=hatch,
            position=(wire.HatchPosition.OPEN if is_open else wire.HatchPosition.CLOSED).value,
            source=CREW_NODE,
            t_unix=self.wall_clock(),
        )
        return self._publish(wire.hatch_topic(self.station, CREW_NODE, hatch), msg)

    def _publish(self, topic: str, msg) -> bool:
        """``msg`` retained at QoS 1 with the MQTT 5 content type; False if it did not go."""
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        c = self._client
        if c is None:
            return False
        props = Properties(PacketTypes.PUBLISH)
        props.ContentType = wire.CONTENT_TYPE
        info = c.publish(topic, wire.encode(msg), qos=1, retain=True, properties=props)
        try:
            info.wait_for_publish(timeout=5.0)
        except (RuntimeError, ValueError) as exc:
            self.errors.append(f"publish {topic}: {exc}")
            return False
        return info.is_published()

    # -- acting
    def poll(self) -> CrewAction | None:
        """Carry out the proposal that is due, if any (call it often)."""
        now = self.clock()
        with self._lock:
            due = self.logic.due(now)
        if due is None:
            return None
        request = {"cmd": "hatch", "name": due.hatch, "open": due.open}
        try:
            reply = self.emulator(request)
        except Exception as exc:  # noqa: BLE001 (recorded: the crew goes on)
            reply = {"ok": False, "error": f"{exc.__class__.__name__}: {exc}"}
        effect = reply.get("t_s") if reply.get("ok") else None
        boards: dict[str, str] = {}
        route = self.routes.get(due.hatch, HatchRoute(due.hatch, (), True))
        for node in route.boards:
            try:
                r = self.board(node, request)
                boards[node] = "ok" if r.get("ok") else str(r.get("error", r))
            except Exception as exc:  # noqa: BLE001
                boards[node] = f"{exc.__class__.__name__}: {exc}"
        published = self.publish_hatch(due.hatch, due.open) if route.publish else False
        action = CrewAction(
            hatch=due.hatch,
            open=due.open,
            seen_s=due.seen_s,
            acted_s=now,
            effect_s=effect,
            reason=due.reason,
            emulator="ok" if reply.get("ok") else str(reply.get("error", reply)),
            boards=boards,
            published=published,
        )
        with self._lock:
            # a refused move is not retried at once: the crew waits for a new proposal
            self.logic.done(due.hatch, due.open)
        self.actions.append(action)
        if self.on_action is not None:
            self.on_action(action)
        return action

    def run(self, stop: threading.Event, period_s: float = 0.05) -> None:
        """Poll until ``stop`` is set."""
        while not stop.is_set():
            self.poll()
            stop.wait(period_s)


def routes_for(hatches, boards: Mapping[str, list[str]]) -> dict[str, HatchRoute]:
    """Each hatch's route: ``hatches`` (name, a, b) and ``boards`` (node -> the hatches
    in its configuration).  A hatch no board has in its configuration is published
    by the crew."""
    out = {}
    for name, _a, _b in hatches:
        nodes = tuple(n for n, hs in boards.items() if name in hs)
        out[name] = HatchRoute(name, nodes, publish=not nodes)
    return out


def _broker_address(url: str) -> tuple[str, int]:
    from urllib.parse import urlsplit

    u = urlsplit(url)
    if u.scheme != "mqtt" or not u.hostname:
        raise ValueError(f"broker {url!r}: the crew speaks mqtt://HOST:PORT")
    try:
        port = u.port or 1883
    except ValueError:
        raise ValueError(f"broker {url!r}: bad port") from None
    return u.hostname, port
