"""The station view (pure render, plain lines, JSON lines) and the aggregator's update
without a broker (messages fed straight into its queue)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from common import station_wire as wire
from station.aggregator import Aggregator
from station.config import load_station_config
from station.view import JsonLines, StationDisplay, render, to_json
from tests.station.fakes import FakeAdvisorModule

EXAMPLE = Path(__file__).resolve().parents[2] / "station" / "examples" / "soyuz-2018.toml"
ST = "iss"
T0 = 1_800_000_000.0


class Clock:
    def __init__(self, t: float):
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def agg():
    clock = Clock(T0)
    a = Aggregator(load_station_config(EXAMPLE), clock=clock, advisor_module=FakeAdvisorModule())
    a.test_clock = clock
    yield a
    a.client.loop_stop()


def put(agg, topic, msg, retained=False):
    agg._queue.put((topic, wire.encode(msg), retained))


def feed_station(agg, soyuz_mass=15.0, t=T0):
    for node in ("usos", "rs", "soyuz"):
        put(agg, wire.node_status_topic(ST, node), wire.NodeStatus(node, 2, True, t), True)
    for h, node, pos in (
        ("usos-rs", "crew", "open"),
        ("rs-mrm1", "rs", "open"),
        ("mrm1-soyuz", "crew", "closed"),
        ("soyuz-bo-sa", "soyuz", "open"),
    ):
        put(
            agg, wire.hatch_topic(ST, node, h), wire.HatchStateMsg(node, h, pos, "operator", t - 60)
        )
    groups = {"usos": ("usos",), "rs": ("rs", "mrm1"), "soyuz": ("soyuz_bo", "soyuz_sa")}
    masses = {"usos": 0.4, "rs": 0.3, "soyuz": soyuz_mass}
    for node, group in groups.items():
        for v in group:
            msg = wire.VolumeEstimateMsg(
                node=node, session=2, volume=v, t_unix=t, group=group, group_volume_m3=1.0,
                pressure_pa=99000.0, dpdt_comp_pa_s=-0.1, dpdt_comp_sigma_pa_s=0.01,
                mass_rate_kg_day=masses[node], mass_rate_sigma_kg_day=0.2, hole_mm=None,
                reserve_s=5400.0 if node == "soyuz" else None, regime="orifice",
                healthy_sensors=1, settled=True, state="settled", expiry_s=3.0,
            )  # fmt: skip
            put(agg, wire.estimate_topic(ST, node, v), msg)
    ev = wire.AlarmEventMsg("soyuz", 2, 1, "soyuz_bo", t, "CAUTION", "leak", "raised", 15.0,
                            2.0, "kg/day", "leak 15 kg/day")  # fmt: skip
    put(agg, wire.alarm_event_topic(ST, "soyuz", "soyuz_bo"), ev)
    alarm = wire.AlarmStateMsg("soyuz", 2, "soyuz_bo", t, "CAUTION", "leak", t)
    put(agg, wire.alarm_topic(ST, "soyuz", "soyuz_bo"), alarm, True)


def test_update_takes_queued_messages_and_asks_the_advisor(agg):
    feed_station(agg)
    agg.test_clock.t = T0 + 0.1
    up = agg.step(0)
    assert up is not None and len(up.ticks) == 5
    segs = {s.volumes: s for s in up.snapshot.segments}
    soyuz = segs[frozenset({"soyuz_bo", "soyuz_sa"})]
    assert soyuz.mass_rate_kg_day == pytest.approx(15.0) and soyuz.since_s == T0 - 60
    assert up.assessment.leaking and up.assessment.proposal.hatch == "soyuz-bo-sa"
    # nothing new: no update until a second has passed, then one
    agg.test_clock.t = T0 + 0.5
    assert agg.step(0) is None
    agg.test_clock.t = T0 + 1.2
    assert agg.step(0) is not None
    # a reset asked for reaches the advisor at the next update
    agg.request_reset()
    agg.test_clock.t = T0 + 2.3
    agg.step(0)
    assert agg.advisor.resets == 1


def test_render_fits_80_columns_and_shows_what_matters(agg):
    feed_station(agg)
    agg.test_clock.t = T0 + 0.1
    lines = render(agg.step(0))
    assert all(len(line) <= 80 for line in lines)
    text = "\n".join(lines)
    assert "station iss" in text and "[soyuz_bo+soyuz_sa]" in text
    assert "15.00+-0.20" in text  # the segment: one group, counted once
    assert "mrm1-soyuz=CLOSED" in text and "soyuz-bo-sa=open" in text
    assert "CAUT" in text and "1h30m" in text  # the alarm and the Soyuz's reserve
    assert "advisor: SUSPECT 15.0 kg/day in soyuz_bo+soyuz_sa" in text
    assert "proposal: close soyuz-bo-sa, hold 10m00s" in text
    assert "usos online #2" in text
    assert "soyuz/soyuz_bo CAUTION raised" in text


def test_render_without_estimates_says_so(agg):
    agg.test_clock.t = T0 + 0.1
    text = "\n".join(render(agg.update(T0 + 0.1)))
    assert "no estimate" in text and "usos UNKNOWN" in text
    assert "kg/day" in text  # header only: no number is shown as a fact


def test_json_line_per_update_is_strict_json(agg):
    out = io.StringIO()
    agg.on_update.append(JsonLines(out))
    feed_station(agg)
    agg.test_clock.t = T0 + 0.1
    agg.step(0)
    agg.test_clock.t = T0 + 1.2
    agg.step(0)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    d = json.loads(lines[0], parse_constant=lambda c: pytest.fail(f"non-JSON {c}"))
    assert d["station"] == "iss" and d["nodes"]["soyuz"] == {
        "state": "online",
        "session": 2,
        "age_s": pytest.approx(0.0),
    }
    assert d["hatches"]["mrm1-soyuz"]["open"] is False
    assert d["volumes"]["soyuz_bo"]["alarm"] == "CAUTION"
    seg = next(s for s in d["segments"] if s["volumes"] == ["soyuz_bo", "soyuz_sa"])
    assert seg["mass_rate_kg_day"] == pytest.approx(15.0) and seg["nodes"] == ["soyuz"]
    assert (
        d["assessment"]["state"] == "suspect"
        and d["assessment"]["proposal"]["hatch"] == "soyuz-bo-sa"
    )
    assert d["messages"]["accepted"] == 14 and d["messages"]["bad"] == 0
    # non-finite numbers never reach the line
    assert d["volumes"]["usos"]["regime"] == "orifice"
    late = json.loads(to_json(agg.update(T0 + 3.5)))["volumes"]["usos"]
    assert late["pressure_pa"] is None and late["regime"] == "" and late["nodes"] == []
    assert late["watched_by"] == ["usos"]


def test_plain_display_writes_news_and_status_lines(agg):
    out = io.StringIO()
    disp = StationDisplay(out, plain_period_s=10.0, keys=False, wall_clock=lambda: agg.clock())
    agg.on_update.append(disp.show)
    feed_station(agg)
    agg.test_clock.t = T0 + 0.1
    agg.step(0)
    agg.test_clock.t = T0 + 1.2
    agg.step(0)
    text = out.getvalue()
    assert text.count("broker: connecting") == 1
    assert text.count("board soyuz: online") == 1 and text.count("board crew: online") == 1
    assert "P=99.000kPa leak=15.00+-0.20kg/day settled boards=soyuz" in text
    assert text.count("soyuz/soyuz_bo CAUTION raised leak") == 1
    assert text.count("advisor: SUSPECT") == 1
    assert text.count("[soyuz_bo+soyuz_sa]") == 1  # the status lines: once per 10 s


def test_sped_up_station_clock_maps_board_times_and_keeps_wall_pacing():
    """``--speed 10``: station time runs 10x from the start; a board's t_unix (wall)
    is mapped onto it; updates stay paced in wall seconds."""
    from station.aggregator import StationClock

    wall = Clock(T0)
    sc = StationClock(10.0, wall=wall)
    mod = FakeAdvisorModule()
    a = Aggregator(load_station_config(EXAMPLE), clock=sc, speed=10.0, advisor_module=mod)
    assert sc() == T0 and sc.from_unix(T0 + 2) == T0 + 20
    wall.t = T0 + 3  # station time T0 + 30
    put(a, wire.node_status_topic(ST, "soyuz"), wire.NodeStatus("soyuz", 1, True, T0), True)
    hatch = wire.HatchStateMsg("soyuz", "soyuz-bo-sa", "open", "operator", T0 + 1)  # 1 wall s in
    put(a, wire.hatch_topic(ST, "soyuz", "soyuz-bo-sa"), hatch, True)
    up = a.step(0)
    assert up is not None and up.snapshot.t_unix == T0 + 30
    assert {h.name: h.since_s for h in up.snapshot.hatches}["soyuz-bo-sa"] == T0 + 10
    seg = next(s for s in up.snapshot.segments if "soyuz_bo" in s.volumes)
    assert seg.since_s == T0 + 10
    assert mod.made.calls[-1][0] == T0 + 30  # the advisor lives on station time
    wall.t = T0 + 3.5  # 0.5 wall s: 5 station s, no news: not yet
    assert a.step(0) is None
    wall.t = T0 + 4.1
    assert a.step(0) is not None
    # the node is stale after offline_after_s (10) station seconds: 1 wall second here
    wall.t = T0 + 5.2
    assert {n.node: n.state.value for n in a.update(sc()).snapshot.nodes}["soyuz"] == "stale"
    a.client.loop_stop()


@pytest.mark.timeout(30)
def test_terminal_display_redraws_in_place_at_most_once_a_period(agg):
    import os
    import pty
    import select

    master, slave = pty.openpty()
    out = os.fdopen(slave, "w")
    try:
        wall = Clock(0.0)
        disp = StationDisplay(out, period_s=1.0, keys=False, wall_clock=wall)
        assert disp.tty
        feed_station(agg)
        agg.test_clock.t = T0 + 0.1
        up = agg.step(0)
        disp.show(up)
        wall.t = 0.5
        disp.show(up)  # within the period: not drawn
        data = b""
        while True:
            if not select.select([master], [], [], 0.5)[0]:
                break
            data += os.read(master, 65536)
        text = data.decode()
        assert text.count("\x1b[H\x1b[2J") == 1
        assert "station iss" in text and "advisor: SUSPECT" in text
    finally:
        out.close()
        os.close(master)
