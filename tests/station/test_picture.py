"""The station picture as a pure state machine: no broker, messages fed by hand."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from common import station_wire as wire
from station.config import load_station_config
from station.picture import NodeState, StationPicture

EXAMPLE = Path(__file__).resolve().parents[2] / "station" / "examples" / "soyuz-2018.toml"
ST = "iss"
T0 = 1_800_000_000.0


@pytest.fixture
def cfg():
    return load_station_config(EXAMPLE)


@pytest.fixture
def pic(cfg):
    return StationPicture(cfg, start_s=T0)


def status(pic, node, session, online, t=T0, now=None):
    msg = wire.NodeStatus(node, session, online, t)
    return pic.feed(wire.node_status_topic(ST, node), wire.encode(msg), t if now is None else now)


def est(pic, node, session, volume, t, *, group=None, mass=1.0, sigma=0.5, p=101325.0,
        healthy=2, settled=True, expiry_s=3.0, window_s=None, now=None):  # fmt: skip
    msg = wire.VolumeEstimateMsg(
        node=node, session=session, volume=volume, t_unix=t, group=tuple(group or (volume,)),
        group_volume_m3=1.0, pressure_pa=p, dpdt_comp_pa_s=None, dpdt_comp_sigma_pa_s=None,
        mass_rate_kg_day=mass, mass_rate_sigma_kg_day=sigma, hole_mm=None, reserve_s=7200.0,
        regime="orifice", healthy_sensors=healthy, settled=settled, state="settled",
        expiry_s=expiry_s, window_s=window_s,
    )  # fmt: skip
    return pic.feed(
        wire.estimate_topic(ST, node, volume), wire.encode(msg), t if now is None else now
    )


def hatch(pic, node, name, position, t, now=None):
    msg = wire.HatchStateMsg(node, name, position, "operator", t)
    return pic.feed(wire.hatch_topic(ST, node, name), wire.encode(msg), t if now is None else now)


ALL_OPEN = {"usos-rs": "crew", "rs-mrm1": "rs", "mrm1-soyuz": "crew", "soyuz-bo-sa": "soyuz"}


def whole_station(pic, t=T0, masses=(3.0, 2.0, 15.0), sigmas=(1.0, 0.8, 0.3)):
    """Three boards and the crew's panel born, every hatch open, one estimate per volume."""
    for node in ("usos", "rs", "soyuz", "crew"):
        status(pic, node, 1, True, t)
    for h, node in ALL_OPEN.items():
        hatch(pic, node, h, "open", t)
    est(pic, "usos", 1, "usos", t, mass=masses[0], sigma=sigmas[0])
    for v in ("rs", "mrm1"):
        est(pic, "rs", 1, v, t, group=("rs", "mrm1"), mass=masses[1], sigma=sigmas[1])
    for v in ("soyuz_bo", "soyuz_sa"):
        est(pic, "soyuz", 1, v, t, group=("soyuz_bo", "soyuz_sa"), mass=masses[2], sigma=sigmas[2])


def test_whole_station_one_segment_each_group_counted_once(pic):
    whole_station(pic)
    snap = pic.snapshot(T0 + 0.5)
    assert [n.state for n in snap.nodes] == [NodeState.ONLINE] * 4
    (seg,) = snap.segments
    assert seg.volumes == {"usos", "rs", "mrm1", "soyuz_bo", "soyuz_sa"}
    assert seg.mass_rate_kg_day == pytest.approx(3.0 + 2.0 + 15.0)
    assert seg.sigma_kg_day == pytest.approx(math.sqrt(1.0 + 0.64 + 0.09))
    assert seg.covered == seg.volumes and seg.settled
    assert seg.nodes == ("rs", "soyuz", "usos")
    assert seg.healthy_sensors == 10
    assert seg.since_s == T0
    # a volume's share of its board group's number: mrm1 15 of 265 m3
    vols = {v.volume: v for v in snap.volumes}
    assert vols["mrm1"].mass_rate_kg_day == pytest.approx(2.0 * 15 / 265)
    assert vols["mrm1"].nodes == ("rs",) and vols["mrm1"].watched_by == ("rs",)


