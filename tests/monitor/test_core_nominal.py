"""No leak, orbital thermal cycling, temperature noise and every sensor fault: no CAUTION+."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from drivers.protocol import Status
from firmware_host.alarms import AlarmLevel, Transition
from firmware_host.core import MonitorCore
from harness import synth

HOURS = 3.0


@pytest.mark.slow
def test_quiet_cabin_with_faults_raises_no_leak_alarm():
    end = HOURS * 3600.0
    cab = synth.Cabin(volume_m3=400, thermal_amp_k=1.0)
    sensors = [
        synth.SynthSensor(
            addr=a,
            rate_hz=1.0,
            boot_s=11.0 * a,
            phase_s=0.2 * a,
            noise_pa=3.0,
            temp_noise_k=0.02,
            bias_pa=4.0 * a,
        )
        for a in (1, 2, 3)
    ]
    rng = np.random.default_rng(30)
    data = [synth.sensor_data(s, cab, 0, end + 1, rng) for s in sensors]
    # one fault of every kind, spread over the run and the sensors
    d1, d2, d3 = data
    d1.keep[d1.mask(2000, 2100)] = False  # dropout
    m = d2.mask(3000, 3100)
    d2.pressure_pa[m] = d2.pressure_pa[np.flatnonzero(m)[0]]  # stuck
    d3.pressure_pa[np.flatnonzero(d3.mask(4000, 4003))] -= 4000.0  # spike down, 3 samples
    d1.status[d1.mask(5000, 5030)] |= int(Status.ADC_SATURATED)
    d2.status[d2.mask(6000, 6030)] |= int(Status.PRESSURE_OUT_OF_RANGE)
    after = d3.t_host >= 7000  # reboot: clock restarts
    d3.t_us[after] = np.round((d3.t_host[after] - 7000 + 0.5) * 1e6).astype(np.uint64)
    d1.pressure_pa[d1.mask(8000, 8600)] -= 500.0  # step bias down (disagreement)
    m = d2.mask(9500, 9800)
    d2.pressure_pa[m] += 60.0 * rng.standard_normal(int(m.sum()))  # noisy
    cfg = synth.config_for(sensors, 400, rate_hz=1.0)
    cfg = dataclasses.replace(cfg, estimator=dataclasses.replace(cfg.estimator, slow_period_s=5.0))
    core = MonitorCore(cfg)
    worst = []

    def on_tick(r):
        if r.tick % 300 == 0:
            v = r.volumes[0]
            worst.append(v.mass_rate_kg_day / max(v.mass_rate_sigma_kg_day, 1e-9))

    events = synth.run(core, data, 1.0, 0.0, end, on_tick=on_tick)
    raised = [e for e in events if e.transition is Transition.RAISED]
    assert not [e for e in raised if e.level > AlarmLevel.ADVISORY]
    kinds = {e.kind.name for e in raised}
    assert {
        "SENSOR_STALE",
        "SENSOR_STUCK",
        "SENSOR_SPIKE",
        "SENSOR_STATUS",
        "SENSOR_OUT_OF_RANGE",
        "SENSOR_REBOOT",
        "SENSOR_DISAGREE",
        "SENSOR_NOISY",
    } <= kinds
    assert max(worst) < 5.0  # never significant
