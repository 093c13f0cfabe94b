"""Fast leaks: the estimate is current from the first seconds, and alarms hold while
the module empties below its sensors' range."""

from __future__ import annotations

import dataclasses
from unittest import mock

import numpy as np
import pytest

from firmware_host.alarms import AlarmLevel, AlarmState, Transition
from firmware_host.config import SensorConfig
from firmware_host.core import MonitorCore
from firmware_host.stages import alarm_rules
from harness import synth

pytestmark = pytest.mark.timeout(120)

ONSET = 300.0
PAIR = [
    synth.SynthSensor(addr=a, rate_hz=10.0, noise_pa=2.0, temp_noise_k=0.02, boot_s=7.0 * a)
    for a in (1, 2)
]


def _hole(volume_m3=6.0, hole_mm=25.0):
    return synth.Cabin(volume_m3=volume_m3, leak="orifice", hole_mm=hole_mm, t_leak_s=ONSET)


def _run(cab, end, range_pa=(0.0, 130_000.0), seed=3):
    rng = np.random.default_rng(seed)
    data = [synth.sensor_data(s, cab, 0, end + 1, rng) for s in PAIR]
    cfg = synth.config_for(PAIR, cab.volume_m3, rate_hz=10.0)
    cfg = dataclasses.replace(
        cfg, sensors=tuple(dataclasses.replace(s, range_pa=range_pa) for s in cfg.sensors)
    )
    assert all(isinstance(s, SensorConfig) for s in cfg.sensors)
    core = MonitorCore(cfg)
    trace = {}

    def on_tick(res):
        v = res.volume("cabin")
        trace[round(res.t_s, 1)] = v.mass_rate_kg_day

    events = synth.run(core, data, 10.0, 0.0, end, on_tick=on_tick)
    return events, core, trace


@pytest.mark.slow
def test_rapid_depress_rate_is_current_within_seconds_and_settles_within_10_percent():
    """25 mm in 6 m3 (time constant ~100 s): the pressure slope delayed by the
    temperature sensors' lag (20 s) would show no leak for 20 s and then the
    flow of 20 s ago (+25 %); the onset test and the decay correction fix both."""
    cab = _hole()
    events, core, trace = _run(cab, ONSET + 40)
    assert any(e.level is AlarmLevel.EMERGENCY for e in events)
    for dt, tol in ((8.0, 0.25), (15.0, 0.05), (30.0, 0.05)):
        est = trace[round(ONSET + dt, 1)]
        true = cab.mass_rate_kg_day(ONSET + dt)
        assert est == pytest.approx(true, rel=tol), (dt, est, true)


def test_rapid_depress_rate_with_1_hz_sensors_has_no_dip_when_the_delayed_window_takes_over():
    """The same hole seen by 1 Hz sensors, read every second from +12 s to +60 s.
    Two faults this pins down: the onset test lapsing while the delayed 10 s window
    still straddled the onset (the estimate dipped by ~30 % at +30 s), and the decay
    correction taking the rate constant over the pressure now instead of then (a
    steady -4 % to -6 % once the delayed slope is used)."""
    pair = [dataclasses.replace(s, rate_hz=1.0) for s in PAIR]
    cab = _hole()
    rng = np.random.default_rng(3)
    data = [synth.sensor_data(s, cab, 0, ONSET + 61, rng) for s in pair]
    core = MonitorCore(synth.config_for(pair, cab.volume_m3, rate_hz=1.0))
    errs = {}

    def on_tick(res):
        dt = round(res.t_s - ONSET)
        if 12 <= dt <= 60:
            errs[dt] = res.volume("cabin").mass_rate_kg_day / cab.mass_rate_kg_day(res.t_s) - 1

    synth.run(core, data, 1.0, 0.0, ONSET + 60, on_tick=on_tick)
    assert len(errs) == 49
    worst = max(errs.items(), key=lambda kv: abs(kv[1]))
    assert abs(worst[1]) < 0.08, worst