def test_closed_hatch_splits_segments_since_the_report(pic):
    whole_station(pic)
    hatch(pic, "crew", "mrm1-soyuz", "closed", T0 + 10)
    est(pic, "soyuz", 1, "soyuz_bo", T0 + 11, group=("soyuz_bo", "soyuz_sa"), mass=14.0)
    est(pic, "soyuz", 1, "soyuz_sa", T0 + 11, group=("soyuz_bo", "soyuz_sa"), mass=14.0)
    est(pic, "usos", 1, "usos", T0 + 11, mass=0.5)
    for v in ("rs", "mrm1"):
        est(pic, "rs", 1, v, T0 + 11, group=("rs", "mrm1"), mass=0.2)
    snap = pic.snapshot(T0 + 11)
    segs = {s.volumes: s for s in snap.segments}
    soyuz = segs[frozenset({"soyuz_bo", "soyuz_sa"})]
    station = segs[frozenset({"usos", "rs", "mrm1"})]
    assert soyuz.mass_rate_kg_day == pytest.approx(14.0) and soyuz.since_s == T0 + 10
    assert station.mass_rate_kg_day == pytest.approx(0.7) and station.since_s == T0 + 10
    assert snap.hatch_states()["mrm1-soyuz"] is False


def _estimates(pic, t, window_s, soyuz_window_s=60.0, expiry_s=1000.0):
    est(pic, "usos", 1, "usos", t, mass=0.1, window_s=window_s, expiry_s=expiry_s)
    for v in ("rs", "mrm1"):
        est(pic, "rs", 1, v, t, group=("rs", "mrm1"), mass=0.1, window_s=window_s,
            expiry_s=expiry_s)  # fmt: skip
    for v in ("soyuz_bo", "soyuz_sa"):
        est(pic, "soyuz", 1, v, t, group=("soyuz_bo", "soyuz_sa"), mass=39.0,
            window_s=soyuz_window_s, expiry_s=expiry_s)  # fmt: skip


def test_a_window_older_than_the_hatch_move_leaves_its_segment_unsettled(pic):
    """A board's 600 s window that began before mrm1-soyuz closed still holds the
    slope from before the closure: its segment is settled only 600 s after the move."""
    for node in ("usos", "rs", "soyuz", "crew"):
        status(pic, node, 1, True, T0)
    for h, node in ALL_OPEN.items():
        hatch(pic, node, h, "open", T0)
    _estimates(pic, T0 + 1, 600.0)
    # the first reports are not moves: long windows count from the start
    (seg,) = pic.snapshot(T0 + 2).segments
    assert seg.settled
    hatch(pic, "crew", "mrm1-soyuz", "closed", T0 + 1000)
    _estimates(pic, T0 + 1001, 600.0)
    station, soyuz = pic.snapshot(T0 + 1002).segments
    assert station.volumes == {"usos", "rs", "mrm1"} and soyuz.volumes == {"soyuz_bo", "soyuz_sa"}
    assert not station.settled  # 600 s window, the move 2 s old
    assert not soyuz.settled  # its 60 s window too began before the move
    _estimates(pic, T0 + 1070, 600.0)
    station, soyuz = pic.snapshot(T0 + 1070).segments
    assert not station.settled and soyuz.settled
    _estimates(pic, T0 + 1601, 600.0)
    station, soyuz = pic.snapshot(T0 + 1601).segments
    assert station.settled and soyuz.settled
    # a window the board does not report (an older board) is not held against it
    hatch(pic, "crew", "mrm1-soyuz", "open", T0 + 2000)
    _estimates(pic, T0 + 2001, None, None)
    (seg,) = pic.snapshot(T0 + 2001).segments
    assert seg.settled


