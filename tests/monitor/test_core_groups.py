"""Hatches and groups, decimated windows, memory bound, results and snapshot."""

from __future__ import annotations

import json

import numpy as np
import pytest

from firmware_host.config import HatchConfig, MonitorConfig, SensorConfig, VolumeConfig
from firmware_host.core import MonitorCore
from harness import synth


def _two_volumes(open_: bool):
    return MonitorConfig(
        volumes=(VolumeConfig("zvezda", 89.0), VolumeConfig("prk", 4.0)),
        sensors=(
            SensorConfig("bus0", 1, "zvezda", 2.0),
            SensorConfig("bus0", 2, "prk", 2.0),
        ),
        hatches=(HatchConfig("prk-hatch", "zvezda", "prk", open_),),
        rate_hz=2.0,
    )


def test_group_volume_follows_the_hatch():
    core = MonitorCore(_two_volumes(True))
    r = core.tick(0.0)
    z, p = r.volumes
    assert z.group == ("zvezda", "prk") and z.group_volume_m3 == pytest.approx(93.0)
    assert p.group_volume_m3 == pytest.approx(93.0)
    core.set_hatch("prk-hatch", False, 1.0)
    r = core.tick(1.0)
    z, p = r.volumes
    assert z.group == ("zvezda",) and p.group == ("prk",) and p.group_volume_m3 == 4.0
    with pytest.raises(KeyError):
        core.set_hatch("nope", True, 2.0)


@pytest.mark.slow
def test_isolated_tunnel_leak_rate_uses_its_own_volume_and_settles():
    """The tunnel loses 1.7 kg/day with its hatch closed; the rate is estimated on 4 m3."""
    tunnel = synth.Cabin(
        volume_m3=4.0, thermal_amp_k=0.5, leak="mass", mdot_kg_day=1.7, t_leak_s=0.0
    )
    station = synth.Cabin(volume_m3=89.0, thermal_amp_k=0.5)
    rng = np.random.default_rng(8)
    s1 = synth.SynthSensor(addr=1, rate_hz=2.0, boot_s=3.0)
    s2 = synth.SynthSensor(addr=2, rate_hz=2.0, boot_s=7.0)
    end = 2400.0
    data = [
        synth.sensor_data(s1, station, 0, end + 1, rng),
        synth.sensor_data(s2, tunnel, 0, end + 1, rng),
    ]
    core = MonitorCore(_two_volumes(False))
    last = {}
    synth.run(core, data, 2.0, 0.0, end, on_tick=lambda r: last.update(r=r))
    p = last["r"].volume("prk")
    assert p.group_volume_m3 == 4.0
    assert p.mass_rate_kg_day == pytest.approx(1.7, rel=0.2)
    assert abs(last["r"].volume("zvezda").mass_rate_kg_day) < 1.0


def test_leak_alarms_wait_for_the_group_to_settle_after_a_hatch_change():
    core = MonitorCore(_two_volumes(True))
    core.set_hatch("prk-hatch", False, 100.0)
    assert not core.groups.settled(110.0).any()
    assert core.groups.settled(131.0).all()


@pytest.mark.slow
def test_decimated_window_matches_full_rate_fit():
    """The 600-s window lives on the 1-s tier; its slope equals a fit of every sample."""
    cab = synth.Cabin(volume_m3=50, leak="mass", mdot_kg_day=40.0, t_leak_s=0.0)
    s = synth.SynthSensor(addr=1, rate_hz=10.0, noise_pa=3.0, temp_lag_s=0, pressure_lag_s=0)
    rng = np.random.default_rng(12)
    d = synth.sensor_data(s, cab, 0, 800, rng)
    core = MonitorCore(synth.config_for([s], 50, rate_hz=5.0))
    assert core.windows.window_tier.tolist() == [0, 0, 1, 1, 2]
    last = {}
    synth.run(core, [d], 5.0, 0.0, 700.0, on_tick=lambda r: last.update(r=r))
    r = last["r"]
    w = r.volume("cabin").dpdt[2]
    t_end = 700.0
    m = (d.t_host > t_end - 600 - 1.0) & (d.t_host <= t_end - 1.0)
    (slope, _), cov = np.polyfit(d.t_host[m], d.pressure_pa[m], 1, cov=True)
    assert w.dpdt_pa_s == pytest.approx(slope, abs=0.2 * np.sqrt(cov[0, 0]))
    assert w.stderr_pa_s == pytest.approx(np.sqrt(cov[0, 0]), rel=0.2)


