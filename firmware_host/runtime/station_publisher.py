"""A board's MQTT 5 publisher to the station broker (docs/runtime.md, ``[station]``).

The monitor loop never waits for the network.  It hands its messages
(``common.station_wire``) to a ``Handoff``: a lock held for a few list
operations, bounded, never blocking.  Estimates keep only the newest per
volume; alarm events wait in a queue of at most ``MAX_EVENTS`` (beyond it the
oldest is dropped and counted); alarm and hatch states keep the newest per
volume or hatch.

``StationPublisher`` owns a paho-mqtt 2.x client (``CallbackAPIVersion.VERSION2``,
MQTT 5) and runs it in its own thread (``cabinwatch-station``): connect,
``client.loop()``, drain the hand-off, publish; reconnect with backoff
(``FIRST_RETRY_S`` doubling to ``MAX_RETRY_S``, each wait drawn between half
and all of it, so that the boards of a station do not all come back in the
same instant after a broker restart) whenever the connection is lost or
refused.  On every (re)connect it publishes, in this order, its birth
(``node/<node>/status``, retained, ``online`` true, this start's session) and
every retained state it holds (alarm per volume, hatch positions); queued
alarm events follow (QoS 1; paho resends those in flight at the loss).

The Will (set at connect) is the same status topic with ``online`` false and
the same session, so an aggregator ignores a Will older than a birth.  The
stale-Will guard: the board reads its own status topic and republishes its
birth whenever it sees an offline status there while it is connected (its
previous connection's Will, sent by the broker after the new birth).

Every message carries the MQTT 5 content type ``application/json``; estimates
carry a message expiry of three telemetry periods (``expiry_s``).  A failure
(broker unreachable, connection refused, a publish refused by the broker's
ACL with its MQTT 5 reason code) is reported on the ``OutputGuard`` named
``station``: the monitor turns it into its ``OUTPUT_FAILED`` advisory and
goes on.  Nothing here is the record of truth: the board's archive is.
"""

from __future__ import annotations

import enum
import math
import random
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from common import station_wire as wire
from common.outputguard import OutputGuard
from firmware_host.runtime.stationconfig import StationConfig

#: Alarm events held while the broker is away (the oldest dropped beyond, counted).
MAX_EVENTS = 1000
#: First reconnect after this long (s), doubled after each failure up to MAX_RETRY_S;
#: each wait is drawn uniformly from [RETRY_JITTER x delay, delay].
FIRST_RETRY_S = 0.25
MAX_RETRY_S = 1.0
RETRY_JITTER = 0.5
#: A TCP connect or a CONNACK that takes longer than this (s) is a failed attempt.
CONNECT_TIMEOUT_S = 5.0
#: The network thread's longest wait (s) for traffic; also the hand-off's latency bound.
POLL_S = 0.02
#: QoS 1 messages awaiting their PUBACK whose topic is kept (to name a refusal).
MAX_TRACKED = 4096
#: On close, how long (s) the offline status may take to be acknowledged.
CLOSE_WAIT_S = 0.5


class LinkState(enum.Enum):
    DOWN = "down"
    CONNECTING = "connecting"
    UP = "up"
    CLOSED = "closed"


@dataclass
class Pending:
    """What the network thread took from the hand-off in one go."""

    estimates: list = field(default_factory=list)
    events: list = field(default_factory=list)
    alarms: list = field(default_factory=list)
    hatches: list = field(default_factory=list)