@pytest.mark.slow
def test_slow_leak_estimate_unchanged_by_the_fast_leak_rules():
    """A 40 kg/day hole in 900 m3: far below any thermal jump, the lag-aligned estimate."""
    cab = synth.Cabin(volume_m3=900.0, leak="mass", mdot_kg_day=40.0, t_leak_s=ONSET)
    events, core, trace = _run(cab, ONSET + 900)
    est = trace[round(ONSET + 900, 1)]
    assert est == pytest.approx(40.0, rel=0.1)
    assert [e for e in events if e.level is AlarmLevel.CAUTION]


@pytest.mark.slow
def test_alarms_hold_while_the_module_empties_below_the_sensor_range():
    """Both sensors leave their calibrated range (50 kPa) during the decay: the volume
    has no usable sensor, and its leak alarms must stay up, not return to normal."""
    cab = _hole()
    t_below = ONSET + cab.tau_s * np.log(cab.p0_pa / 50_000.0)
    end = t_below + 120.0
    events, core, _ = _run(cab, end, range_pa=(50_000.0, 130_000.0))
    raised = {e.level for e in events if e.transition is Transition.RAISED}
    assert {AlarmLevel.CAUTION, AlarmLevel.EMERGENCY} <= raised
    rtn = [
        e
        for e in events
        if e.transition is Transition.RETURN_TO_NORMAL and e.level > AlarmLevel.ADVISORY
    ]
    assert not rtn, rtn
    active = {a.level for a in core.active_alarms() if a.state is AlarmState.ACTIVE_UNACK}
    assert AlarmLevel.EMERGENCY in active
    assert AlarmLevel.ADVISORY in active  # the sensors are out of range


def _caution_latency(seed, disable_onset=False):
    """Onset (s) to the first CAUTION: 40 kg/day in 900 m3, three 10 Hz sensors."""
    cab = synth.Cabin(volume_m3=900.0, leak="mass", mdot_kg_day=40.0, t_leak_s=1500.0)
    sensors = [
        synth.SynthSensor(addr=a, rate_hz=10.0, noise_pa=2.0, temp_noise_k=0.02, boot_s=5.0 * a)
        for a in (1, 2, 3)
    ]
    rng = np.random.default_rng(seed)
    data = [synth.sensor_data(s, cab, 0, 1900, rng) for s in sensors]
    core = MonitorCore(synth.config_for(sensors, 900.0, rate_hz=1.0))
    if disable_onset:
        with mock.patch.object(
            alarm_rules,
            "onset_leak",
            lambda fit, usable, channels, limits: (np.zeros(1, dtype=bool), np.full(1, np.nan)),
        ):
            events = synth.run(core, data, 1.0, 0.0, 1899.0)
    else:
        events = synth.run(core, data, 1.0, 0.0, 1899.0)
    t = [
        e.t_s for e in events if e.level is AlarmLevel.CAUTION and e.transition is Transition.RAISED
    ]
    return t[0] - 1500.0 if t else np.inf


@pytest.mark.slow
def test_onset_rule_sees_a_new_leak_in_a_long_window_before_the_short_one_is_significant():
    """The 1-min window is barely significant (temperature noise); the 10-min window
    holds the leak but under-reads it, which stops the best-window search at the
    1-min one.  The onset rule raises CAUTION from the 10-min window on its own.
    Whether the search deadlocks depends on the noise draw: over two seeds the
    rule is never later, and at least once clearly earlier (seeds 11 and 13:
    111 and 123 s with it, 139 and 123 s without)."""
    with_rule = [_caution_latency(s) for s in (11, 13)]
    without = [_caution_latency(s, disable_onset=True) for s in (11, 13)]
    assert max(with_rule) < 130.0, with_rule
    assert all(w <= wo for w, wo in zip(with_rule, without, strict=True))
    assert max(wo - w for w, wo in zip(with_rule, without, strict=True)) > 15.0, (
        with_rule,
        without,
    )


