"""StationPublisher in this process against a real Mosquitto (harness/broker.py)."""

from __future__ import annotations

import signal
import time

import pytest

from common import station_wire as wire
from common.mqtt_url import parse_broker_url
from common.outputguard import OutputStatus
from firmware_host.runtime.station_publisher import Handoff, LinkState, StationPublisher
from firmware_host.runtime.stationconfig import StationConfig
from harness.broker import BrokerUser
from tests.station.mqtt_watch import Watch, kind, status

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

STATION = "lab"


def config(tmp_path, url: str, node: str = "b1", user: str | None = None, pw: str | None = None):
    return StationConfig(
        broker=parse_broker_url(url),
        station=STATION,
        node=node,
        session_file=tmp_path / "session",
        username=user,
        password=pw,
        keepalive_s=2,
    )


def birth(node: str = "b1", session: int = 7) -> wire.NodeStatus:
    return wire.NodeStatus(node, session, True, 0.0, "9.9", ("cabin", "lab"), ("h1",))


def event(seq: int, node: str = "b1", session: int = 7) -> wire.AlarmEventMsg:
    return wire.AlarmEventMsg(
        node, session, seq, "cabin", 1e9 + seq, "CAUTION", "LEAK", "RAISED", 1.5, 1.0, "kg/day", ""
    )


def wait_until(pred, timeout: float, what: str) -> float:
    """Seconds until ``pred()`` held; AssertionError naming ``what`` after ``timeout``."""
    t0 = time.monotonic()
    while not pred():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.01)
    return time.monotonic() - t0


@pytest.fixture
def publishers():
    made: list[StationPublisher] = []

    def make(cfg, b=None, **kw) -> StationPublisher:
        p = StationPublisher(cfg, b or birth(cfg.node), **kw).start()
        made.append(p)
        return p

    yield make
    for p in made:
        p.close(wait_s=0.2)


def test_birth_is_retained_with_session_version_volumes(tmp_path, broker, publishers):
    pub = publishers(config(tmp_path, broker.url))
    wait_until(lambda: pub.state is LinkState.UP, 5, "connected")
    time.sleep(0.2)
    watch = Watch(broker.port)  # after the birth: it must be retained
    try:
        r = watch.wait(status("b1", online=True), 5)
    finally:
        watch.close()
    assert r.retain and r.qos == 1
    assert r.topic == f"cabinwatch/v1/{STATION}/node/b1/status"
    assert r.content_type == "application/json"
    m = r.msg
    assert (m.session, m.version, m.volumes, m.hatches) == (7, "9.9", ("cabin", "lab"), ("h1",))
    assert m.t_unix > 1.7e9  # refreshed at connect from the wall clock
    assert pub.guard.status is OutputStatus.OK and pub.connects == 1


def test_clean_close_publishes_offline_with_the_same_session(tmp_path, broker):
    watch = Watch(broker.port)
    try:
        pub = StationPublisher(config(tmp_path, broker.url), birth(session=12)).start()
        watch.wait(status("b1", online=True, session=12), 15)
        pub.close()
        watch.wait(status("b1", online=False), 15)
    finally:
        watch.close()
    late = Watch(broker.port, client_id="late")  # the offline status is retained
    try:
        r = late.wait(status("b1"), 5)
    finally:
        late.close()
    assert r.retain and not r.msg.online and r.msg.session == 12
    assert pub.state is LinkState.CLOSED


