"""Alarm messages in words, and the LEAK_RATE_ROSE advisory of a second leak."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest

from common.gas import fall_rate_pa_s
from firmware_host.alarms import Alarm, AlarmKind, AlarmLevel, AlarmState, Transition, describe
from firmware_host.config import Limits
from firmware_host.core import MonitorCore
from firmware_host.stages.alarm_book import AlarmBook
from firmware_host.stages.alarm_rules import (
    RATE_ROSE_SETTLE_S,
    VolumeConditions,
    VolumeFamily,
    leak_rate_rose,
    rate_rose_base,
)
from harness import synth

LIMITS = Limits()  # flight: CAUTION at 2 kg/day


def test_volume_alarm_messages_in_words():
    assert describe(AlarmKind.LEAK, 21.34, 2.0, "kg/day") == "leak 21.3 kg/day, limit 2 kg/day"
    assert (
        describe(AlarmKind.RAPID_DEPRESS, 326.6, 67.0, "Pa/min")
        == "pressure falling 327 Pa/min, limit 67 Pa/min"
    )
    assert (
        describe(AlarmKind.LOW_RESERVE, 5252.0, 43200.0, "s")
        == "reserve 88 min to the minimum pressure, limit 12 h"
    )
    assert (
        describe(AlarmKind.RESERVE_CRITICAL, 328.1, 3600.0, "s")
        == "reserve 5.5 min to the minimum pressure, limit 60 min"
    )
    a = Alarm("cabin", AlarmLevel.CAUTION, AlarmKind.LEAK, "kg/day")
    ev = a.update(0.0, True, False, 21.34, 2.0, 0.0, 10.0, False)
    assert ev.message == "CAUTION LEAK cabin: leak 21.3 kg/day, limit 2 kg/day"
    assert (ev.source, ev.key, ev.value, ev.limit, ev.unit) == (
        "cabin",
        "cabin:LEAK",
        21.34,
        2.0,
        "kg/day",
    )
    a.update(1.0, False, True, -0.35, 2.0, 0.0, 10.0, False)
    rtn = a.update(11.0, False, True, -0.35, 2.0, 0.0, 10.0, False)
    assert rtn.message == "LEAK cabin returned to normal: leak -0.35 kg/day, limit 2 kg/day"
    assert a.acknowledge(12.0, False).message == "LEAK cabin acknowledged"


def test_sensor_advisory_names_the_sensor_and_keeps_its_key():
    book = AlarmBook(["a"], ["bus0:5"], replay=False, sensor_labels=["cabin-a (bus0:5)"])
    active = np.zeros((1, 8), dtype=bool)
    active[0, 0] = True  # STALE
    value = np.zeros((1, 8))
    value[0, 0] = 12.0
    out = []
    book.step_sensors(0.0, active, value, lambda: np.array([3.0]), 20, 0.0, 30.0, out)
    (ev,) = out
    assert ev.message == "ADVISORY SENSOR_STALE cabin-a (bus0:5): no sample for 12 s (limit 3 s)"
    assert ev.source == "bus0:5" and ev.key == "bus0:5:SENSOR_STALE"
    assert (ev.value, ev.limit, ev.unit) == (12.0, 3.0, "s")


def test_leak_rate_rose_rule():
    base = np.array([10.0, 10.0, 10.0, 10.0, np.nan, 1.0])
    now = np.array([16.0, 14.0, 30.0, 30.0, 50.0, 2.5])
    sigma = np.array([1.0, 1.0, 1.0, 8.0, 1.0, 0.1])
    # +6 > 5 (50 %); +4 < 5; +20; +20 < 3 x 8; no CAUTION; +1.5 < the 2 kg/day limit
    assert leak_rate_rose(base, now, sigma, LIMITS).tolist() == [
        True,
        False,
        True,
        False,
        False,
        False,
    ]


def test_rate_rose_base_is_the_rate_now_while_the_caution_settles():
    base = np.array([10.0, 10.0, 10.0, np.nan, 10.0])
    now = np.array([20.0, 5.0, 20.0, 20.0, np.nan])
    since = np.array([60.0, 60.0, RATE_ROSE_SETTLE_S, 60.0, 60.0])
    out = rate_rose_base(base, now, since)
    assert out[[0, 1, 2, 4]].tolist() == [20.0, 5.0, 10.0, 10.0] and np.isnan(out[3])


def _leak_book():
    book = AlarmBook(["cabin"], [], replay=False)
    events = []

    def step(t, mdot, raise_=True, clear=False, sigma=0.5):
        val = np.array([mdot])
        c = VolumeConditions(
            VolumeFamily.LEAK, np.array([raise_]), np.array([clear]), val, 2.0, 10.0
        )
        book.step_volumes(c, t, 30.0, events)
        book.step_rate_rose(t, val, np.array([sigma]), LIMITS, events)

    return book, events, step


def test_rate_rose_advisory_stepped_by_the_book_and_cleared_with_the_caution():
    book, events, step = _leak_book()
    T = RATE_ROSE_SETTLE_S
    # CAUTION raised at 10 s at 8 kg/day; the estimate settles to 10 kg/day and stays
    for t in range(0, int(T) + 100, 5):
        step(float(t), 8.0 if t < 60 else 10.0 + 0.1 * math.sin(t))
    assert [e.kind for e in events] == [AlarmKind.LEAK]
    t0 = T + 100  # a second leak: 25 kg/day
    for t in range(0, 20, 5):
        step(t0 + t, 25.0)
    rose = [e for e in events if e.kind is AlarmKind.LEAK_RATE_ROSE]
    assert [e.t_s for e in rose] == [t0 + 10]
    ev = rose[0]
    assert ev.level is AlarmLevel.ADVISORY and ev.transition is Transition.RAISED
    assert ev.key == "cabin:LEAK_RATE_ROSE" and ev.unit == "kg/day" and ev.value == 25.0
    assert ev.message == "ADVISORY LEAK_RATE_ROSE cabin: leak rate rose from 10.1 to 25 kg/day"
    # the estimate settles at 30 (no new advisory while it settles), then a third
    # leak to 60 kg/day raises it again, though unacknowledged
    for t in range(20, int(T) + 60, 5):
        step(t0 + t, 30.0 if t < T + 30 else 60.0)
    rose = [e for e in events if e.kind is AlarmKind.LEAK_RATE_ROSE]
    assert [e.t_s for e in rose] == [t0 + 10, t0 + T + 40]
    assert rose[1].message.endswith("rose from 30 to 60 kg/day")
    t0 += T
    book.acknowledge("cabin:LEAK_RATE_ROSE", t0 + 60)
    # every leak stops: the CAUTION clears after 30 s, and the advisory with it
    for t in range(60, 120, 5):
        step(t0 + t, 0.0, raise_=False, clear=True)
    rtn = [e for e in events if e.transition is Transition.RETURN_TO_NORMAL]
    assert [(e.kind, e.t_s) for e in rtn] == [
        (AlarmKind.LEAK, t0 + 90),
        (AlarmKind.LEAK_RATE_ROSE, t0 + 90),
    ]
    assert "returned to normal" in rtn[1].message
    assert [a.key for a in book.active()] == ["cabin:LEAK"]  # (not acknowledged)
    assert book.active()[0].state is AlarmState.RTN_UNACK


@dataclass(frozen=True)
class TwoLeaks(synth.Cabin):
    """A constant mass leak (``leak="mass"``) and a second one of
    ``mdot2_kg_day`` from ``t2_s``."""

    t2_s: float = math.inf
    mdot2_kg_day: float = 0.0

    def pc(self, t):
        p = super().pc(t)
        rate = fall_rate_pa_s(self.mdot2_kg_day, self.volume_m3, synth.T_REF_K)
        return p - rate * np.maximum(np.asarray(t, dtype=float) - self.t2_s, 0.0)


PAIR = [synth.SynthSensor(addr=a, rate_hz=2.0, boot_s=9.0 * a) for a in (1, 2)]


def _run(cab, end):
    rng = np.random.default_rng(5)
    data = [synth.sensor_data(s, cab, 0, end + 1, rng) for s in PAIR]
    core = MonitorCore(synth.config_for(PAIR, 100, rate_hz=2.0))
    return synth.run(core, data, 2.0, 0.0, end)


@pytest.mark.slow
@pytest.mark.parametrize("second", [0.0, 20.0], ids=["one-leak", "second-leak"])
def test_second_leak_while_caution_is_latched_raises_rate_rose(second):
    cab = TwoLeaks(
        volume_m3=100,
        thermal_amp_k=0.3,
        leak="mass",
        mdot_kg_day=10.0,
        t_leak_s=200.0,
        t2_s=2400.0,
        mdot2_kg_day=second,
    )
    events = _run(cab, 3300.0)
    caution = [e for e in events if e.kind is AlarmKind.LEAK]
    assert [e.transition for e in caution] == [Transition.RAISED]  # latched throughout
    assert caution[0].t_s < 2400.0 - RATE_ROSE_SETTLE_S
    rose = [e for e in events if e.kind is AlarmKind.LEAK_RATE_ROSE]
    if not second:
        assert rose == []
        return
    assert [e.transition for e in rose] == [Transition.RAISED]
    ev = rose[0]
    assert 2400.0 < ev.t_s < 2400.0 + 600.0
    assert ev.level is AlarmLevel.ADVISORY and ev.source == "cabin"
    frm, to = (float(x) for x in ev.message.split("from ")[1].split(" kg/day")[0].split(" to "))
    assert 8.0 < frm < 12.0  # the first leak's rate, settled (10 kg/day)
    assert 15.0 < to < 40.0  # the rate now (the truth is 30 kg/day)
