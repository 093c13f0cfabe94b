"""The loop's side (StationFeed, Handoff) on a real core, and the wire's strict JSON."""

from __future__ import annotations

import json
import math

import pytest

from common import station_wire as wire
from firmware_host.alarms import AlarmEvent, AlarmKind, AlarmLevel, Transition
from firmware_host.runtime.station_feed import StationFeed
from firmware_host.runtime.station_publisher import Handoff

T0_UNIX = 1_796_000_000.0


def run_feed(scenario: str, duration_s: float, rate_hz: float = 1.0, hatch_at=None):
    """A real core on ``scenario`` with a StationFeed on every tick: (feed, every message
    handed over in order, config)."""
    from firmware_host.clock import SimClock
    from firmware_host.core import MonitorCore
    from firmware_host.loop import NS, RateLoop
    from harness.derive import config_from_scenario
    from harness.simulate import EmulatorSource
    from hil.emulator import Emulator
    from hil.scenario import load_scenario

    sc = load_scenario(scenario)
    config = config_from_scenario(sc)
    core = MonitorCore(config)
    out: list = []

    class Recorder(Handoff):
        def put_estimates(self, msgs):
            out.extend(msgs)

        def put_event(self, msg):
            out.append(msg)

        def put_alarm(self, msg):
            out.append(msg)

        def put_hatch(self, msg):
            out.append(msg)

    clock = SimClock(0)
    feed = StationFeed(
        Recorder(),
        node="b1",
        session=3,
        volumes=[v.name for v in config.volumes],
        sensor_volumes={s.sensor_id: s.volume for s in config.sensors},
        active_alarms=core.active_alarms,
        hatch_open=lambda: core.hatch_open,
        unix_now=lambda: T0_UNIX + clock.now_ns() / NS,
        rate_hz=rate_hz,
    )
    feed.start(0.0)

    def on_tick(result):
        if hatch_at is not None and result.tick == hatch_at[0]:
            core.set_hatch(hatch_at[1], False, result.t_s)
        feed.record_tick(result)

    source = EmulatorSource(Emulator(sc, truth_rate_hz=0.0))
    loop = RateLoop(core, clock, config.rate_hz, source, on_tick)
    loop.start_ns = int(round(NS / config.rate_hz))
    loop.run(until_s=duration_s)
    return feed, out, config


@pytest.fixture(scope="module")
def rapid():
    return run_feed("rapid-depress", 200, hatch_at=(60, "node1-node3"))


def test_events_states_hatches_and_estimates_of_a_real_depress(rapid):
    feed, out, config = rapid
    volumes = [v.name for v in config.volumes]
    # start: every hatch from config, no alarm on any volume
    start = out[: len(config.hatches) + len(volumes)]
    assert {m.hatch for m in start if isinstance(m, wire.HatchStateMsg)} == {
        h.name for h in config.hatches
    }
    assert all(m.source == "config" for m in start if isinstance(m, wire.HatchStateMsg))
    assert [m.level for m in start if isinstance(m, wire.AlarmStateMsg)] == [None] * len(volumes)
    # the operator's hatch at tick 60
    moved = [m for m in out if isinstance(m, wire.HatchStateMsg) and m.source == "operator"]
    assert [(m.hatch, m.position) for m in moved] == [("node1-node3", "closed")]
    assert moved[0].t_unix == pytest.approx(T0_UNIX + 60, abs=1.5)
    # events: numbered 1.. in order, each of a volume, as the core raised them
    events = [m for m in out if isinstance(m, wire.AlarmEventMsg)]
    assert [m.seq for m in events] == list(range(1, len(events) + 1))
    assert {m.volume for m in events} <= set(volumes)
    rapid_ev = [m for m in events if m.kind == "RAPID_DEPRESS"]
    assert rapid_ev and rapid_ev[0].level == "EMERGENCY" and rapid_ev[0].transition == "RAISED"
    assert all(m.session == 3 and m.node == "b1" for m in events)
    # the alarm state: the highest raised level per volume, since when it was raised
    last = {}
    for m in out:
        if isinstance(m, wire.AlarmStateMsg):
            last[m.volume] = m
    first_raise = {}
    for m in events:
        if m.level == "EMERGENCY" and m.transition == "RAISED":
            first_raise.setdefault(m.volume, m.t_unix)
    for v, t in first_raise.items():
        assert last[v].level == "EMERGENCY" and last[v].kind == "RAPID_DEPRESS"
        assert last[v].since_unix == pytest.approx(t, abs=1e-6)
    # estimates: every volume once per period, expiry three periods
    estimates = [m for m in out if isinstance(m, wire.VolumeEstimateMsg)]
    per_volume = {v: [m for m in estimates if m.volume == v] for v in volumes}
    assert all(190 <= len(ms) <= 201 for ms in per_volume.values()), {
        v: len(ms) for v, ms in per_volume.items()
    }
    assert all(m.expiry_s == 3.0 for m in estimates)
    # each rate carries the span of its window: one of the configured windows
    windows = {m.window_s for m in estimates if m.mass_rate_kg_day is not None}
    assert windows and windows <= {10.0, 60.0, 600.0, 1800.0, 7200.0}, windows
    losing = [m for m in per_volume[rapid_ev[0].volume] if m.settled and m.mass_rate_kg_day]
    assert losing and losing[-1].mass_rate_kg_day > 0 and losing[-1].hole_mm > 0


