"""The private broker itself: ACL confinement and retained state across a restart."""

from __future__ import annotations

import threading

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from harness.broker import BrokerUser

pytestmark = pytest.mark.timeout(30)


def _client(broker, user=None, password=None) -> mqtt.Client:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    if user:
        c.username_pw_set(user, password)
    connected = threading.Event()
    c.on_connect = lambda *a: connected.set()
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    assert connected.wait(5)
    return c


def _collect(client, topic: str) -> tuple[list, threading.Event]:
    got: list = []
    subscribed = threading.Event()
    client.on_message = lambda c, u, m: got.append((m.topic, m.payload, m.retain))
    client.on_subscribe = lambda *a: subscribed.set()
    client.subscribe(topic, qos=1)
    assert subscribed.wait(5)
    return got, subscribed


@pytest.mark.slow
def test_acl_confines_a_board_to_its_subtree_and_retained_survives_restart(broker_factory):
    b = broker_factory(
        users=[
            BrokerUser("b1", "pw1", write=("s/node/b1/#",), read=()),
            BrokerUser("agg", "pw2", read=("#",)),
        ]
    )
    sub = _client(b, "agg", "pw2")
    got, _ = _collect(sub, "s/#")
    pub = _client(b, "b1", "pw1")
    pub.publish("s/node/b1/status", b"mine", qos=1, retain=True).wait_for_publish(5)
    pub.publish("s/node/b2/status", b"not mine", qos=1, retain=True).wait_for_publish(5)
    pub.publish("s/node/b1/done", b"end", qos=1).wait_for_publish(5)
    deadline = threading.Event()
    for _ in range(50):
        if any(t == "s/node/b1/done" for t, _, _ in got):
            break
        deadline.wait(0.1)
    topics = [t for t, _, _ in got]
    assert "s/node/b1/status" in topics and "s/node/b2/status" not in topics
    for c in (sub, pub):
        c.loop_stop()
        c.disconnect()

    b.restart()
    again = _client(b, "agg", "pw2")
    got2, _ = _collect(again, "s/#")
    for _ in range(50):
        if got2:
            break
        deadline.wait(0.1)
    assert got2 == [("s/node/b1/status", b"mine", True)]
    again.loop_stop()
    again.disconnect()


@pytest.mark.slow
def test_anonymous_broker_is_on_loopback_only(broker):
    assert broker.url == f"mqtt://127.0.0.1:{broker.port}"
    c = _client(broker)
    c.loop_stop()
    c.disconnect()