def test_will_of_current_session_marks_offline_and_its_hatches_unknown(pic):
    whole_station(pic)
    status(pic, "soyuz", 1, False, T0 + 2)
    snap = pic.snapshot(T0 + 2)
    states = {n.node: n.state for n in snap.nodes}
    assert states["soyuz"] is NodeState.OFFLINE and states["usos"] is NodeState.ONLINE
    # its own hatch is unknown (counted closed); the crew's report still holds
    assert snap.hatch_states()["soyuz-bo-sa"] is None
    assert snap.hatch_states()["mrm1-soyuz"] is True
    segs = {s.volumes: s for s in snap.segments}
    sa = segs[frozenset({"soyuz_sa"})]
    assert sa.mass_rate_kg_day is None and sa.healthy_sensors == 0 and sa.since_s == T0 + 2
    # the BO, still joined to the station, is counted at the station's loss per m^3
    rest = segs[frozenset({"usos", "rs", "mrm1", "soyuz_bo"})]
    assert rest.covered == {"usos", "rs", "mrm1"}
    assert rest.mass_rate_kg_day == pytest.approx(5.0 * 671 / 665)
    # an estimate of the dead session that arrives late is not taken
    assert not est(pic, "soyuz", 1, "soyuz_bo", T0 + 6)
    assert pic.counters.stale == 1


def test_stale_will_does_not_override_a_newer_birth(pic):
    status(pic, "usos", 7, True, T0)
    assert not status(pic, "usos", 6, False, T0 - 100, now=T0 + 1)
    assert pic.snapshot(T0 + 1).nodes[0].state is NodeState.ONLINE
    assert pic.snapshot(T0 + 1).nodes[0].session == 7
    assert pic.counters.stale == 1
    # the Will of session 7 does count
    assert status(pic, "usos", 7, False, T0 + 2)
    assert pic.snapshot(T0 + 2).nodes[0].state is NodeState.OFFLINE


def test_message_of_a_newer_session_brings_an_offline_node_back(pic):
    status(pic, "usos", 3, False, T0)
    # its retained hatch report comes while it looks offline: kept, not used yet
    assert hatch(pic, "usos", "usos-rs", "open", T0 - 10)
    assert pic.hatch_states()["usos-rs"] is None
    assert est(pic, "usos", 4, "usos", T0 + 1)
    assert pic.hatch_states()["usos-rs"] is True
    n = pic.snapshot(T0 + 1).nodes[0]
    assert n.state is NodeState.ONLINE and n.session == 4
    # and an estimate of the old session is stale
    assert not est(pic, "usos", 3, "usos", T0 + 2)


def test_estimates_expire_and_silent_nodes_go_stale(pic):
    status(pic, "usos", 1, True, T0)
    est(pic, "usos", 1, "usos", T0, expiry_s=3.0)
    assert pic.snapshot(T0 + 2.9).volumes[0].pressure_pa == pytest.approx(101325.0)
    snap = pic.snapshot(T0 + 3.1)
    assert snap.volumes[0].pressure_pa is None and snap.volumes[0].nodes == ()
    assert snap.nodes[0].state is NodeState.ONLINE
    assert pic.snapshot(T0 + 10.5).nodes[0].state is NodeState.STALE
    assert pic.snapshot(T0).nodes[1].state is NodeState.UNKNOWN


def test_fusion_of_a_volume_seen_by_two_boards(tmp_path):
    p = tmp_path / "two.toml"
    p.write_text(
        """
[station]
name = "iss"
broker = "mqtt://127.0.0.1:1883"
caution_kg_day = 2.0
[[volumes]]
name = "lab"
volume_m3 = 100.0
noise_pa = 2.0
[[boards]]
node = "a"
volumes = ["lab"]
[[boards]]
node = "b"
volumes = ["lab"]
"""
    )
    pic = StationPicture(load_station_config(p), start_s=T0)
    est(pic, "a", 1, "lab", T0, mass=1.0, sigma=0.5, p=100000.0, healthy=3)
    est(pic, "b", 1, "lab", T0, mass=2.0, sigma=1.0, p=100010.0, healthy=1)
    snap = pic.snapshot(T0)
    (v,) = snap.volumes
    assert v.nodes == ("a", "b")
    assert v.mass_rate_kg_day == pytest.approx((4 * 1.0 + 1 * 2.0) / 5)
    assert v.sigma_kg_day == pytest.approx(math.sqrt(1 / 5))
    # pressure weighted by healthy sensors (each a noise_pa sample mean)
    assert v.pressure_pa == pytest.approx((3 * 100000.0 + 1 * 100010.0) / 4)
    (seg,) = snap.segments
    assert seg.mass_rate_kg_day == pytest.approx(1.2)
    assert seg.sigma_kg_day == pytest.approx(math.sqrt(1 / 5))
    assert seg.nodes == ("a", "b")