def test_memory_bound_64_channels_6_hour_window():
    cfg = MonitorConfig(
        volumes=tuple(VolumeConfig(f"v{i}", 100.0) for i in range(16)),
        sensors=tuple(SensorConfig("bus0", a + 1, f"v{a % 16}", 10.0) for a in range(64)),
        windows_s=(10.0, 60.0, 600.0, 21600.0),
        rate_hz=10.0,
    )
    core = MonitorCore(cfg)
    assert core.memory_bytes < 40e6  # the ring buffer: far under the 100 MB process budget
    assert core.windows.tiers[2].length * 60 >= 21600


def test_results_serialize_and_snapshot():
    cab = synth.Cabin(volume_m3=50)
    s = synth.SynthSensor(addr=1, rate_hz=2.0)
    core = MonitorCore(synth.config_for([s], 50, rate_hz=2.0))
    d = synth.sensor_data(s, cab, 0, 30, np.random.default_rng(0))
    synth.run(core, [d], 2.0, 0.0, 30.0)
    snap = core.snapshot()
    text = json.dumps(snap)
    assert "volumes" in snap and snap["ticks"] == 61 and snap["samples"] == 60
    assert json.loads(text)["volumes"][0]["volume"] == "cabin"
    sensor = core.last_result.sensor("bus0:1")
    assert sensor.health.name == "OK" and sensor.samples == 60


class _SharedPressure:
    """One module of a group joined by open hatches: its own temperature, the group's
    pressure P = Pc * T_eff / T_ref with T_eff = V / sum(V_i / T_i)."""

    def __init__(self, cabins, index):
        self.cabins, self.index = cabins, index

    def temp_k(self, t, lag_s=0.0):
        return self.cabins[self.index].temp_k(t, lag_s)

    def pressure(self, t, lag_s=0.0):
        vol = sum(c.volume_m3 for c in self.cabins)
        inv = sum(c.volume_m3 / c.temp_k(t, lag_s) for c in self.cabins)
        return self.cabins[0].pc(np.asarray(t) - lag_s) * (vol / inv) / synth.T_REF_K


@pytest.mark.slow
def test_group_compensation_and_a_module_that_goes_silent():
    """Two modules with their own thermal cycles share one pressure.  Compensating each
    with its own temperature would read about 50 kg/day; the group's is right.  When
    one module's sensors go silent its temperature is unknown and no leak is claimed."""
    lab = synth.Cabin(volume_m3=106, thermal_amp_k=0.5)
    fgb = synth.Cabin(volume_m3=72, thermal_amp_k=0.7, thermal_phase=2.0, temp0_k=296.65)
    cabins = [lab, fgb]
    sensors = [
        synth.SynthSensor(link="usos", addr=1, rate_hz=2.0, boot_s=4.0),
        synth.SynthSensor(link="usos", addr=2, rate_hz=2.0, boot_s=9.0),
        synth.SynthSensor(link="rs", addr=1, rate_hz=2.0, boot_s=2.0),
        synth.SynthSensor(link="rs", addr=2, rate_hz=2.0, boot_s=5.0),
    ]
    rng = np.random.default_rng(21)
    end = 900.0
    data = [
        synth.sensor_data(s, _SharedPressure(cabins, 0 if s.link == "usos" else 1), 0, end, rng)
        for s in sensors
    ]
    for d in data[:2]:
        d.keep[d.mask(600.0, 630.0)] = False  # the lab's link goes down for 30 s
    cfg = MonitorConfig(
        volumes=(VolumeConfig("lab", 106.0), VolumeConfig("fgb", 72.0)),
        sensors=tuple(
            SensorConfig(s.link, s.addr, "lab" if s.link == "usos" else "fgb", 2.0) for s in sensors
        ),
        hatches=(HatchConfig("lab-fgb", "lab", "fgb", True),),
        rate_hz=2.0,
    )
    core = MonitorCore(cfg)
    worst = {"lab": 0.0, "fgb": 0.0}

    def on_tick(r):
        if r.t_s > 300:
            for v in r.volumes:
                z = v.mass_rate_kg_day / v.mass_rate_sigma_kg_day
                worst[v.volume] = max(worst[v.volume], z)

    events = synth.run(core, data, 2.0, 0.0, end - 1, on_tick=on_tick)
    assert not [e for e in events if e.level.name in ("CAUTION", "WARNING", "EMERGENCY")]
    assert max(worst.values()) < 5.0
    assert [e.kind.name for e in events if e.transition.name == "RAISED"].count("SENSOR_STALE") == 2
