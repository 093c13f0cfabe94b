"""The operator's view: render() of a real tick in 80 columns, durations, the plain stream."""

from __future__ import annotations

import io
import math
from dataclasses import replace

import pytest

from firmware_host.alarms import AlarmLevel, Transition
from firmware_host.runtime.display import (
    MMHG_PA,
    LiveDisplay,
    View,
    fmt_duration,
    render,
    wrap,
)
from tests.support.runtime_helpers import run_core

LINK_STATUS = "connected 7500 samples 0 errors 0 reconnects 0 gaps"
LOOP_STATUS = "160 ticks, late p50 0.1 ms p99 0.6 ms, worst tick 2.0 ms, 0 overruns"


@pytest.fixture(scope="module")
def tick():
    """rapid-depress at 160 s: the hole opened at 120 s, alarms are up."""
    core, result, _ = run_core("rapid-depress", 160.0)
    return core, result


def _view(core, result, **kw) -> View:
    return View(
        t_s=result.t_s,
        title="cabinwatch test",
        volumes=result.volumes,
        sensors=result.sensors,
        hatches=dict(core.hatch_open),
        alarms=core.active_alarms(),
        links={"bus0": LINK_STATUS},
        loop=LOOP_STATUS,
        **kw,
    )


def _slope(v) -> float:
    return next(w.dpdt_comp_pa_s for w in v.dpdt if w.window_s == v.best_window_s)


def test_render_fits_80_columns_and_shows_everything(tick):
    core, result = tick
    lines = render(_view(core, result))
    assert all(len(line) <= 80 for line in lines), [ln for ln in lines if len(ln) > 80]
    text = "\n".join(lines)
    assert lines[0].startswith("cabinwatch test") and "t=160 s" in lines[0]
    header = lines[1]
    for unit in ("kPa", "mmHg", "Pa/min", "mmHg/h", "kg/day", "hole mm", "reserve"):
        assert unit in header
    for v in result.volumes:
        row = next(ln for ln in lines if ln.startswith(v.volume + " "))
        slope = _slope(v)
        assert math.isfinite(v.pressure_pa) and math.isfinite(slope)
        assert f"{v.pressure_pa / 1000:.3f}" in row  # kPa
        assert f"{v.pressure_pa / MMHG_PA:.1f}" in row  # mmHg
        assert f"{slope * 60:+.2f}" in row  # Pa/min
        assert f"{slope * 3600 / MMHG_PA:+.3f}" in row  # mmHg/h
        assert f"{v.mass_rate_kg_day:.2f}" in row  # kg/day
        assert f"{v.hole_mm:.2f}" in row  # equivalent hole, mm
        reserve = fmt_duration(min(v.reserve_s_linear, v.reserve_s_orifice))
        assert reserve != "none" and row.split()[-2] == reserve  # a finite reserve time
        assert row.split()[-1] == str(v.n_healthy_sensors)
        assert slope < 0 and v.mass_rate_kg_day > 1000  # the leak is on screen
    assert "1:node1-node3=open" in text and "2:node1-fgb=open" in text
    for s in result.sensors:
        assert f"{s.sensor_id} {s.health.name.lower()}" in text
        assert f"{s.last_sample_age_s:.1f}s" in text
    alarm_lines = lines[lines.index("alarms:") + 1 : lines.index(f"link bus0: {LINK_STATUS}")]
    assert len(alarm_lines) == min(8, len(core.active_alarms())) + (len(core.active_alarms()) > 8)
    assert any("EMER" in ln and "node3:RAPID_DEPRESS" in ln for ln in alarm_lines), text
    assert any("CAUT" in ln and ":LEAK" in ln for ln in alarm_lines), text
    assert any("WARN" in ln and ":LOW_RESERVE" in ln for ln in alarm_lines), text
    assert f"link bus0: {LINK_STATUS}" in lines
    assert f"loop: {LOOP_STATUS}" in lines
    assert lines[-1].startswith("keys: a=acknowledge")


def test_render_closed_hatch_and_worst_alarm_first(tick):
    core, result = tick
    view = _view(core, result)
    view.hatches = {"node1-node3": False, "node1-fgb": True}
    lines = render(view)
    assert any("1:node1-node3=CLOSED" in ln for ln in lines)
    first = lines.index("alarms:") + 1
    levels = [
        ln.split()[0] for ln in lines[first:] if ln.startswith("  ") and not ln.startswith("  ...")
    ]
    order = {"EMER": 4, "WARN": 3, "CAUT": 2, "adv": 1}
    ranks = [order[x] for x in levels if x in order]
    assert ranks and ranks == sorted(ranks, reverse=True)