def test_uncovered_volume_counted_at_the_segment_loss_per_m3(pic):
    whole_station(pic)
    status(pic, "usos", 1, False, T0 + 1)  # usos board dead: the segment is still connected
    snap = pic.snapshot(T0 + 1)
    (seg,) = snap.segments
    assert seg.covered == {"rs", "mrm1", "soyuz_bo", "soyuz_sa"}
    scale = 675 / 275
    assert seg.mass_rate_kg_day == pytest.approx((2.0 + 15.0) * scale)
    assert seg.sigma_kg_day == pytest.approx(math.sqrt(0.64 + 0.09) * scale)
    assert seg.healthy_sensors == 8


def test_a_volume_still_filling_its_windows_keeps_the_segment_unsettled(pic):
    """At start-up one board's small volumes settle first; scaled up to the whole
    station (6 m3 of 675) one 3-sigma reading looked like a 320 kg/day leak.  While
    another board sees its volume (healthy sensors) but has no rate yet, the
    segment's number is an extrapolation, not a measurement: not settled."""
    whole_station(pic)
    est(pic, "usos", 1, "usos", T0 + 1, mass=None, sigma=None, settled=False)
    (seg,) = pic.snapshot(T0 + 1).segments
    assert seg.covered == {"rs", "mrm1", "soyuz_bo", "soyuz_sa"}
    assert seg.mass_rate_kg_day == pytest.approx((2.0 + 15.0) * 675 / 275)
    assert not seg.settled
    # once the usos board has its rate, the segment settles
    est(pic, "usos", 1, "usos", T0 + 2, mass=3.0, sigma=1.0)
    (seg,) = pic.snapshot(T0 + 2).segments
    assert seg.covered == seg.volumes and seg.settled
    # a board that sees nothing of its volume (no healthy sensor) cannot add to
    # it: the rest is counted at the segment's loss per m3, and settled
    est(pic, "usos", 1, "usos", T0 + 3, mass=None, sigma=None, healthy=0, settled=False)
    (seg,) = pic.snapshot(T0 + 3).segments
    assert seg.covered == {"rs", "mrm1", "soyuz_bo", "soyuz_sa"} and seg.settled


def test_group_across_segments_is_left_out(pic):
    whole_station(pic)
    # rs says rs-mrm1 is closed now, but its estimates still cover (rs, mrm1)
    hatch(pic, "rs", "rs-mrm1", "closed", T0 + 2)
    segs = {s.volumes: s for s in pic.snapshot(T0 + 2).segments}
    assert segs[frozenset({"usos", "rs"})].covered == {"usos"}
    assert segs[frozenset({"mrm1", "soyuz_bo", "soyuz_sa"})].covered == {"soyuz_bo", "soyuz_sa"}
    assert "rs" not in segs[frozenset({"usos", "rs"})].nodes


def test_newest_hatch_report_wins(pic):
    status(pic, "usos", 1, True)
    status(pic, "rs", 1, True)
    hatch(pic, "usos", "usos-rs", "open", T0 + 1)
    hatch(pic, "rs", "usos-rs", "closed", T0 + 2)
    assert pic.hatch_states()["usos-rs"] is False
    hatch(pic, "usos", "usos-rs", "open", T0 + 3)
    assert pic.hatch_states()["usos-rs"] is True
    # an older report arriving late does not win
    hatch(pic, "rs", "usos-rs", "closed", T0 + 2.5)
    assert pic.hatch_states()["usos-rs"] is True
    hatch(pic, "usos", "usos-rs", "unknown", T0 + 4)
    assert pic.hatch_states()["usos-rs"] is None