class Handoff:
    """The bounded, non-blocking hand-off between the monitor loop and the network
    thread; see module docstring."""

    def __init__(self, max_events: int = MAX_EVENTS):
        self._lock = threading.Lock()
        self._estimates: dict[str, wire.VolumeEstimateMsg] = {}
        self._events: deque[wire.AlarmEventMsg] = deque()
        self._alarms: dict[str, wire.AlarmStateMsg] = {}
        self._hatches: dict[str, wire.HatchStateMsg] = {}
        self.max_events = max_events
        #: alarm events dropped because MAX_EVENTS were waiting
        self.events_dropped = 0
        #: estimates replaced by a newer one before they went out
        self.estimates_replaced = 0

    def put_estimates(self, msgs) -> None:
        with self._lock:
            for m in msgs:
                if m.volume in self._estimates:
                    self.estimates_replaced += 1
                self._estimates[m.volume] = m

    def put_event(self, msg: wire.AlarmEventMsg) -> None:
        with self._lock:
            if len(self._events) >= self.max_events:
                self._events.popleft()
                self.events_dropped += 1
            self._events.append(msg)

    def put_alarm(self, msg: wire.AlarmStateMsg) -> None:
        with self._lock:
            self._alarms[msg.volume] = msg

    def put_hatch(self, msg: wire.HatchStateMsg) -> None:
        with self._lock:
            self._hatches[msg.hatch] = msg

    def take(self, *, events: bool = True) -> Pending:
        """Everything waiting (alarm events only if ``events``: they wait for a connection)."""
        with self._lock:
            p = Pending(
                list(self._estimates.values()),
                [],
                list(self._alarms.values()),
                list(self._hatches.values()),
            )
            self._estimates.clear()
            self._alarms.clear()
            self._hatches.clear()
            if events:
                p.events = list(self._events)
                self._events.clear()
        return p

    @property
    def events_waiting(self) -> int:
        return len(self._events)


@dataclass(frozen=True)
class PublisherHealth:
    """Counters of the publisher (JSON-ready): connections, messages, losses."""

    state: str
    broker: str
    session: int
    connects: int
    connect_failures: int
    published: int
    refused: int
    events_dropped: int
    events_waiting: int
    estimates_replaced: int
    stale_wills: int
    last_error: str | None

    def to_json_dict(self) -> dict:
        return dict(self.__dict__)


def _props(packet: int, expiry_s: float | None = None) -> Properties:
    p = Properties(packet)
    p.ContentType = wire.CONTENT_TYPE
    if expiry_s is not None:
        p.MessageExpiryInterval = max(1, int(math.ceil(expiry_s)))
    return p


