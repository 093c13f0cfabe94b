"""A test subscriber: every message of a topic filter, with its MQTT 5 properties.

``Watch(broker, "cabinwatch/v1/#")`` connects (paho-mqtt 2, MQTT 5) and
collects ``Received`` records on its own thread; ``wait(pred, timeout)``
returns the first record matching ``pred``.  ``persistent=True`` keeps the
session on the broker (clean start off, session expiry 1 h), so QoS 1
messages published while the watch is away (a broker restart) are queued
for it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from common import station_wire as wire


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    content_type: str | None
    expiry_s: int | None
    t_mono: float

    @property
    def kind(self) -> wire.TopicKind:
        return wire.parse_topic(self.topic).kind

    @property
    def msg(self):
        return wire.decode(self.kind, self.payload)


class Watch:
    def __init__(
        self,
        port: int,
        topic: str = "cabinwatch/v1/#",
        *,
        client_id: str = "test-watch",
        persistent: bool = False,
        username: str | None = None,
        password: str | None = None,
    ):
        self.received: list[Received] = []
        self._cond = threading.Condition()
        self.connected = threading.Event()
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        if username:
            c.username_pw_set(username, password)
        c.reconnect_delay_set(0.1, 0.5)
        c.on_message = self._on_message
        #: the broker's reason code of each QoS 1 publish of this client, by mid
        self.acks: dict = {}
        c.on_publish = lambda cl, u, mid, rc, p: self.acks.__setitem__(mid, rc)
        c.on_connect = lambda cl, u, f, rc, p: (
            cl.subscribe(topic, qos=1),
            self.connected.set(),
        )
        props = None
        if persistent:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 3600
        c.connect("127.0.0.1", port, keepalive=5, clean_start=not persistent, properties=props)
        c.loop_start()
        self.client = c
        if not self.connected.wait(10):
            self.close()
            raise AssertionError("test watch: no connection to the broker")
        time.sleep(0.1)  # the SUBACK

    def _on_message(self, client, userdata, m) -> None:
        props = getattr(m, "properties", None)
        rec = Received(
            m.topic,
            bytes(m.payload),
            m.qos,
            bool(m.retain),
            getattr(props, "ContentType", None),
            getattr(props, "MessageExpiryInterval", None),
            time.monotonic(),
        )
        with self._cond:
            self.received.append(rec)
            self._cond.notify_all()

    def wait(self, pred: Callable[[Received], bool], timeout: float = 10.0) -> Received:
        def first():
            return next((r for r in self.received if pred(r)), None)

        with self._cond:
            found = self._cond.wait_for(first, timeout)
        if found is None:
            topics = sorted({r.topic for r in self.received})
            raise AssertionError(f"no matching message in {timeout} s; topics seen: {topics}")
        return found

    def matching(self, pred: Callable[[Received], bool]) -> list[Received]:
        with self._cond:
            return [r for r in self.received if pred(r)]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def status(node: str, online: bool | None = None, session: int | None = None):
    """A predicate: the status of ``node`` (optionally online or not, of one session)."""

    def pred(r: Received) -> bool:
        if r.kind is not wire.TopicKind.NODE_STATUS:
            return False
        m = r.msg
        return (
            m.node == node
            and (online is None or m.online == online)
            and (session is None or m.session == session)
        )

    return pred


def kind(k: wire.TopicKind, retain: bool | None = None):
    def pred(r: Received) -> bool:
        return r.kind is k and (retain is None or r.retain == retain)

    return pred
