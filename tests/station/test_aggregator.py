"""The aggregator against a real Mosquitto: fake boards publish with paho (station_wire),
the aggregator (with a fake advisor of the same interface) keeps the picture and
publishes the assessment."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from common import station_wire as wire
from common.mqtt_url import parse_broker_url
from harness.broker import BrokerUser
from station.aggregator import Aggregator
from station.config import load_station_config
from station.picture import NodeState
from tests.station.fakes import FakeAdvisorModule, FakeBoard

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

EXAMPLE = Path(__file__).resolve().parents[2] / "station" / "examples" / "soyuz-2018.toml"
ST = "iss"
ALL_OPEN = {"usos-rs": "crew", "rs-mrm1": "rs", "mrm1-soyuz": "crew", "soyuz-bo-sa": "soyuz"}


def config_for(broker, path=EXAMPLE):
    c = load_station_config(path)
    return replace(c, broker=parse_broker_url(broker.url))


def make_agg(broker, path=EXAMPLE, **kw):
    mod = FakeAdvisorModule()
    agg = Aggregator(config_for(broker, path), advisor_module=mod, **kw).start()
    agg.fake = mod.made
    assert agg.subscribed.wait(10), agg.broker_status
    return agg


def wait_for(agg, pred, timeout=10.0):
    """Step ``agg`` until ``pred(update)``; that update (fails after ``timeout`` s)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        up = agg.step(0.05)
        if up is not None:
            last = up
            if pred(up):
                return up
    raise AssertionError(f"not reached in {timeout} s; last picture: {last}")


def boards(broker, session=1):
    out = {n: FakeBoard(broker, ST, n, session) for n in ("usos", "rs", "soyuz", "crew")}
    now = time.time()
    for b in out.values():
        b.birth(now)
    for h, node in ALL_OPEN.items():
        out[node].hatch(h, now, "open")
    return out


def publish_estimates(bs, t=None, soyuz_mass=15.0):
    t = time.time() if t is None else t
    bs["usos"].estimate("usos", t, mass=3.0, sigma=1.0)
    for v in ("rs", "mrm1"):
        bs["rs"].estimate(v, t, group=("rs", "mrm1"), mass=2.0, sigma=0.8)
    for v in ("soyuz_bo", "soyuz_sa"):
        bs["soyuz"].estimate(v, t, group=("soyuz_bo", "soyuz_sa"), mass=soyuz_mass, sigma=0.3)