def test_render_stays_in_80_columns_with_long_names(tick):
    core, result = tick
    long_vols = tuple(
        replace(v, volume="a-very-long-volume-name-" + v.volume) for v in result.volumes
    )
    many_sensors = result.sensors * 6
    alarms = core.active_alarms() * 3
    view = View(
        t_s=1e9,
        title="x" * 120,
        volumes=long_vols,
        sensors=many_sensors,
        hatches={f"hatch-with-a-long-name-{i}": i % 2 == 0 for i in range(12)},
        alarms=alarms,
        links={"l" * 50: "s" * 100},
        loop="y" * 200,
        note="n" * 100,
    )
    lines = render(view)
    assert all(len(line) <= 80 for line in lines), [ln for ln in lines if len(ln) > 80]
    if len(alarms) > 8:
        assert f"  ... and {len(alarms) - 8} more" in lines
    # the hatches and sensors wrap onto several lines instead of being cut
    text = "\n".join(lines)
    assert "12:hatch-with-a-long-name-11=CLOSED" in text


def test_wrap_indents_the_next_lines_and_cuts_an_overlong_part():
    """The board's display and the station view wrap their hatches, sensors and boards so."""
    parts = [f"p{i:02d}=open" for i in range(12)]
    lines = wrap("hatches  ", parts)
    assert lines[0].startswith("hatches  p00=open  p01=open")
    assert len(lines) == 2 and lines[1].startswith(" " * 9 + "p")
    assert " ".join(lines).split() == ["hatches", *parts]
    long = wrap("boards   ", ["a", "x" * 120, "b"])  # a part alone longer than a line
    assert [len(ln) <= 80 for ln in long] == [True] * 3
    assert long[1] == " " * 9 + "x" * 71 and long[2] == " " * 9 + "b"


def test_render_without_data():
    lines = render(View())
    assert "alarms: none" in lines
    assert all(len(line) <= 80 for line in lines)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "none"),
        (math.nan, "none"),
        (math.inf, "none"),
        (100 * 86400, "none"),
        (-5.0, "0s"),
        (0.0, "0s"),
        (45.0, "45s"),
        (59.4, "59s"),
        (60.0, "1m00s"),
        (750.0, "12m30s"),
        (3599.0, "59m59s"),
        (3600.0, "1h00m"),
        (18720.0, "5h12m"),
        (86399.0, "23h59m"),
        (86400.0, "1d00h"),
        (273600.0, "3d04h"),
        (99 * 86400, "99d00h"),
    ],
)
def test_fmt_duration(seconds, text):
    assert fmt_duration(seconds) == text


class FakeWall:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def test_live_display_plain_stream(tick):
    core, result = tick
    out = io.StringIO()
    wall = FakeWall()
    disp = LiveDisplay(out, period_s=1.0, plain_period_s=10.0, wall_clock=wall)
    assert not disp.tty and disp.read_keys() == ""
    view = _view(core, result)
    assert disp.due()
    disp.show(view)
    lines = out.getvalue().splitlines()
    assert len(lines) == len(result.volumes)
    assert "\x1b" not in out.getvalue()  # no terminal escapes on a pipe
    for line, v in zip(lines, result.volumes, strict=True):
        assert line.startswith(f"t=160s {v.volume} P={v.pressure_pa / 1000:.3f}kPa ")
        assert f"leak={v.mass_rate_kg_day:.2f}kg/day" in line
        assert f"alarms={len(view.alarms)}" in line
    # at most every plain_period_s, unless forced
    wall.t += 5.0
    assert not disp.due()
    disp.show(view)
    assert len(out.getvalue().splitlines()) == len(result.volumes)
    disp.show(view, force=True)
    assert len(out.getvalue().splitlines()) == 2 * len(result.volumes)
    wall.t += 10.0
    assert disp.due()
    disp.close()


def test_live_display_writes_alarm_transitions(tick):
    core, result = tick
    out = io.StringIO()
    disp = LiveDisplay(out, plain_period_s=10.0)
    raised = core.acknowledge(None, now_s=result.t_s)
    assert raised, "the run left unacknowledged alarms"
    for ev in raised:
        disp.event(ev)
    lines = out.getvalue().splitlines()
    assert len(lines) == len(raised)
    for line, ev in zip(lines, raised, strict=True):
        assert ev.transition is Transition.ACKNOWLEDGED
        assert line == (f"t={ev.t_s:.0f}s {ev.level.name} ACKNOWLEDGED {ev.key}: {ev.message}")
    assert any(ev.level is AlarmLevel.EMERGENCY for ev in raised)