def test_messages_topics_qos_retain_expiry_content_type(tmp_path, broker, publishers):
    watch = Watch(broker.port)
    try:
        pub = publishers(config(tmp_path, broker.url))
        wait_until(lambda: pub.state is LinkState.UP, 5, "connected")
        h = pub.handoff
        h.put_alarm(wire.AlarmStateMsg("b1", 7, "cabin", 1e9, "CAUTION", "LEAK", 1e9 - 5))
        h.put_hatch(wire.HatchStateMsg("b1", "h1", "closed", "operator", 1e9))
        h.put_event(event(1))
        est = wire.VolumeEstimateMsg(
            "b1", 7, "cabin", 1e9, ("cabin",), 90.0, 101325.0, -0.01, 0.001, 1.2, 0.1,
            0.5, 3600.0, "ORIFICE", 2, True, "SETTLED", expiry_s=3.0,
        )  # fmt: skip
        h.put_estimates([est])
        alarm = watch.wait(kind(wire.TopicKind.ALARM), 5)
        hatch = watch.wait(kind(wire.TopicKind.HATCH), 5)
        ev = watch.wait(kind(wire.TopicKind.ALARM_EVENT), 5)
        e = watch.wait(kind(wire.TopicKind.ESTIMATE), 5)
    finally:
        watch.close()
    # a live subscriber sees retain False on live messages (MQTT 5 retain-as-published off)
    assert alarm.qos == 1 and alarm.topic.endswith("/node/b1/volume/cabin/alarm")
    assert alarm.msg.level == "CAUTION" and alarm.msg.since_unix == 1e9 - 5
    assert hatch.qos == 1 and hatch.msg.position == "closed" and hatch.msg.source == "operator"
    assert ev.qos == 1 and ev.msg.seq == 1 and ev.topic.endswith("/volume/cabin/alarm/event")
    assert e.qos == 0 and e.expiry_s == 3 and e.msg.pressure_pa == 101325.0
    for r in (alarm, hatch, ev, e):
        assert r.content_type == "application/json"
    # the states are retained: a late subscriber gets them, the event and estimate not
    late = Watch(broker.port, client_id="late")
    try:
        late.wait(kind(wire.TopicKind.HATCH, retain=True), 5)
        late.wait(kind(wire.TopicKind.ALARM, retain=True), 5)
        time.sleep(0.3)
        assert not late.matching(kind(wire.TopicKind.ALARM_EVENT))
    finally:
        late.close()


def test_broker_restart_reconnects_and_republishes_retained_state(
    tmp_path, broker_factory, publishers
):
    """A broker that lost everything (no persistence) gets the birth, the alarm and
    the hatch again from the board within a second or so of its return."""
    b = broker_factory(persistence=False)
    pub = publishers(config(tmp_path, b.url))
    wait_until(lambda: pub.state is LinkState.UP, 5, "connected")
    pub.handoff.put_alarm(wire.AlarmStateMsg("b1", 7, "cabin", 1e9, "WARNING", "LOW_RESERVE", 1e9))
    pub.handoff.put_hatch(wire.HatchStateMsg("b1", "h1", "open", "config", 1e9))
    time.sleep(0.3)
    b.kill()
    wait_until(lambda: pub.state is not LinkState.UP, 5, "the loss seen")
    assert pub.guard.status is OutputStatus.FAILING and "b1" not in (pub.guard.error or "")
    time.sleep(1.0)
    b.start()
    back = time.monotonic()
    watch = Watch(b.port)
    try:
        r = watch.wait(status("b1", online=True), 10)
        # live or retained, whichever came first: the broker had lost everything
        assert watch.wait(kind(wire.TopicKind.ALARM), 5).msg.level == "WARNING"
        assert watch.wait(kind(wire.TopicKind.HATCH), 5).msg.position == "open"
    finally:
        watch.close()
    assert r.msg.session == 7
    assert r.t_mono - back < 5.0
    assert pub.connects == 2 and pub.guard.status is OutputStatus.OK


def test_qos1_alarm_events_survive_a_short_broker_outage(tmp_path, broker, publishers):
    """Events before, during and after a 1.5 s outage all reach a persistent subscriber."""
    watch = Watch(broker.port, client_id="aggregator", persistent=True)
    pub = publishers(config(tmp_path, broker.url))
    try:
        wait_until(lambda: pub.state is LinkState.UP, 5, "connected")
        for seq in range(1, 21):
            pub.handoff.put_event(event(seq))
        broker.kill(signal.SIGTERM)  # saves retained and sessions
        for seq in range(21, 41):  # while the broker is away
            pub.handoff.put_event(event(seq))
        time.sleep(1.5)
        broker.start()
        for seq in range(41, 61):
            pub.handoff.put_event(event(seq))
        wait_until(
            lambda: (
                {r.msg.seq for r in watch.matching(kind(wire.TopicKind.ALARM_EVENT))}
                >= set(range(1, 61))
            ),
            15,
            "all 60 events",
        )
    finally:
        watch.close()
    assert pub.handoff.events_dropped == 0