def test_alarm_level_is_the_highest_of_the_boards(pic):
    whole_station(pic)
    for node, level in (("usos", "CAUTION"), ("rs", None)):
        msg = wire.AlarmStateMsg(node, 1, "usos" if node == "usos" else "rs", T0, level, "leak", T0)
        assert pic.feed(wire.alarm_topic(ST, node, msg.volume), wire.encode(msg), T0)
    ev = wire.AlarmEventMsg("usos", 1, 1, "usos", T0, "CAUTION", "leak", "raised", 3.0, 2.0,
                            "kg/day", "leak 3 kg/day")  # fmt: skip
    topic = wire.alarm_event_topic(ST, "usos", "usos")
    assert pic.feed(topic, wire.encode(ev), T0)
    assert not pic.feed(topic, wire.encode(ev), T0)  # a QoS 1 duplicate
    snap = pic.snapshot(T0)
    vols = {v.volume: v for v in snap.volumes}
    assert vols["usos"].alarm == "CAUTION" and vols["usos"].alarm_nodes == ("usos",)
    assert vols["rs"].alarm is None
    assert [e.seq for e in snap.events] == [1]


@pytest.mark.parametrize(
    "topic, payload, kind",
    [
        ("cabinwatch/v1/iss/node/usos/status", b"not json", "bad"),
        ("cabinwatch/v1/iss/node/usos/status", b'{"schema": 2}', "bad"),
        ("cabinwatch/v1/iss/node/usos/status", b"[1, 2]", "bad"),
        ("cabinwatch/v1/iss/node/usos/status", b'{"schema":1,"node":"usos"}', "bad"),
        (
            "cabinwatch/v1/iss/node/usos/status",
            b'{"schema":1,"node":"usos","session":"7","online":true,"t_unix":1}',
            "bad",
        ),
        (
            "cabinwatch/v1/iss/node/usos/status",
            b'{"schema":1,"node":"rs","session":7,"online":true,"t_unix":1}',
            "bad",
        ),
        ("cabinwatch/v1/iss/node/usos/status", b'{"schema":1,"t_unix":NaN}', "bad"),
        ("cabinwatch/v1/iss/node/usos/weird", b"{}", "bad"),
        ("elsewhere/x", b"{}", "bad"),
        ("cabinwatch/v1/iss/node/ghost/status", b"{}", "bad"),
        (
            "cabinwatch/v1/iss/node/ghost/status",
            b'{"schema":1,"node":"ghost","session":1,"online":true,"t_unix":1}',
            "unknown",
        ),
        ("cabinwatch/v1/other/node/usos/status", b"{}", "unknown"),
        (
            "cabinwatch/v1/iss/node/usos/hatch/ghost/state",
            b'{"schema":1,"node":"usos","hatch":"ghost","position":"open","source":"x","t_unix":1}',
            "unknown",
        ),  # fmt: skip
        (
            "cabinwatch/v1/iss/node/usos/hatch/usos-rs/state",
            b'{"schema":1,"node":"usos","hatch":"usos-rs","position":"ajar","source":"x",'
            b'"t_unix":1}',
            "bad",
        ),  # fmt: skip
        ("cabinwatch/v1/iss/node/usos/status", b"\xff\xfe", "bad"),
    ],
)
def test_bad_payloads_are_counted_and_skipped(pic, topic, payload, kind):
    whole_station(pic)
    before = pic.snapshot(T0)
    assert not pic.feed(topic, payload, T0)
    c = pic.counters
    assert getattr(c, kind) == 1 and c.last_problem
    # the picture goes on as before
    after = pic.snapshot(T0)
    assert after.segments == before.segments and after.hatches == before.hatches
    assert est(pic, "usos", 1, "usos", T0 + 1)


def test_random_corruptions_never_raise(pic):
    import random

    rng = random.Random(16)
    whole_station(pic)
    topics = [
        wire.node_status_topic(ST, "usos"),
        wire.estimate_topic(ST, "rs", "rs"),
        wire.alarm_topic(ST, "rs", "mrm1"),
        wire.alarm_event_topic(ST, "soyuz", "soyuz_bo"),
        wire.hatch_topic(ST, "soyuz", "soyuz-bo-sa"),
    ]
    good = wire.encode(wire.NodeStatus("usos", 1, True, T0))
    for _ in range(2000):
        b = bytearray(good)
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        pic.feed(rng.choice(topics), bytes(b), T0)
    pic.snapshot(T0)
