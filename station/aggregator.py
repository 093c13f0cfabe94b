"""The station aggregator: boards' messages -> picture -> advisor -> ``station/assessment``.

A paho-mqtt 2.x client (MQTT 5, ``CallbackAPIVersion.VERSION2``) subscribes to
the station's subtree; its network thread only queues the messages.  The
caller's thread (``step``/``run``) feeds them to the ``StationPicture``, and
on a picture change (at most every ``min_update_s``) and at least every
``period_s`` it asks the isolation advisor and publishes the assessment,
retained, with the MQTT 5 content type; ``on_update`` callbacks (the view, the
JSON lines) get every update.  paho reconnects with backoff (1 s doubling to
30 s); the session (client id ``cabinwatch-station-<station>``: one aggregator
per station) starts clean and is resumed across reconnects, so QoS 1 alarm
events queued meanwhile arrive, and the subscription is renewed at each
connection, so the retained state comes again.  The aggregator only advises:
it never writes a board's topics.

The clock (``clock()``: station time, Unix seconds, or a ``StationClock`` run
``speed`` times faster for an HIL bench whose boards run ``--speed``; the
picture, the advisor and the assessment live on it, while ``min_update_s`` and
``period_s`` stay wall seconds) and the advisor (any object with the
``IsolationAdvisor`` of ``station.advisor``; it is handed the picture's
segments, each a ``station.segment.SegmentEstimate``) are injected; the
default advisor is imported on first use.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from common import station_wire as wire
from common.errors import CabinwatchError
from station.config import StationConfig
from station.picture import Snapshot, StationPicture

#: Reconnect backoff of the client (s): from MIN, doubling up to MAX.
RECONNECT_MIN_S = 1
RECONNECT_MAX_S = 30
#: MQTT keepalive (s): a dead broker is noticed within 1.5 x this.
KEEPALIVE_S = 15
#: How long the broker keeps the aggregator's session (and QoS 1 messages for it)
#: while it is away (s).
SESSION_EXPIRY_S = 600
#: Messages taken per step at most (the rest wait for the next step).
MAX_BATCH = 20000


class StationClock:
    """Station time (s): Unix time, or with ``speed`` X, Unix time run X times faster
    from the aggregator's start (as the boards' ``monitor --speed X`` on an HIL bench).
    ``from_unix`` maps a board's ``t_unix`` (wall time) onto it."""

    def __init__(self, speed: float = 1.0, wall: Callable[[], float] = time.time):
        self.speed = float(speed)
        self._wall = wall
        self._w0 = wall()

    def __call__(self) -> float:
        return self.from_unix(self._wall())

    def from_unix(self, t: float) -> float:
        return self._w0 + (t - self._w0) * self.speed


@dataclass(frozen=True)
class Update:
    """One update: the picture, the advisor's answer (None if it failed), the
    board tick times (``t_unix``) of the estimates taken since the previous
    update, and when this update was made (``t_unix``, the aggregator's clock)."""

    t_unix: float
    snapshot: Snapshot
    assessment: object | None
    advisor_error: str
    ticks: tuple[float, ...]
    broker: str


def default_advisor_module():
    """``station.advisor`` (imported here: the picture and its tests do not need it)."""
    try:
        from station import advisor
    except ImportError as exc:
        raise CabinwatchError(f"the isolation advisor cannot be loaded: {exc}") from None
    return advisor