def test_publishing_outside_the_acl_is_refused_with_its_reason_code(tmp_path, broker_factory):
    """User b1 may write only node/b1/#: a board calling itself b2 is refused (MQTT 5
    PUBACK 0x87), counted and reported on its guard; b1 itself is not."""
    users = [
        BrokerUser("b1", "pw-b1", write=(f"cabinwatch/v1/{STATION}/node/b1/#",)),
        BrokerUser("agg", "pw-agg", read=("#",)),
    ]
    b = broker_factory(users=users)
    watch = Watch(b.port, username="agg", password="pw-agg")
    ok = StationPublisher(config(tmp_path / "a", b.url, "b1", "b1", "pw-b1"), birth("b1")).start()
    bad = StationPublisher(config(tmp_path / "b", b.url, "b2", "b1", "pw-b1"), birth("b2"))
    try:
        watch.wait(status("b1", online=True), 5)
        ok.close(wait_s=0.2)
        bad.start()
        wait_until(lambda: bad.refused >= 1, 5, "a refusal")
        bad.handoff.put_event(event(1, node="b2"))
        wait_until(lambda: bad.refused >= 2, 5, "the event refused")
    finally:
        bad.close(wait_s=0.2)
        watch.close()
    assert "Not authorized" in (bad.last_error or "")
    assert bad.guard.status is OutputStatus.FAILING and "node/b2/" in bad.guard.error
    assert ok.refused == 0
    assert not watch.matching(status("b2"))


def test_wrong_password_is_a_refused_connection_retried(tmp_path, broker_factory, publishers):
    b = broker_factory(users=[BrokerUser("b1", "right", write=("#",))])
    pub = publishers(config(tmp_path, b.url, "b1", "b1", "wrong"))
    wait_until(lambda: pub.connect_failures >= 2, 5, "two refused connections")
    assert pub.state is not LinkState.UP and pub.connects == 0
    assert "refused the connection" in pub.guard.error
    assert "Not authorized" in pub.guard.error or "Bad user name or password" in pub.guard.error


def test_stale_will_over_the_birth_is_overwritten(tmp_path, broker, publishers):
    """The broker delivers the board's previous Will after its new birth (a slow
    takeover): the board sees it on its own status topic and republishes its birth."""
    pub = publishers(config(tmp_path, broker.url), birth(session=5))
    wait_until(lambda: pub.state is LinkState.UP, 5, "connected")
    time.sleep(0.2)
    old_will = wire.encode(wire.NodeStatus("b1", 4, False, 1e9))
    watch = Watch(broker.port)
    try:
        watch.client.publish(pub.status_topic, old_will, qos=1, retain=True)
        wait_until(lambda: pub.stale_wills >= 1, 5, "the stale Will seen")
        time.sleep(0.3)
    finally:
        watch.close()
    late = Watch(broker.port, client_id="late")
    try:
        r = late.wait(status("b1"), 5)
    finally:
        late.close()
    assert r.msg.online and r.msg.session == 5


def test_broker_down_at_start_events_bounded_then_delivered(tmp_path, broker_factory, publishers):
    """No broker yet: the publisher retries with backoff, holds 1000 events (drops the
    oldest 500, counted); when the broker comes up it connects and sends the newest 1000."""
    b = broker_factory()
    watch = Watch(b.port, client_id="agg", persistent=True)  # its session outlives the stop
    b.kill(signal.SIGTERM)
    try:
        pub = publishers(config(tmp_path, b.url), handoff=Handoff())
        wait_until(lambda: pub.connect_failures >= 2, 5, "failed connects")
        assert pub.guard.status is OutputStatus.FAILING and "cannot connect" in pub.guard.error
        for seq in range(1, 1501):
            pub.handoff.put_event(event(seq))
        assert pub.handoff.events_dropped == 500
        b.start()
        wait_until(
            lambda: len(watch.matching(kind(wire.TopicKind.ALARM_EVENT))) >= 1000,
            20,
            "1000 events",
        )
        seqs = {r.msg.seq for r in watch.matching(kind(wire.TopicKind.ALARM_EVENT))}
    finally:
        watch.close()
    assert seqs == set(range(501, 1501))
    assert pub.health().events_dropped == 500