def test_every_message_is_strict_json_of_schema_1(rapid):
    _, out, _ = rapid
    kinds = {
        wire.NodeStatus: wire.TopicKind.NODE_STATUS,
        wire.VolumeEstimateMsg: wire.TopicKind.ESTIMATE,
        wire.AlarmStateMsg: wire.TopicKind.ALARM,
        wire.AlarmEventMsg: wire.TopicKind.ALARM_EVENT,
        wire.HatchStateMsg: wire.TopicKind.HATCH,
    }

    def refuse(name):
        raise AssertionError(f"{name} on the wire")

    nulls = 0
    for m in out:
        payload = wire.encode(m)
        d = json.loads(payload, parse_constant=refuse)
        assert d["schema"] == 1
        assert wire.decode(kinds[type(m)], payload) == m
        nulls += sum(v is None for v in d.values())
    assert nulls > 0  # unsettled estimates and quiet volumes do carry nulls


def test_non_finite_values_go_out_as_null():
    h = Handoff()
    feed = StationFeed(
        h,
        node="b1",
        session=1,
        volumes=["cabin"],
        sensor_volumes={"bus0:1": "cabin"},
        active_alarms=lambda: [],
        hatch_open=lambda: {},
        unix_now=lambda: T0_UNIX,
    )

    class Result:
        t_s = 10.0
        estimates_t_s = math.nan
        volumes = ()
        events = (
            AlarmEvent(9.0, "bus0:1", AlarmLevel.ADVISORY, AlarmKind.SENSOR_STALE,
                       Transition.RAISED, math.nan, math.inf, "s", "stale"),
            AlarmEvent(9.5, "bus0", AlarmLevel.ADVISORY, AlarmKind.LINK_UNKNOWN_ADDRESS,
                       Transition.RAISED, 1.0, 0.0, "", "a link's"),
            AlarmEvent(9.5, "archive", AlarmLevel.ADVISORY, AlarmKind.OUTPUT_FAILED,
                       Transition.RAISED, 1.0, 0.0, "", "an output's"),
        )  # fmt: skip

    feed.record_tick(Result())
    p = h.take()
    assert len(p.events) == 1  # the sensor's, under its volume; link and output: none
    ev = p.events[0]
    assert (ev.volume, ev.value, ev.limit, ev.seq) == ("cabin", None, None, 1)
    assert ev.t_unix == T0_UNIX - 1.0
    assert b"NaN" not in wire.encode(ev) and b"Infinity" not in wire.encode(ev)
    assert [a.level for a in p.alarms] == [None]  # nothing raised in the core's book


def test_handoff_keeps_newest_estimates_and_bounds_events():
    h = Handoff(max_events=3)
    mk = lambda v, t: wire.VolumeEstimateMsg(  # noqa: E731
        "b1", 1, v, t, (v,), 1.0, None, None, None, None, None, None, None, "X", 0, False, "NONE"
    )
    h.put_estimates([mk("a", 1.0), mk("b", 1.0)])
    h.put_estimates([mk("a", 2.0)])
    for seq in range(1, 6):
        h.put_event(wire.AlarmEventMsg("b1", 1, seq, "a", 0.0, "A", "K", "T", None, None, "", ""))
    assert h.events_dropped == 2 and h.estimates_replaced == 1
    p = h.take(events=False)  # not connected: events stay
    assert sorted((m.volume, m.t_unix) for m in p.estimates) == [("a", 2.0), ("b", 1.0)]
    assert p.events == [] and h.events_waiting == 3
    assert [m.seq for m in h.take().events] == [3, 4, 5]
    assert h.take().estimates == [] and h.events_waiting == 0