class Aggregator:
    """One station's aggregator on ``config.broker`` (see the module docstring)."""

    def __init__(
        self,
        config: StationConfig,
        *,
        clock: Callable[[], float] = time.time,
        speed: float = 1.0,
        advisor_module=None,
        min_update_s: float = 0.05,
        period_s: float = 1.0,
        client_id: str | None = None,
    ):
        self.config = config
        self.clock = clock
        self.speed = speed
        self.min_update_s = min_update_s
        self.period_s = period_s
        mod = advisor_module if advisor_module is not None else default_advisor_module()
        a = config.advisor
        self.advisor = mod.IsolationAdvisor(
            config.graph,
            caution_kg_day=a.caution_kg_day,
            crew_volume=a.crew_volume,
            min_pressure_pa=a.min_pressure_pa,
        )
        self.picture = StationPicture(
            config, start_s=clock(), board_time=getattr(clock, "from_unix", None)
        )
        self.on_update: list[Callable[[Update], None]] = []
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._pending = False
        self._ticks: list[float] = []
        self._last_update = -float("inf")
        self._last_publish = -float("inf")
        self._last_payload: wire.AssessmentMsg | None = None
        self._reset_requested = False
        self.broker_status = "connecting"
        self.published = 0
        self.stop_event = threading.Event()
        #: set when the broker has acknowledged the subscription (cleared on a disconnect)
        self.subscribed = threading.Event()
        self._topic = wire.assessment_topic(config.name)
        self.client = self._make_client(client_id)

    # -- MQTT ----------------------------------------------------------------

    def _make_client(self, client_id: str | None):
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        # one aggregator per station: a stable id, so a reconnect resumes its session
        cid = client_id or f"cabinwatch-station-{self.config.name}"
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cid[:64], protocol=mqtt.MQTTv5)
        if self.config.credentials is not None:
            c.username_pw_set(self.config.credentials.username, self.config.credentials.password)
        if self.config.broker.tls:
            try:
                c.tls_set(ca_certs=str(self.config.tls_ca) if self.config.tls_ca else None)
            except (OSError, ValueError) as exc:
                raise CabinwatchError(f"TLS: {exc}") from None
        c.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        c.on_connect_fail = self._on_connect_fail
        c.on_subscribe = self._on_subscribe
        return c

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        from paho.mqtt.subscribeoptions import SubscribeOptions

        if reason_code.is_failure:
            self.broker_status = f"refused: {reason_code}"
            return
        self.broker_status = "connected"
        # noLocal: our own assessment does not come back
        opts = SubscribeOptions(qos=1, noLocal=True)
        client.subscribe(wire.station_subscription(self.config.name), options=opts)
        self._last_payload = None  # republish the assessment on the new connection

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        if all(not rc.is_failure for rc in reason_codes):
            self.subscribed.set()
        else:
            self.broker_status = f"subscription refused: {reason_codes[0]}"

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.subscribed.clear()
        self.broker_status = f"disconnected ({reason_code}); reconnecting"

    def _on_connect_fail(self, client, userdata) -> None:
        self.broker_status = "cannot connect; retrying"

    def _on_message(self, client, userdata, msg) -> None:
        self._queue.put((msg.topic, msg.payload, bool(msg.retain)))

    def start(self) -> Aggregator:
        """Connect in the background (retried with backoff until it succeeds)."""
        from paho.mqtt.client import MQTT_CLEAN_START_FIRST_ONLY
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        b = self.config.broker
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        # a fresh session at start (the retained topics make the picture whole), then
        # resumed across reconnects: QoS 1 alarm events queued meanwhile arrive
        self.client.connect_async(
            b.host,
            b.port,
            keepalive=KEEPALIVE_S,
            clean_start=MQTT_CLEAN_START_FIRST_ONLY,
            properties=props,
        )
        self.client.loop_start()
        return self

    def close(self) -> None:
        """Disconnect and stop the network thread."""
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()

    def __enter__(self) -> Aggregator:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the loop ------------------------------------------------------------

    def request_reset(self) -> None:
        """Start the advisor over at the next update (the crew's or operator's wish)."""
        self._reset_requested = True

    def step(self, timeout_s: float = 0.2) -> Update | None:
        """Take the queued messages (waiting up to ``timeout_s`` for the first) and
        update if the picture changed or ``period_s`` has passed; the update or None."""
        now = self.clock()
        wait = self.period_s - (now - self._last_update) / self.speed
        if self._pending:
            wait = min(wait, self.min_update_s - (now - self._last_update) / self.speed)
        self._take(max(0.0, min(timeout_s, wait)))
        now = self.clock()
        since = (now - self._last_update) / self.speed  # wall seconds
        if since >= self.period_s or (self._pending and since >= self.min_update_s):
            return self.update(now)
        return None

    def _take(self, timeout_s: float) -> None:
        try:
            item = self._queue.get(timeout=timeout_s) if timeout_s > 0 else self._queue.get_nowait()
        except queue.Empty:
            return
        n = 0
        while True:
            topic, payload, retained = item
            if self.picture.feed(topic, payload, self.clock(), retained=retained):
                self._pending = True
                msg = self.picture.last_msg
                if isinstance(msg, wire.VolumeEstimateMsg):
                    self._ticks.append(msg.t_unix)
            n += 1
            if n >= MAX_BATCH:
                return
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return

    def update(self, now: float) -> Update:
        """Ask the advisor about the picture at ``now``; publish; tell ``on_update``."""
        snap = self.picture.snapshot(now)
        if self._reset_requested:
            self._reset_requested = False
            self.advisor.reset()
        error = ""
        assessment = None
        try:
            # each segment view is the advisor's SegmentEstimate (station.segment)
            assessment = self.advisor.update(now, snap.hatch_states(), snap.segments)
        except Exception as exc:  # the advisor's bug must not blind the station view
            error = f"{type(exc).__name__}: {exc}"
        if assessment is not None:
            self._publish(assessment, now)
        self._pending = False
        self._last_update = now
        ticks, self._ticks = tuple(self._ticks), []
        up = Update(self.clock(), snap, assessment, error, ticks, self.broker_status)
        for fn in self.on_update:
            fn(up)
        return up

    def _publish(self, assessment, now: float) -> None:
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        msg = assessment.to_msg(self.config.name, now)
        same = _without_time(msg)
        if same == self._last_payload and (now - self._last_publish) / self.speed < self.period_s:
            return
        if not self.client.is_connected():
            return
        props = Properties(PacketTypes.PUBLISH)
        props.ContentType = wire.CONTENT_TYPE
        self.client.publish(self._topic, wire.encode(msg), qos=1, retain=True, properties=props)
        self._last_payload, self._last_publish = same, now
        self.published += 1

    def run(self, until_s: float | None = None) -> None:
        """Step until ``stop_event`` is set or the clock reaches ``until_s``."""
        while not self.stop_event.is_set():
            if until_s is not None and self.clock() >= until_s:
                return
            self.step()


def _without_time(msg: wire.AssessmentMsg) -> wire.AssessmentMsg:
    from dataclasses import replace

    return replace(msg, t_unix=0.0)