@pytest.mark.slow
def test_caution_clears_only_on_evidence_not_on_a_reading_that_is_merely_not_significant():
    """Once raised, a leak CAUTION must not report a return to normal because a noisy
    estimate (a short window, a loaded loop with late samples) fails to be
    significant: 2.5 +- 1.0 kg/day against a 2 kg/day limit is no evidence that the
    leak stopped.  0.5 +- 0.3 kg/day is: the estimate plus two errors is below the
    limit less the hysteresis (1.6)."""
    cab = synth.Cabin(volume_m3=910.0, leak="mass", mdot_kg_day=21.0, t_leak_s=300.0)
    rng = np.random.default_rng(5)
    data = [synth.sensor_data(s, cab, 0, 1500, rng) for s in PAIR]
    core = MonitorCore(synth.config_for(PAIR, 910.0, rate_hz=1.0))
    events = synth.run(core, data, 1.0, 0.0, 1500.0)
    assert any(e.level is AlarmLevel.CAUTION for e in events)
    fit = core.last_result.volume_fit
    km = fit.kg_day_per_pa_s[0]

    def feed(mdot, se, t0, seconds):
        """The volume stage's fit with the given mass rate and error, through the
        alarm rules into the core's alarm book, once a second."""
        f = dataclasses.replace(
            fit,
            mass_rate_kg_day=np.array([mdot]),
            mass_rate_sigma_kg_day=np.array([se]),
            best_slope_pa_s=np.array([-mdot / km]),
            best_stderr_pa_s=np.array([se / km]),
        )
        out = []
        for k in range(seconds):
            for cond in alarm_rules.volume_conditions(
                f,
                np.full(len(PAIR), 101_000.0),
                np.ones(1, dtype=bool),
                core.health.usable,
                core.channels,
                core.limits,
                core.config.p_min_pa,
            ):
                core.alarms.step_volumes(cond, t0 + k, core.limits.clear_s, out)
        return [e for e in out if e.level is AlarmLevel.CAUTION]

    assert feed(2.5, 1.0, 1501.0, 120) == []
    cleared = feed(0.5, 0.3, 1621.0, 60)
    assert [e.transition for e in cleared] == [Transition.RETURN_TO_NORMAL]


def _caution_transitions(cab, end, seed):
    """CAUTION (RAISED/RETURN_TO_NORMAL, t_s) of two 10 Hz sensors with 0.02 K noise."""
    rng = np.random.default_rng(seed)
    data = [synth.sensor_data(s, cab, 0, end + 1, rng) for s in PAIR]
    core = MonitorCore(synth.config_for(PAIR, cab.volume_m3, rate_hz=1.0))
    events = synth.run(core, data, 1.0, 0.0, end)
    return [(e.transition, e.t_s) for e in events if e.level is AlarmLevel.CAUTION]


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_leak_caution_does_not_chatter_while_the_leak_goes_on(seed):
    """Soyuz MS-09's 21 kg/day in 910 m3: in the first minutes the best window is
    short and noisy (the temperature channel's noise dominates) while the longer
    windows still hold the time before the leak.  The CAUTION, once raised, must
    not report a return to normal on a noisy reading: it clears only when the
    estimate is below the limit with the hysteresis, by two standard errors."""
    cab = synth.Cabin(volume_m3=910.0, leak="mass", mdot_kg_day=21.0, t_leak_s=900.0)
    tr = _caution_transitions(cab, 900.0 + 1500.0, seed)
    assert tr and tr[0][0] is Transition.RAISED, tr
    assert tr[0][1] - 900.0 < 600.0, tr
    assert [x for x in tr if x[0] is Transition.RETURN_TO_NORMAL] == [], tr


@pytest.mark.slow
def test_leak_caution_returns_to_normal_after_the_leak_is_sealed():
    cab = synth.Cabin(
        volume_m3=910.0, leak="mass", mdot_kg_day=21.0, t_leak_s=900.0, t_stop_s=900.0 + 1800.0
    )
    tr = _caution_transitions(cab, 900.0 + 1800.0 + 2400.0, 4)
    assert [x[0] for x in tr] == [Transition.RAISED, Transition.RETURN_TO_NORMAL], tr
    assert tr[1][1] > 2700.0, tr