class StationPublisher:
    """One board's connection to the station broker; see module docstring.

    ``birth`` is this start's online status (its ``t_unix`` is refreshed at
    every connect from ``unix_now``); ``guard`` the output's failure state;
    ``uniform01`` the random source of the reconnect jitter (a test seeds it).
    """

    def __init__(
        self,
        cfg: StationConfig,
        birth: wire.NodeStatus,
        *,
        handoff: Handoff | None = None,
        guard: OutputGuard | None = None,
        unix_now: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        first_retry_s: float = FIRST_RETRY_S,
        max_retry_s: float = MAX_RETRY_S,
        uniform01: Callable[[], float] = random.random,
    ):
        self.cfg = cfg
        self.birth = birth
        self.handoff = handoff or Handoff()
        self.guard = guard or OutputGuard("station")
        self._unix = unix_now
        self._mono = monotonic
        self.first_retry_s = first_retry_s
        self.max_retry_s = max_retry_s
        self._uniform01 = uniform01
        self.status_topic = wire.node_status_topic(cfg.station, cfg.node)
        self.state = LinkState.DOWN
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._delay_s = 0.0
        self._next_try_s = 0.0
        self._deadline_s = math.inf
        self._started = False
        #: retained states as last handed over: republished on every (re)connect
        self._alarms: dict[str, wire.AlarmStateMsg] = {}
        self._hatches: dict[str, wire.HatchStateMsg] = {}
        self._qos1_topics: dict[int, str] = {}
        self.connects = 0
        self.connect_failures = 0
        self.published = 0
        self.refused = 0
        self.stale_wills = 0
        self.last_error: str | None = None
        self.client = self._make_client()

    # -- the client ------------------------------------------------------------
    def _make_client(self) -> mqtt.Client:
        cfg = self.cfg
        c = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=cfg.client_id,
            protocol=mqtt.MQTTv5,
        )
        if cfg.username is not None:
            c.username_pw_set(cfg.username, cfg.password)
        if cfg.tls:
            c.tls_set(
                ca_certs=str(cfg.tls_ca) if cfg.tls_ca else None,
                certfile=str(cfg.tls_cert) if cfg.tls_cert else None,
                keyfile=str(cfg.tls_key) if cfg.tls_key else None,
                cert_reqs=ssl.CERT_REQUIRED,
            )
        death = replace(self.birth, online=False)
        c.will_set(
            self.status_topic,
            wire.encode(death),
            qos=1,
            retain=True,
            properties=_props(PacketTypes.WILLMESSAGE),
        )
        c.connect_timeout = CONNECT_TIMEOUT_S
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_publish = self._on_publish
        c.on_message = self._on_message
        return c

    def _fail(self, words: str) -> None:
        self.last_error = words
        self.guard.failed(ConnectionError(words))

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self.connect_failures += 1
            self._fail(f"broker {self.cfg.broker.url} refused the connection: {reason_code}")
            self._down()
            return
        self.state = LinkState.UP
        self.connects += 1
        self._delay_s = 0.0
        self._deadline_s = math.inf
        self.guard.succeeded()
        self.last_error = None
        self._publish_birth()
        for msg in list(self._alarms.values()):
            self._send_alarm(msg)
        for msg in list(self._hatches.values()):
            self._send_hatch(msg)
        client.subscribe(self.status_topic, qos=1)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if self.state is LinkState.CLOSED:
            return
        if self.state is LinkState.UP:
            self._fail(f"broker {self.cfg.broker.url}: connection lost ({reason_code})")
        elif self.state is LinkState.CONNECTING:  # closed before its CONNACK (TLS, garbage)
            self.connect_failures += 1
            self._fail(f"cannot connect to {self.cfg.broker.url}: closed by the broker")
        self._down()

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        topic = self._qos1_topics.pop(mid, None)
        if reason_code.is_failure:
            self.refused += 1
            self._fail(f"broker refused {topic or f'message {mid}'}: {reason_code}")

    def _on_message(self, client, userdata, message) -> None:
        if message.topic != self.status_topic or self.state is not LinkState.UP:
            return
        if self._stop.is_set():
            return  # closing: the offline status echoed back is our own, not a stale Will
        try:
            seen = wire.decode(wire.TopicKind.NODE_STATUS, message.payload)
        except wire.WireError:
            seen = None
        if seen is None or (not seen.online and seen.session <= self.birth.session):
            # a Will (ours, of an earlier connection) or garbage over our birth
            self.stale_wills += 1
            self._publish_birth()

    # -- publishing (network thread) ---------------------------------------------
    def _publish(self, topic: str, payload: bytes, qos: int, retain: bool, props):
        info = self.client.publish(topic, payload, qos=qos, retain=retain, properties=props)
        if info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS or (
            qos and info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN  # queued by paho, sent later
        ):
            self.published += 1
            if qos:
                if len(self._qos1_topics) >= MAX_TRACKED:
                    self._qos1_topics.clear()  # only for naming a refused topic
                self._qos1_topics[info.mid] = topic
        return info

    def _publish_birth(self) -> None:
        self.birth = replace(self.birth, online=True, t_unix=self._unix())
        self._publish(
            self.status_topic, wire.encode(self.birth), 1, True, _props(PacketTypes.PUBLISH)
        )

    def _send_alarm(self, msg: wire.AlarmStateMsg) -> None:
        topic = wire.alarm_topic(self.cfg.station, self.cfg.node, msg.volume)
        self._publish(topic, wire.encode(msg), 1, True, _props(PacketTypes.PUBLISH))

    def _send_hatch(self, msg: wire.HatchStateMsg) -> None:
        topic = wire.hatch_topic(self.cfg.station, self.cfg.node, msg.hatch)
        self._publish(topic, wire.encode(msg), 1, True, _props(PacketTypes.PUBLISH))

    def _send_event(self, msg: wire.AlarmEventMsg) -> None:
        topic = wire.alarm_event_topic(self.cfg.station, self.cfg.node, msg.volume)
        self._publish(topic, wire.encode(msg), 1, False, _props(PacketTypes.PUBLISH))

    def _send_estimate(self, msg: wire.VolumeEstimateMsg) -> None:
        topic = wire.estimate_topic(self.cfg.station, self.cfg.node, msg.volume)
        props = _props(PacketTypes.PUBLISH, msg.expiry_s)
        self._publish(topic, wire.encode(msg), self.cfg.estimate_qos, False, props)

    def _flush(self) -> None:
        """Publish what waits in the hand-off (events only while connected)."""
        up = self.state is LinkState.UP
        p = self.handoff.take(events=up)
        for msg in p.alarms:
            self._alarms[msg.volume] = msg
        for msg in p.hatches:
            self._hatches[msg.hatch] = msg
        if not up:
            return  # estimates expire anyway; states go out at the next connect
        for msg in p.alarms:
            self._send_alarm(msg)
        for msg in p.hatches:
            self._send_hatch(msg)
        for msg in p.events:
            self._send_event(msg)
        for msg in p.estimates:
            self._send_estimate(msg)

    # -- the network thread -------------------------------------------------------
    def _down(self) -> None:
        if self.state in (LinkState.CLOSED, LinkState.DOWN):
            return
        self.state = LinkState.DOWN
        self._delay_s = (
            self.first_retry_s if self._delay_s == 0 else min(2 * self._delay_s, self.max_retry_s)
        )
        self._next_try_s = self._mono() + self.retry_wait_s()
        self._deadline_s = math.inf

    def retry_wait_s(self) -> float:
        """The wait (s) before the next attempt: the backoff delay, jittered."""
        return self._delay_s * (RETRY_JITTER + (1.0 - RETRY_JITTER) * self._uniform01())

    def _try_connect(self) -> None:
        broker = self.cfg.broker
        self.state = LinkState.CONNECTING
        self._deadline_s = self._mono() + CONNECT_TIMEOUT_S
        try:
            if not self._started:
                self._started = True
                self.client.connect(
                    broker.host, broker.port, keepalive=self.cfg.keepalive_s, clean_start=True
                )
            else:
                self.client.reconnect()
        except (OSError, ValueError) as exc:  # refused, unreachable, a TLS handshake
            self.connect_failures += 1
            why = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            self._fail(f"cannot connect to {broker.url}: {why}")
            self._down()

    def _step(self) -> None:
        """One round of the network thread."""
        if self.state is LinkState.DOWN:
            self._flush()
            wait = self._next_try_s - self._mono()
            if wait > 0:
                self._stop.wait(min(wait, POLL_S * 5))
                return
            self._try_connect()
            return
        rc = self.client.loop(timeout=POLL_S)
        if self.state is LinkState.CONNECTING and self._mono() > self._deadline_s:
            self.connect_failures += 1
            self._fail(f"broker {self.cfg.broker.url}: no CONNACK in {CONNECT_TIMEOUT_S:g} s")
            self._down()
            return
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS and self.state is not LinkState.DOWN:
            if self.state is LinkState.UP:
                self._fail(f"broker {self.cfg.broker.url}: connection lost ({rc.name})")
            else:
                self.connect_failures += 1
                self._fail(f"cannot connect to {self.cfg.broker.url}: {rc.name}")
            self._down()
            return
        self._flush()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._step()
            except Exception as exc:  # noqa: BLE001 - the network thread must not die
                self._fail(f"station publisher: {type(exc).__name__}: {exc}")
                self._down()

    def start(self) -> StationPublisher:
        self._thread = threading.Thread(target=self._run, name="cabinwatch-station", daemon=True)
        self._thread.start()
        return self

    def close(self, wait_s: float = CLOSE_WAIT_S) -> None:
        """Stop the thread; if connected, publish the offline status (retained) and
        disconnect normally (so the broker drops the Will).  At most about ``wait_s``."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=wait_s + 2 * POLL_S)
        if self.state is LinkState.UP:
            death = replace(self.birth, online=False, t_unix=self._unix())
            try:
                info = self._publish(
                    self.status_topic, wire.encode(death), 1, True, _props(PacketTypes.PUBLISH)
                )
                deadline = self._mono() + wait_s
                while not info.is_published() and self._mono() < deadline:
                    if self.client.loop(timeout=POLL_S) != MQTTErrorCode.MQTT_ERR_SUCCESS:
                        break
                self.state = LinkState.CLOSED
                self.client.disconnect()
                self.client.loop(timeout=0)
            except (OSError, ValueError, RuntimeError):
                pass
        self.state = LinkState.CLOSED
        try:
            self.client.socket() and self.client.disconnect()
        except (OSError, ValueError):
            pass

    def health(self) -> PublisherHealth:
        return PublisherHealth(
            state=self.state.value,
            broker=self.cfg.broker.url,
            session=self.birth.session,
            connects=self.connects,
            connect_failures=self.connect_failures,
            published=self.published,
            refused=self.refused,
            events_dropped=self.handoff.events_dropped,
            events_waiting=self.handoff.events_waiting,
            estimates_replaced=self.handoff.estimates_replaced,
            stale_wills=self.stale_wills,
            last_error=self.last_error,
        )
