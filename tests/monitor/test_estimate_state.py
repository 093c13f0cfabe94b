"""Settling estimates (issue 14): until an estimate's window is usable, and at an onset
or a hatch change, the monitor says it is settling instead of showing a number the
data cannot support."""

from __future__ import annotations

import math
import sqlite3

import numpy as np
import pytest

from firmware_host.config import Limits
from firmware_host.core import MonitorCore
from firmware_host.runtime.display import View, plain_lines, render
from firmware_host.runtime.telemetry import _estimate
from firmware_host.stages.estimation import EstimateState, estimate_state
from harness import synth

L = Limits()  # CAUTION 2 kg/day, caution_sigma 5


def _state(best=0, m=0.0, sigma=0.5, raw=0.0, settled=True, held=None):
    out = estimate_state(
        np.array([best]),
        np.array([m]),
        np.array([sigma]),
        np.array([raw]),
        np.array([settled]),
        L,
        None if held is None else np.array([held]),
    )
    return EstimateState(int(out[0]))


def test_state_rules():
    assert _state(best=-1, m=math.nan, sigma=math.nan) is EstimateState.NONE
    assert _state(m=0.3, sigma=0.5) is EstimateState.SETTLED  # precise against the limit
    assert _state(m=40.0, sigma=3.0) is EstimateState.SETTLED  # large, clearly not zero
    assert _state(m=-250.0, sigma=120.0) is EstimateState.SETTLING  # windows filling
    assert _state(m=3.0, sigma=2.5) is EstimateState.SETTLING
    assert _state(m=0.3, sigma=0.5, settled=False) is EstimateState.SETTLING  # hatch moved
    # a significant gain of mass while the raw pressure falls: no leak makes air
    assert _state(m=-420.0, sigma=20.0, raw=-0.3) is EstimateState.SETTLING
    # a gain while the pressure rises (a repress, a warming cabin uncompensated) stands
    assert _state(m=-420.0, sigma=20.0, raw=+0.3) is EstimateState.SETTLED
    # the best window shortened (an onset, or a short window's excursion): settling
    # until it has held BEST_WINDOW_HOLD more estimations
    assert _state(m=-520.9, sigma=104.2, raw=0.56, held=0) is EstimateState.SETTLING
    assert _state(m=-520.9, sigma=104.2, raw=0.56, held=1) is EstimateState.SETTLING
    assert _state(m=34.7, sigma=5.5, held=2) is EstimateState.SETTLED


def _run(cab, end_s, *, thermal=0.0, rate_hz=1.0, seed=4):
    sensors = [
        synth.SynthSensor(addr=a, rate_hz=rate_hz, noise_pa=2.0, temp_noise_k=0.01, boot_s=3.0 * a)
        for a in (1, 2)
    ]
    rng = np.random.default_rng(seed)
    data = [synth.sensor_data(s, cab, 0, end_s + 1, rng) for s in sensors]
    core = MonitorCore(synth.config_for(sensors, cab.volume_m3, rate_hz=rate_hz))
    ticks = []
    synth.run(core, data, rate_hz, 0.0, end_s, on_tick=lambda r: ticks.append(r))
    return core, ticks