def _emergency_latency(cab, sensors, drop_sigma=6.0, faults=None, end=None, seed=3):
    """Onset (s) to the first EMERGENCY on a 1 Hz loop, or inf; and the events."""
    end = end if end is not None else ONSET + 30.0
    rng = np.random.default_rng(seed)
    data = [synth.sensor_data(s, cab, 0, end + 1, rng) for s in sensors]
    if faults:
        faults(data)
    cfg = synth.config_for(sensors, cab.volume_m3, rate_hz=1.0)
    lim = {
        k: dataclasses.replace(v, emergency_drop_sigma=drop_sigma)
        for k, v in cfg.limit_sets.items()
    }
    core = MonitorCore(dataclasses.replace(cfg, limit_sets=lim))
    events = synth.run(core, data, 1.0, 0.0, end)
    t = [
        e.t_s
        for e in events
        if e.level is AlarmLevel.EMERGENCY and e.transition is Transition.RAISED
    ]
    return (t[0] - cab.t_leak_s if t else np.inf), events


@pytest.mark.parametrize(
    "hole_mm, within_s", [(25.0, 2.0), pytest.param(5.0, 3.0, marks=pytest.mark.slow)]
)
def test_sudden_drop_seen_by_two_sensors_raises_emergency_at_the_first_samples(hole_mm, within_s):
    """A hole in 6 m3 read by two 1 Hz sensors: the fitted slopes need about eight
    samples (6-8 s); two sensors that each read a drop far beyond their noise raise
    EMERGENCY at their first or second sample after onset (the 5 mm hole falls
    ~40 Pa/s: its first sample may be within the 16 Pa the test allows)."""
    pair = [dataclasses.replace(s, rate_hz=1.0) for s in PAIR]
    fast, _ = _emergency_latency(_hole(hole_mm=hole_mm), pair)
    slow, _ = _emergency_latency(_hole(hole_mm=hole_mm), pair, drop_sigma=0.0)
    assert fast <= within_s, (fast, slow)
    assert slow >= fast + 3.0, (fast, slow)


@pytest.mark.slow
def test_one_sensor_stepping_down_never_raises_the_sudden_drop_emergency():
    """A single sensor's 500 Pa step (an offset fault) in a quiet pair raises no
    EMERGENCY.  With that sensor alone in its volume the fitted-slope rule trusts
    it (7 s later, as before); the sudden-drop test, which needs two, adds nothing."""
    cab = synth.Cabin(volume_m3=6.0, t_leak_s=ONSET)
    pair = [dataclasses.replace(s, rate_hz=1.0) for s in PAIR]

    def step(data):
        d = data[0]
        d.pressure_pa[d.t_host >= ONSET] -= 500.0

    lat, events = _emergency_latency(cab, pair, faults=step, end=ONSET + 120.0)
    assert lat == np.inf, [e for e in events if e.level is AlarmLevel.EMERGENCY]
    alone = [
        _emergency_latency(cab, pair[:1], drop_sigma=d, faults=step, end=ONSET + 120.0)[0]
        for d in (6.0, 0.0)
    ]
    assert alone[0] == alone[1] > 3.0, alone


@pytest.mark.slow
def test_learnt_noise_is_the_sensors_white_noise():
    """The per-sample noise the sudden-drop test scales by, learnt from the spike
    filter's register: within 10 % of the 2 Pa the sensors were given."""
    cab = synth.Cabin(volume_m3=6.0, t_leak_s=1e9)
    pair = [dataclasses.replace(s, rate_hz=1.0) for s in PAIR]
    rng = np.random.default_rng(4)
    data = [synth.sensor_data(s, cab, 0, 1201, rng) for s in pair]
    core = MonitorCore(synth.config_for(pair, 6.0, rate_hz=1.0))
    synth.run(core, data, 1.0, 0.0, 1200.0)
    assert np.sqrt(core.health.noise_var) == pytest.approx([2.0, 2.0], rel=0.1)
