"""Sensor health: every fault kind is detected, the sensor is left out, and it recovers."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

from drivers.protocol import Status
from firmware_host.alarms import AlarmKind, AlarmLevel, Transition
from firmware_host.core import HealthState, MonitorCore
from harness import synth

RATE = 2.0
END = 1800.0

#: (sensor addr, kind, start s, end s)
FAULTS = [
    (1, AlarmKind.SENSOR_STALE, 200.0, 240.0),
    (2, AlarmKind.SENSOR_SPIKE, 400.0, 400.5),
    (1, AlarmKind.SENSOR_STUCK, 600.0, 640.0),
    (2, AlarmKind.SENSOR_STATUS, 800.0, 840.0),
    (1, AlarmKind.SENSOR_OUT_OF_RANGE, 1000.0, 1040.0),
    (2, AlarmKind.SENSOR_REBOOT, 1200.0, 1202.0),
    (1, AlarmKind.SENSOR_DISAGREE, 1400.0, 1500.0),
    (3, AlarmKind.SENSOR_NOISY, 1560.0, 1660.0),
]


def _inject(d: synth.SensorData, kind: AlarmKind, t0: float, t1: float) -> None:
    m = d.mask(t0, t1)
    first = np.flatnonzero(m)[0]
    if kind is AlarmKind.SENSOR_STALE:
        d.keep[m] = False
    elif kind is AlarmKind.SENSOR_SPIKE:
        d.pressure_pa[first] += 3000.0
    elif kind is AlarmKind.SENSOR_STUCK:
        d.pressure_pa[m] = d.pressure_pa[first]
        d.temperature_c[m] = d.temperature_c[first]
    elif kind is AlarmKind.SENSOR_STATUS:
        d.status[m] |= int(Status.SELF_TEST_FAILED)
    elif kind is AlarmKind.SENSOR_OUT_OF_RANGE:
        d.status[m] |= int(Status.PRESSURE_OUT_OF_RANGE)
        d.pressure_pa[first + 5] = 250_000.0  # and one reading outside the configured range
    elif kind is AlarmKind.SENSOR_REBOOT:
        d.keep[m] = False  # silent while booting, then the clock restarts from 0
        after = d.t_host >= t1
        d.t_us[after] = np.round((d.t_host[after] - t1 + 0.3) * 1e6).astype(np.uint64)
        d.status[np.flatnonzero(after)[0]] |= int(Status.CONFIG_CHANGED)
    elif kind is AlarmKind.SENSOR_DISAGREE:
        d.pressure_pa[m] += 600.0
    elif kind is AlarmKind.SENSOR_NOISY:
        d.pressure_pa[m] += (
            24 * d.sensor.noise_pa * np.random.default_rng(1).standard_normal(int(m.sum()))
        )


@pytest.fixture(scope="module")
def run():
    cab = synth.Cabin(volume_m3=100, thermal_amp_k=0.5)
    sensors = [
        synth.SynthSensor(addr=a, rate_hz=RATE, boot_s=40.0 * a, phase_s=0.1 * a) for a in (1, 2, 3)
    ]
    rng = np.random.default_rng(99)
    data = [synth.sensor_data(s, cab, 0, END + 1, rng) for s in sensors]
    for addr, kind, t0, t1 in FAULTS:
        _inject(data[addr - 1], kind, t0, t1)
    cfg = synth.config_for(sensors, 100, rate_hz=RATE)
    # sensors 1 and 2 have names, sensor 3 none (messages then name it by its id)
    names = {1: "cabin-a", 2: "cabin-b"}
    cfg = dataclasses.replace(
        cfg,
        sensors=tuple(dataclasses.replace(s, name=names.get(s.addr, "")) for s in cfg.sensors),
    )
    core = MonitorCore(cfg)
    timeline = {}

    def on_tick(r):
        if r.tick % 10 == 0:
            timeline[round(r.t_s)] = (
                {s.sensor_id: (s.health, s.reasons) for s in r.sensors},
                r.volume("cabin"),
            )

    events = synth.run(core, data, RATE, 0.0, END, on_tick=on_tick)
    return events, timeline, core


@pytest.mark.parametrize("addr, kind, t0, t1", FAULTS, ids=[f[1].name for f in FAULTS])
def test_every_fault_kind_raises_its_advisory_within_60_s(run, addr, kind, t0, t1):
    events, _, _ = run
    raised = [
        e
        for e in events
        if e.kind is kind and e.source == f"bus0:{addr}" and e.transition is Transition.RAISED
    ]
    assert raised, f"no {kind.name} advisory"
    assert raised[0].level is AlarmLevel.ADVISORY
    assert t0 <= raised[0].t_s <= t0 + 60.0


@pytest.mark.parametrize("addr, kind, t0, t1", FAULTS, ids=[f[1].name for f in FAULTS])
def test_every_fault_recovers(run, addr, kind, t0, t1):
    events, timeline, _ = run
    rtn = [
        e
        for e in events
        if e.kind is kind
        and e.source == f"bus0:{addr}"
        and e.transition is Transition.RETURN_TO_NORMAL
        and e.t_s > t1
    ]
    assert rtn, f"{kind.name} never returned to normal"
    # healthy again (back in the estimates) within 120 s of the fault's end (a noisy
    # sensor must first collect a clean window to be judged on)
    t_ok = min(t for t in timeline if t >= t1 + 120.0)
    health, reasons = timeline[t_ok][0][f"bus0:{addr}"]
    assert health is HealthState.OK and not reasons


def test_advisories_say_the_sensor_name_and_the_quantity_in_words(run):
    events, _, _ = run
    msg = {}
    for addr, kind, t0, _ in FAULTS:
        msg[kind] = next(
            e.message
            for e in events
            if e.kind is kind
            and e.source == f"bus0:{addr}"
            and e.transition is Transition.RAISED
            and e.t_s >= t0
        )
    # the key and source stay link:addr; the message names the sensor
    stale = next(e for e in events if e.kind is AlarmKind.SENSOR_STALE)
    assert stale.source == "bus0:1" and stale.key == "bus0:1:SENSOR_STALE"
    assert re.fullmatch(
        r"ADVISORY SENSOR_STALE cabin-a \(bus0:1\): no sample for [\d.]+ s \(limit 1.5\d* s\)",
        msg[AlarmKind.SENSOR_STALE],
    ), msg[AlarmKind.SENSOR_STALE]
    assert (
        msg[AlarmKind.SENSOR_STUCK]
        == "ADVISORY SENSOR_STUCK cabin-a (bus0:1): 20 identical samples (limit 20)"
    )
    # sensor 3 has no name: its id; its noise against its usual noise (3 Pa white
    # noise, read as the scatter of the 60-s fit) beyond the noisy ratio (4)
    m = re.fullmatch(
        r"ADVISORY SENSOR_NOISY bus0:3: noise ([\d.]+) Pa, usual ([\d.]+) Pa",
        msg[AlarmKind.SENSOR_NOISY],
    )
    assert m, msg[AlarmKind.SENSOR_NOISY]
    assert float(m[1]) > 4 * float(m[2]) and 2 < float(m[2]) < 6
    # 600 Pa above the two others: beyond 100 Pa when the advisory is raised
    m = re.fullmatch(
        r"ADVISORY SENSOR_DISAGREE cabin-a \(bus0:1\): level (\d+) Pa above the volume's median",
        msg[AlarmKind.SENSOR_DISAGREE],
    )
    assert m, msg[AlarmKind.SENSOR_DISAGREE]
    assert 100 < float(m[1]) < 700
    assert msg[AlarmKind.SENSOR_SPIKE].startswith("ADVISORY SENSOR_SPIKE cabin-b (bus0:2): spike")
    assert "0-130 kPa" in msg[AlarmKind.SENSOR_OUT_OF_RANGE]
    for kind in (AlarmKind.SENSOR_STATUS, AlarmKind.SENSOR_REBOOT):
        assert "beyond limit" not in msg[kind] and "(bus0:2): " in msg[kind]


def test_faulty_sensor_is_left_out_of_the_estimates(run):
    _, timeline, _ = run
    health, reasons = timeline[620][0]["bus0:1"]
    assert health is HealthState.FAULTED
    assert timeline[620][1].n_healthy_sensors == 2
    # the +600 Pa sensor is outvoted: the fused pressure stays near the others
    v = timeline[1460][1]  # sensor 1 is 600 Pa high from 1400 to 1500
    assert v.n_healthy_sensors == 2
    assert abs(v.pressure_pa - timeline[1360][1].pressure_pa) < 100.0


def test_faults_raise_no_leak_alarm(run):
    events, _, _ = run
    assert not [e for e in events if e.level > AlarmLevel.ADVISORY]


def test_unknown_addresses_are_counted_not_fatal():
    sensors = [synth.SynthSensor(addr=1, rate_hz=2.0)]
    core = MonitorCore(synth.config_for(sensors, 10, rate_hz=2.0))
    d = synth.sensor_data(
        synth.SynthSensor(addr=9, rate_hz=2.0), synth.Cabin(), 0, 10, np.random.default_rng(0)
    )
    rec, _ = synth.records_of(d)
    core.ingest("bus0", rec, 10.0)
    core.ingest("elsewhere", rec[:3], 10.0)
    r = core.tick(10.0)
    assert core.unknown == {"bus0": len(rec), "elsewhere": 3}
    raised = [e for e in r.events if e.kind is AlarmKind.LINK_UNKNOWN_ADDRESS]
    assert {e.source for e in raised} == {"bus0", "elsewhere"}
    later = [e for t in np.arange(10.5, 50.0, 0.5) for e in core.tick(float(t)).events]
    rtn = [e for e in later if e.kind is AlarmKind.LINK_UNKNOWN_ADDRESS]
    assert {e.transition for e in rtn} == {Transition.RETURN_TO_NORMAL}


@pytest.mark.slow
def test_a_sensor_faster_or_slower_than_configured_still_counts():
    """Coverage of a window is judged by the rate measured on the sensor's clock."""
    cab = synth.Cabin(volume_m3=50, leak="mass", mdot_kg_day=100.0, t_leak_s=0.0)
    actual = [synth.SynthSensor(addr=1, rate_hz=1.0), synth.SynthSensor(addr=2, rate_hz=1.0)]
    configured = [synth.SynthSensor(addr=1, rate_hz=10.0), synth.SynthSensor(addr=2, rate_hz=10.0)]
    rng = np.random.default_rng(4)
    data = [synth.sensor_data(s, cab, 0, 700, rng) for s in actual]
    core = MonitorCore(synth.config_for(configured, 50, rate_hz=1.0))
    last = {}
    synth.run(core, data, 1.0, 0.0, 700.0, on_tick=lambda r: last.update(r=r))
    v = last["r"].volume("cabin")
    np.testing.assert_allclose(core.health.rate_hz, 1.0, rtol=0.01)
    assert v.best_window_s == 600.0 and v.n_healthy_sensors == 2
    assert v.mass_rate_kg_day == pytest.approx(100.0, rel=0.05)


@pytest.mark.slow
def test_commanded_configuration_change_resets_history_without_an_advisory():
    """Status bit 5 with the clock running on (the host's own SET_RATE or ZERO_OFFSET)
    must not alarm the crew; a reboot, where the clock restarts, does (above)."""
    sensors = [synth.SynthSensor(addr=1, rate_hz=10), synth.SynthSensor(addr=2, rate_hz=10)]
    cab = synth.Cabin(volume_m3=100, thermal_amp_k=0.0)
    rng = np.random.default_rng(5)
    data = [synth.sensor_data(s, cab, 0, 600, rng) for s in sensors]
    first = np.flatnonzero(data[0].t_host >= 300.0)[0]
    data[0].status[first] |= int(Status.CONFIG_CHANGED)
    data[0].pressure_pa[first:] += 40.0  # a ZERO_OFFSET takes effect from that sample on
    core = MonitorCore(synth.config_for(sensors, 100, rate_hz=10.0))
    events = synth.run(core, data, 10.0, 0.0, 600.0)
    raised = [e for e in events if e.transition is Transition.RAISED]
    assert not [e for e in raised if e.kind is AlarmKind.SENSOR_REBOOT]
    assert not [e for e in raised if e.level >= AlarmLevel.CAUTION]