@pytest.fixture(scope="module")
def onset_run():
    """A 10 kg/day-class orifice leak in 60 m3 opening at 1800 s under a 1 K swing."""
    cab = synth.Cabin(
        volume_m3=60.0, thermal_amp_k=1.0, leak="orifice", hole_mm=1.0, t_leak_s=1800.0
    )
    return _run(cab, 3000.0)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_first_minutes_are_settling_then_the_estimate_settles(onset_run):
    _, ticks = onset_run
    first = [r.volumes[0] for r in ticks[1:60] if r.volumes]
    assert first and all(not v.settled for v in first)
    assert {v.state for v in first} <= {EstimateState.NONE, EstimateState.SETTLING}
    before_onset = [r.volumes[0] for r in ticks if 1500 <= r.t_s < 1800]
    assert all(v.settled for v in before_onset)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_no_settled_estimate_shows_a_gain_while_the_pressure_falls(onset_run):
    """Through the onset: whatever the transient, a settled estimate never claims a
    significant gain of mass while the cabin loses it."""
    _, ticks = onset_run
    after = [r.volumes[0] for r in ticks if 1800 <= r.t_s]
    assert after
    for v in after:
        if v.settled:
            assert v.mass_rate_kg_day > -L.caution_sigma * v.mass_rate_sigma_kg_day, v
    # and the leak's estimate does settle
    assert any(v.settled and v.mass_rate_kg_day > L.caution_leak_kg_day for v in after)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_hatch_change_makes_its_volumes_settle_again():
    """Two modules joined by a hatch, settled; the hatch closes: both say settling for
    ``hatch_settle_s``, then settle again."""
    from firmware_host.config import HatchConfig, MonitorConfig, SensorConfig, VolumeConfig

    cab = synth.Cabin(volume_m3=100.0)
    sensors = [synth.SynthSensor(addr=a, rate_hz=1.0, noise_pa=2.0, boot_s=2.0 * a) for a in (1, 2)]
    cfg = MonitorConfig(
        volumes=(VolumeConfig("a", 50.0), VolumeConfig("b", 50.0)),
        sensors=(SensorConfig("bus0", 1, "a", 1.0), SensorConfig("bus0", 2, "b", 1.0)),
        hatches=(HatchConfig("h", "a", "b", True),),
        rate_hz=1.0,
    )
    rng = np.random.default_rng(1)
    data = [synth.sensor_data(s, cab, 0, 4001, rng) for s in sensors]
    core = MonitorCore(cfg)
    synth.run(core, data, 1.0, 0.0, 1500.0)
    assert all(v.settled for v in core.last_result.volumes)
    core.set_hatch("h", False, 1500.0)
    settle = cfg.estimator.hatch_settle_s
    states = []
    synth.run(core, data, 1.0, 1501.0, 1500.0 + settle + 1200.0, on_tick=lambda r: states.append(r))
    during = [v for r in states if r.t_s < 1500.0 + settle for v in r.volumes]
    assert during and not any(v.settled for v in during)
    assert all(v.settled for v in states[-1].volumes)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_display_telemetry_say_settling_not_a_number(onset_run):
    _, ticks = onset_run
    r = next(r for r in ticks[5:60] if r.volumes and r.volumes[0].state is EstimateState.SETTLING)
    v = r.volumes[0]
    view = View(t_s=r.t_s, volumes=(v,))
    row = next(ln for ln in render(view) if ln.startswith("cabin "))
    assert "settling (+-" in row and "kg/day)" in row
    assert f"{v.mass_rate_kg_day:.2f}" not in row
    assert len(row) <= 80
    line = plain_lines(view)[0]
    assert "estimate: settling" in line and "leak=" not in line
    assert _estimate(v)["state"] == "SETTLING"
    assert v.to_json_dict()["state"] == "SETTLING"
    none = type(v)(**{**v.__dict__, "state": EstimateState.NONE})
    assert "no estimate yet" in render(View(volumes=(none,)))[2]
    settled = next(r.volumes[0] for r in ticks if r.volumes and r.volumes[0].settled)
    row = render(View(volumes=(settled,)))[2]
    assert f"{settled.mass_rate_kg_day:.2f}" in row and "settling" not in row


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_archive_keeps_the_state_and_plots_only_settled(onset_run, tmp_path):
    from firmware_host.runtime.archive import Archive

    _, ticks = onset_run
    path = tmp_path / "a.sqlite"
    arch = Archive(path)
    for r in ticks[:200]:
        arch.record_tick(r)
    arch.close()
    db = sqlite3.connect(path)
    states = {s for (s,) in db.execute("SELECT DISTINCT state FROM estimates")}
    db.close()
    assert "SETTLING" in states
    assert states <= {"NONE", "SETTLING", "SETTLED"}
    # an archive written before the state column: opened, the column added (NULL)
    old = tmp_path / "old.sqlite"
    db = sqlite3.connect(old)
    db.execute(
        "CREATE TABLE estimates (t_s REAL NOT NULL, volume TEXT NOT NULL, pressure_pa REAL, "
        "pressure_comp_pa REAL, temperature_k REAL, dpdt_pa_s REAL, dpdt_sigma_pa_s REAL, "
        "window_s REAL, mass_rate_kg_day REAL, mass_rate_sigma_kg_day REAL, hole_mm REAL, "
        "reserve_s_linear REAL, reserve_s_orifice REAL, regime TEXT, n_healthy INTEGER, "
        "group_volume_m3 REAL)"
    )
    db.commit()
    db.close()
    arch = Archive(old)
    arch.record_tick(ticks[100])
    arch.close()
    db = sqlite3.connect(old)
    assert db.execute("SELECT state FROM estimates").fetchone()[0] in ("SETTLING", "SETTLED")
    db.close()