class Listener:
    """A client that records the assessment messages (payload, retain, content type)."""

    def __init__(self, broker, user=None, password=None):
        self.got: list = []
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        if user:
            self.c.username_pw_set(user, password)
        connected = threading.Event()
        self.c.on_connect = lambda *a: connected.set()
        self.c.on_message = lambda c, u, m: self.got.append(
            (json.loads(m.payload), m.retain, getattr(m.properties, "ContentType", None))
        )
        self.c.connect("127.0.0.1", broker.port)
        self.c.loop_start()
        assert connected.wait(5)
        self.c.subscribe(wire.assessment_topic(ST), qos=1)

    def wait(self, pred, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for item in list(self.got):
                if pred(item):
                    return item
            time.sleep(0.05)
        raise AssertionError(f"no such assessment; got {self.got[-3:]}")

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


def close_all(*things):
    for t in things:
        if isinstance(t, dict):
            close_all(*t.values())
        else:
            t.close()


def test_picture_and_retained_assessment_from_three_boards(broker):
    bs = boards(broker)
    agg = make_agg(broker)
    early = Listener(broker)
    try:
        publish_estimates(bs)
        every = {"usos", "rs", "mrm1", "soyuz_bo", "soyuz_sa"}
        up = wait_for(agg, lambda u: u.snapshot.segments[0].covered == every)
        seg = up.snapshot.segments[0]
        assert seg.mass_rate_kg_day == pytest.approx(20.0)
        assert {n.state for n in up.snapshot.nodes} == {NodeState.ONLINE}
        assert up.assessment.leaking and up.ticks
        # the advisor saw the segment the picture built, with every hatch open
        _, hatches, segs = agg.fake.calls[-1]
        assert hatches == dict.fromkeys(ALL_OPEN, True)
        assert segs[0].mass_rate_kg_day == pytest.approx(20.0)

        # retained, JSON, content type set: a client that comes later gets it
        def proposed(i):
            return i[0]["leaking"] and (i[0]["proposal"] or {}).get("hatch") == "mrm1-soyuz"

        # (once a subscriber has it the broker holds it: a client that came while
        # the publish was on its way would get it live, not retained)
        early.wait(proposed)
        late = Listener(broker)
        # (the newest: an earlier one, before every hatch was known, may come first)
        payload, retain, ctype = late.wait(proposed)
        assert retain and ctype == wire.CONTENT_TYPE
        msg = wire.decode(wire.TopicKind.ASSESSMENT, json.dumps(payload).encode())
        assert msg.station == ST and msg.proposal["hatch"] == "mrm1-soyuz"
        assert msg.message.startswith("SUSPECT")
        late.close()
    finally:
        close_all(early, agg, bs)


def test_advisor_called_at_least_once_a_second_without_news(broker):
    agg = make_agg(broker)
    try:
        t0 = time.monotonic()
        while time.monotonic() - t0 < 3.2:
            agg.step(0.1)
        times = [c[0] for c in agg.fake.calls]
        assert len(times) >= 3
        assert max(b - a for a, b in zip(times, times[1:], strict=False)) <= 1.2
    finally:
        agg.close()


def test_restarted_aggregator_is_whole_within_seconds(broker):
    bs = boards(broker)
    for node, vol in (("usos", "usos"), ("soyuz", "soyuz_bo")):
        bs[node].alarm(vol, time.time(), "CAUTION")
    stop = threading.Event()

    def tick():  # the boards go on at 1 Hz
        while not stop.is_set():
            publish_estimates(bs)
            stop.wait(1.0)

    th = threading.Thread(target=tick, daemon=True)
    th.start()
    try:
        first = make_agg(broker)
        wait_for(first, lambda u: u.snapshot.segments[0].mass_rate_kg_day is not None)
        first.close()
        t0 = time.monotonic()
        second = make_agg(broker)

        def whole(u):
            s = u.snapshot
            vols = {v.volume: v for v in s.volumes}
            return (
                all(n.state is NodeState.ONLINE for n in s.nodes)
                and all(h.open is True for h in s.hatches)
                and vols["usos"].alarm == "CAUTION"
                and vols["soyuz_bo"].alarm == "CAUTION"
                and s.segments[0].covered == set(vols)
            )

        up = wait_for(second, whole, timeout=5.0)
        took = time.monotonic() - t0
        assert took < 3.0, f"whole after {took:.2f} s"
        assert up.snapshot.segments[0].mass_rate_kg_day == pytest.approx(20.0)
        second.close()
    finally:
        stop.set()
        th.join(5)
        close_all(bs)


def test_a_dead_boards_will_marks_it_offline(broker):
    bs = boards(broker)
    agg = make_agg(broker)
    try:
        publish_estimates(bs)
        wait_for(agg, lambda u: u.snapshot.segments[0].mass_rate_kg_day is not None)
        bs["soyuz"].die()
        up = wait_for(
            agg,
            lambda u: {n.node: n.state for n in u.snapshot.nodes}["soyuz"] is NodeState.OFFLINE,
        )
        states = up.snapshot.hatch_states()
        assert states["soyuz-bo-sa"] is None and states["mrm1-soyuz"] is True
        assert {n.node: n.state for n in up.snapshot.nodes}["usos"] is NodeState.ONLINE
        segs = {s.volumes: s for s in up.snapshot.segments}
        assert segs[frozenset({"soyuz_sa"})].healthy_sensors == 0
    finally:
        close_all(agg, bs["usos"], bs["rs"], bs["crew"])


def test_a_stale_will_does_not_override_a_newer_birth(broker):
    old = FakeBoard(broker, ST, "usos", 4)
    old.birth(time.time())
    agg = make_agg(broker)
    new = None
    try:
        wait_for(agg, lambda u: u.snapshot.nodes[0].session == 4)
        # the board restarts (session 5) before the broker has noticed the old connection die
        new = FakeBoard(broker, ST, "usos", 5)
        new.birth(time.time())
        wait_for(agg, lambda u: u.snapshot.nodes[0].session == 5)
        old.die()  # now the broker publishes the Will of session 4, retained
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            agg.step(0.05)
        assert agg.picture.counters.stale >= 1
        n = agg.picture.snapshot(time.time()).nodes[0]
        assert n.state is NodeState.ONLINE and n.session == 5
        # a restarted aggregator finds only the old Will retained: the board's next
        # estimate (session 5) brings it back online
        agg.close()
        agg = make_agg(broker)
        new.estimate("usos", time.time())
        up = wait_for(agg, lambda u: u.snapshot.nodes[0].session == 5)
        assert up.snapshot.nodes[0].state is NodeState.ONLINE
    finally:
        close_all(agg, *([new] if new else []))


def test_fusion_of_a_volume_seen_by_two_boards(broker, tmp_path):
    path = tmp_path / "two.toml"
    path.write_text(
        '[station]\nname = "iss"\nbroker = "mqtt://127.0.0.1:1"\ncaution_kg_day = 2.0\n'
        '[[volumes]]\nname = "lab"\nvolume_m3 = 100.0\nnoise_pa = 2.0\n'
        '[[boards]]\nnode = "a"\nvolumes = ["lab"]\n[[boards]]\nnode = "b"\nvolumes = ["lab"]\n'
    )
    a, b = FakeBoard(broker, ST, "a", 1), FakeBoard(broker, ST, "b", 1)
    agg = make_agg(broker, path)
    try:
        t = time.time()
        a.estimate("lab", t, mass=1.0, sigma=0.5, p=100000.0, healthy=3)
        b.estimate("lab", t, mass=2.0, sigma=1.0, p=100010.0, healthy=1)
        up = wait_for(agg, lambda u: u.snapshot.volumes[0].nodes == ("a", "b"))
        v = up.snapshot.volumes[0]
        assert v.mass_rate_kg_day == pytest.approx(1.2)
        assert v.pressure_pa == pytest.approx(100002.5)
        assert up.snapshot.segments[0].nodes == ("a", "b")
        assert agg.fake.calls[-1][2][0].mass_rate_kg_day == pytest.approx(1.2)
    finally:
        close_all(agg, a, b)


def test_bad_payload_is_counted_not_fatal(broker):
    bs = boards(broker)
    agg = make_agg(broker)
    try:
        bs["usos"].raw(wire.estimate_topic(ST, "usos", "usos"), b"{not json")
        bs["usos"].raw(wire.node_status_topic(ST, "usos") + "/extra", b"{}")
        bs["usos"].raw(wire.estimate_topic(ST, "usos", "usos"), b'{"schema":1,"t_unix":Infinity}')
        publish_estimates(bs)
        up = wait_for(agg, lambda u: u.snapshot.counters.bad >= 3 and u.snapshot.volumes[0].nodes)
        assert up.snapshot.counters.bad == 3
        assert up.snapshot.segments[0].mass_rate_kg_day == pytest.approx(20.0)
    finally:
        close_all(agg, bs)


def test_advisor_failure_leaves_the_picture_going(broker):
    bs = boards(broker)
    agg = make_agg(broker)
    try:
        agg.fake.fail = True
        publish_estimates(bs)
        up = wait_for(agg, lambda u: u.snapshot.segments[0].mass_rate_kg_day is not None)
        assert up.assessment is None and "advisor bug" in up.advisor_error
        agg.fake.fail = False
        up = wait_for(agg, lambda u: u.assessment is not None)
        assert up.advisor_error == ""
    finally:
        close_all(agg, bs)


def test_reconnects_after_a_broker_restart_and_republishes(broker):
    bs = boards(broker)
    agg = make_agg(broker)
    try:
        publish_estimates(bs)
        wait_for(agg, lambda u: u.assessment is not None and u.assessment.leaking)
        broker.restart(down_s=0.5)
        close_all(bs)
        bs = boards(broker, session=2)
        publish_estimates(bs, soyuz_mass=25.0)
        up = wait_for(
            agg,
            lambda u: u.snapshot.segments[0].mass_rate_kg_day == pytest.approx(30.0),
            timeout=20.0,
        )
        assert up.broker == "connected"
        late = Listener(broker)
        late.wait(lambda i: i[0]["leaking"] and "30.0" in i[0]["message"])
        late.close()
    finally:
        close_all(agg, bs)


def test_credentials_and_acl(broker_factory, tmp_path):
    b = broker_factory(
        users=[
            BrokerUser("usos", "pw-usos", write=(wire.node_subtree(ST, "usos"),), read=()),
            BrokerUser(
                "agg", "pw-agg", write=(wire.assessment_topic(ST),), read=(f"cabinwatch/v1/{ST}/#",)
            ),
            BrokerUser("reader", "pw-reader", read=(wire.assessment_topic(ST),)),
        ]
    )
    (tmp_path / "agg.cred").write_text('username = "agg"\npassword = "pw-agg"\n')
    text = EXAMPLE.read_text().replace(
        '# credentials = "aggregator.cred"', 'credentials = "agg.cred"'
    )
    path = tmp_path / "station.toml"
    path.write_text(text)
    agg = make_agg(b, path)
    board = FakeBoard.__new__(FakeBoard)
    try:
        board.station, board.node, board.session = ST, "usos", 1
        board.status_topic = wire.node_status_topic(ST, "usos")
        board.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        board.client.username_pw_set("usos", "pw-usos")
        ok = threading.Event()
        board.client.on_connect = lambda *a: ok.set()
        board.client.connect("127.0.0.1", b.port)
        board.client.loop_start()
        assert ok.wait(5)
        board.birth(time.time())
        up = wait_for(agg, lambda u: u.snapshot.nodes[0].state is NodeState.ONLINE)
        assert up.broker == "connected"
        # the broker took the aggregator's assessment under its ACL
        late = Listener(b, "reader", "pw-reader")
        late.wait(lambda i: i[1] and i[0]["station"] == ST)
        late.close()
    finally:
        close_all(agg, board)


def test_alarm_events_sent_while_the_aggregator_is_cut_off_arrive(broker):
    """The session is resumed on reconnect: a QoS 1 alarm event published while the
    aggregator's connection was down is delivered when it is back."""
    bs = boards(broker)
    agg = make_agg(broker)
    try:
        wait_for(agg, lambda u: all(n.state is NodeState.ONLINE for n in u.snapshot.nodes))
        agg.client.socket().close()  # the link drops: no DISCONNECT, the broker keeps the session
        deadline = time.monotonic() + 5
        while agg.subscribed.is_set() and time.monotonic() < deadline:
            agg.step(0.05)
        assert not agg.subscribed.is_set()
        ev = wire.AlarmEventMsg("rs", 1, 7, "rs", time.time(), "CAUTION", "leak", "raised",
                                3.0, 2.0, "kg/day", "leak 3 kg/day")  # fmt: skip
        bs["rs"].publish(wire.alarm_event_topic(ST, "rs", "rs"), ev, qos=1)
        up = wait_for(agg, lambda u: any(e.seq == 7 for e in u.snapshot.events), timeout=15)
        assert up.broker == "connected"
    finally:
        close_all(agg, bs)
