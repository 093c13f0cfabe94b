"""Unit tests of the core's stages through their public functions."""

from __future__ import annotations

import dataclasses
import gc

import numpy as np
import pytest

from common.graph import connected_roots
from firmware_host.alarms import AlarmLevel, AlarmState, Transition
from firmware_host.config import HatchConfig, Limits, MonitorConfig, SensorConfig, VolumeConfig
from firmware_host.core import MonitorCore
from firmware_host.stages import alarm_rules
from firmware_host.stages.alarm_book import AlarmBook, SensorAlarmKey, VolumeAlarmKey
from firmware_host.stages.alarm_rules import VolumeConditions, VolumeFamily
from firmware_host.stages.health import FAULT_KINDS, FaultKind, HealthState, column
from firmware_host.stages.topology import Channels, HatchGroups
from firmware_host.stages.windows import estimation_period_s
from harness import synth


def _config(hatch_open=True) -> MonitorConfig:
    return MonitorConfig(
        volumes=(VolumeConfig("a", 10.0), VolumeConfig("b", 20.0), VolumeConfig("c", 30.0)),
        sensors=(
            SensorConfig("bus0", 1, "a", 1.0),
            SensorConfig("bus0", 2, "a", 1.0),
            SensorConfig("bus1", 1, "b", 1.0),
            SensorConfig("bus1", 2, "c", 1.0),
        ),
        hatches=(HatchConfig("ab", "a", "b", hatch_open), HatchConfig("bc", "b", "c", False)),
        rate_hz=1.0,
    )


def test_connected_roots_joins_chains_and_leaves_isolated_nodes_alone():
    roots = connected_roots(5, [(0, 1), (1, 2), (3, 3)])
    assert roots[0] == roots[1] == roots[2]
    assert len({roots[0], roots[3], roots[4]}) == 3
    assert connected_roots(3, []).tolist() == [0, 1, 2]


def test_channels_map_addresses_and_volumes():
    ch = Channels(_config())
    assert ch.volume_of.tolist() == [0, 0, 1, 2]
    assert ch.address_map["bus1"][2] == 3 and ch.address_map["bus0"][7] == -1
    assert ch.member.sum(axis=1).tolist() == [2.0, 1.0, 1.0]
    assert ch.volume_table[0].tolist() == [0, 1]
    assert ch.volume_table[1].tolist() == [2, -1]


def test_hatch_groups_follow_the_hatches_and_settle():
    cfg = _config()
    groups = HatchGroups(cfg, Channels(cfg))
    assert groups.group_m3.tolist() == [30.0, 30.0, 30.0]
    assert groups.members[0] == ("a", "b") and groups.members[2] == ("c",)
    assert groups.settled(0.0).all()
    groups.set_hatch("bc", True, 100.0)
    assert groups.group_m3.tolist() == [60.0, 60.0, 60.0]
    settle = cfg.estimator.hatch_settle_s
    assert not groups.settled(100.0 + settle - 1.0).any()
    assert groups.settled(100.0 + settle).all()
    assert groups.settled_from_channel.tolist() == [100.0 + settle] * 4
    with pytest.raises(KeyError):
        groups.set_hatch("nope", True, 0.0)


def test_fault_columns_and_health_codes_are_explicit():
    assert [column(k) for k in FAULT_KINDS] == list(range(len(FAULT_KINDS)))
    assert column(FaultKind.STALE) == 0 and column(FaultKind.NOISY) == 7
    assert [int(s) for s in HealthState] == [0, 1, 2, 3]
    assert HealthState(2) is HealthState.FAULTED


def test_voted_needs_all_of_one_and_two_of_more():
    ch = Channels(_config())
    usable = np.ones(4, dtype=bool)
    n_h = usable.astype(float) @ ch.member.T
    one_vote_in_a = np.array([True, False, True, False])
    assert alarm_rules.voted(one_vote_in_a, usable, ch, n_h).tolist() == [False, True, False]
    assert alarm_rules.voted(np.ones(4, dtype=bool), usable, ch, n_h).tolist() == [True] * 3
    # a volume without a healthy sensor never votes
    usable[3] = False
    n_h = usable.astype(float) @ ch.member.T
    assert not alarm_rules.voted(np.ones(4, dtype=bool), usable, ch, n_h)[2]


def test_alarm_book_raises_acknowledges_clears_and_forgets_by_typed_key():
    book = AlarmBook(["a", "b"], ["bus0:1"], replay=False)
    on = np.array([True, False])
    off = np.array([False, False])
    value = np.array([5.0, 0.0])

    def step(raise_, clear, t):
        out = []
        c = VolumeConditions(VolumeFamily.LEAK, raise_, clear, value, 2.0, 10.0)
        book.step_volumes(c, t, 30.0, out)
        return out

    assert step(on, off, 0.0) == []  # persistence 10 s
    assert book.family_live(VolumeFamily.LEAK)
    (ev,) = step(on, off, 10.0)
    assert ev.transition is Transition.RAISED and ev.level is AlarmLevel.CAUTION
    assert ev.key == "a:LEAK" and ev.message == "CAUTION LEAK a: leak 5 kg/day, limit 2 kg/day"
    assert [a.key for a in book.active()] == ["a:LEAK"]
    (ack,) = book.acknowledge("a:LEAK", 11.0)
    assert ack.transition is Transition.ACKNOWLEDGED
    assert book.active()[0].state is AlarmState.ACTIVE_ACK
    clear = np.array([True, True])
    step(off, clear, 20.0)
    (rtn,) = step(off, clear, 50.0)
    assert rtn.transition is Transition.RETURN_TO_NORMAL
    assert book.active() == [] and not book.family_live(VolumeFamily.LEAK)
    assert VolumeAlarmKey(VolumeFamily.LEAK, 0) == VolumeAlarmKey(VolumeFamily.LEAK, 0)
    assert SensorAlarmKey(1, 2) != SensorAlarmKey(1, 3)


def test_sensor_advisories_carry_the_stale_age_and_limit():
    book = AlarmBook(["a"], ["bus0:1", "bus0:2"], replay=True)
    active = np.zeros((2, len(FAULT_KINDS)), dtype=bool)
    active[1, column(FaultKind.STALE)] = True
    values = np.zeros((2, len(FAULT_KINDS)))
    values[1, column(FaultKind.STALE)] = 7.5
    out = []
    book.step_sensors(5.0, active, values, lambda: np.array([3.0, 4.0]), 20, 0.0, 30.0, out)
    (ev,) = out
    assert ev.key == "bus0:2:SENSOR_STALE" and ev.replayed
    assert (ev.value, ev.limit, ev.unit) == (7.5, 4.0, "s")


def test_onset_and_volume_rules_are_pure():
    """The same inputs give the same conditions, and nothing in the core changes."""
    cab = synth.Cabin(volume_m3=50, leak="mass", mdot_kg_day=80.0, t_leak_s=100.0)
    sensors = [synth.SynthSensor(addr=a, rate_hz=1.0) for a in (1, 2)]
    rng = np.random.default_rng(3)
    data = [synth.sensor_data(s, cab, 0, 700, rng) for s in sensors]
    core = MonitorCore(synth.config_for(sensors, 50, rate_hz=1.0))
    synth.run(core, data, 1.0, 0.0, 700.0)
    fit = core.last_result.volume_fit
    args = (fit, fit.pressure_pa[core.channels.volume_of], np.ones(1, dtype=bool))
    rest = (core.health.usable, core.channels, Limits(), core.config.p_min_pa)
    first = alarm_rules.volume_conditions(*args, *rest)
    second = alarm_rules.volume_conditions(*args, *rest)
    assert [c.family for c in first] == [
        VolumeFamily.LEAK,
        VolumeFamily.LOW_RESERVE,
        VolumeFamily.RESERVE_CRITICAL,
    ]
    assert first[0].raise_.tolist() == [True]  # 80 kg/day in 50 m3 is a leak
    for a, b in zip(first, second, strict=True):
        assert np.array_equal(a.raise_, b.raise_) and np.array_equal(a.clear, b.clear)


def test_tick_result_holds_data_and_says_when_its_estimates_were_computed():
    cab = synth.Cabin(volume_m3=50, leak="none")
    sensors = [synth.SynthSensor(addr=1, rate_hz=10.0)]
    rng = np.random.default_rng(1)
    data = [synth.sensor_data(s, cab, 0, 30, rng) for s in sensors]
    cfg = synth.config_for(sensors, 50, rate_hz=10.0)
    core = MonitorCore(cfg)
    results = []
    synth.run(core, data, 10.0, 0.0, 20.0, on_tick=results.append)
    # a quiet cabin: the estimates are at most one quiet period old
    quiet = core.quiet_period_s
    assert quiet == cfg.estimator.quiet_period_s > cfg.estimator.slow_period_s
    for r in results[-15:]:
        assert r.estimates_t_s <= r.t_s < r.estimates_t_s + quiet + 1e-9
    # nothing reachable from a result is the core (a result may outlive it)
    seen, todo = set(), [results[-1]]
    while todo:
        obj = todo.pop()
        if id(obj) in seen or isinstance(obj, (np.ndarray, str, float, int)):
            continue
        seen.add(id(obj))
        assert not isinstance(obj, MonitorCore)
        todo.extend(gc.get_referents(obj))
    assert results[-1].volume("cabin").n_healthy_sensors == 1


def test_estimation_runs_once_per_sample_of_the_fastest_sensor():
    """Two 0.2 Hz barometers on a 1 Hz loop: the full estimation runs every 5 s; a
    1 Hz partner brings it back to 1 s."""
    slow = [synth.SynthSensor(addr=a, rate_hz=0.2, noise_pa=2.0) for a in (1, 2)]
    assert estimation_period_s(synth.config_for(slow, 50, rate_hz=1.0)) == 5.0
    mixed = [slow[0], synth.SynthSensor(addr=3, rate_hz=1.0)]
    assert estimation_period_s(synth.config_for(mixed, 50, rate_hz=1.0)) == 1.0
    assert estimation_period_s(synth.config_for(mixed, 50, rate_hz=0.5)) == 2.0
    cab = synth.Cabin(volume_m3=50, leak="mass", mdot_kg_day=100.0, t_leak_s=600.0)
    rng = np.random.default_rng(2)
    data = [synth.sensor_data(s, cab, 0, 1800, rng) for s in slow]
    cfg = synth.config_for(slow, 50, rate_hz=1.0)
    cfg = dataclasses.replace(cfg, estimator=dataclasses.replace(cfg.estimator, quiet_period_s=0))
    core = MonitorCore(cfg)
    results = []
    synth.run(core, data, 1.0, 0.0, 1800.0, on_tick=results.append)
    stamps = sorted({r.estimates_t_s for r in results[10:]})
    assert set(np.diff(stamps)) == {5.0}
    assert all(r.estimates_t_s <= r.t_s < r.estimates_t_s + 5.0 for r in results[10:])


def test_slow_barometers_get_a_pressure_now_and_a_leak_estimate():
    """Two 0.2 Hz barometers: the 10-s window holds at most two samples and has no
    fit, so the pressure now comes from the next window; 10 kg/day in 50 m3 is
    estimated within 2 % and raises CAUTION within 5 minutes."""
    slow = [synth.SynthSensor(addr=a, rate_hz=0.2, noise_pa=2.0, temp_noise_k=0.02) for a in (1, 2)]
    cab = synth.Cabin(volume_m3=50, leak="mass", mdot_kg_day=10.0, t_leak_s=600.0)
    rng = np.random.default_rng(2)
    data = [synth.sensor_data(s, cab, 0, 2400, rng) for s in slow]
    core = MonitorCore(synth.config_for(slow, 50, rate_hz=1.0))
    last = {}
    events = synth.run(core, data, 1.0, 0.0, 2400.0, on_tick=lambda r: last.update(r=r))
    v = last["r"].volume("cabin")
    assert v.pressure_pa == pytest.approx(float(cab.pressure(np.array([2400.0]))[0]), abs=20.0)
    assert v.mass_rate_kg_day == pytest.approx(10.0, rel=0.02)
    caution = [e for e in events if e.level is AlarmLevel.CAUTION]
    assert caution and caution[0].t_s - 600.0 < 300.0


def _quiet_run(cab, end_s, *, quiet_period_s=10.0, hatch=None):
    """Two 1 Hz sensors on a 1 Hz loop: each tick's result, and the core."""
    sensors = [synth.SynthSensor(addr=a, rate_hz=1.0, noise_pa=2.0) for a in (1, 2)]
    rng = np.random.default_rng(7)
    data = [synth.sensor_data(s, cab, 0, end_s + 1, rng) for s in sensors]
    cfg = synth.config_for(sensors, cab.volume_m3, rate_hz=1.0)
    cfg = dataclasses.replace(
        cfg, estimator=dataclasses.replace(cfg.estimator, quiet_period_s=quiet_period_s)
    )
    core = MonitorCore(cfg)
    results = []
    synth.run(core, data, 1.0, 0.0, end_s, on_tick=results.append)
    return results, core


def _estimation_times(results, t0, t1):
    return sorted({r.estimates_t_s for r in results if t0 <= r.t_s <= t1})


def test_a_quiet_cabin_is_estimated_every_quiet_period_and_a_leak_every_second():
    """No leak: after the start-up mostly every tenth second (every second for a
    while where noise takes an estimate near half the CAUTION limit); from a
    200 kg/day leak's onset in 50 m3 on, every second."""
    onset = 1200.0
    cab = synth.Cabin(volume_m3=50, leak="mass", mdot_kg_day=200.0, t_leak_s=onset)
    results, core = _quiet_run(cab, onset + 300)
    assert core.quiet_period_s == 10.0 and core.slow_period_s == 1.0
    quiet = _estimation_times(results, onset - 600, onset - 1)
    steps = np.diff(quiet)
    assert steps.min() >= 1.0 and steps.max() <= 10.0 and np.count_nonzero(steps == 10.0) >= 45
    assert len(quiet) <= 150  # against 600 every second
    busy = _estimation_times(results, onset + 10, onset + 300)
    assert set(np.diff(busy)) == {1.0}
    assert any(e.level is AlarmLevel.CAUTION for r in results for e in r.events)


def test_quiet_period_zero_estimates_every_period():
    cab = synth.Cabin(volume_m3=50, leak="none")
    results, core = _quiet_run(cab, 900.0, quiet_period_s=0.0)
    assert core.quiet_period_s == 1.0
    assert set(np.diff(_estimation_times(results, 0.0, 900.0))) == {1.0}


@pytest.mark.slow
def test_quiet_and_busy_give_the_same_leak_estimate():
    """The slow averages are weighted by the time an estimation covers: a 20 kg/day
    leak in 50 m3 (above CAUTION) reads the same at the end with or without the
    quiet period, and the lag history gives the delayed slope of the same moment."""
    cab = synth.Cabin(volume_m3=50, leak="mass", mdot_kg_day=20.0, t_leak_s=1200.0)
    a, _ = _quiet_run(cab, 3000.0)
    b, _ = _quiet_run(cab, 3000.0, quiet_period_s=0.0)
    va, vb = a[-1].volume("cabin"), b[-1].volume("cabin")
    assert va.mass_rate_kg_day == pytest.approx(vb.mass_rate_kg_day, rel=0.02)
    assert va.mass_rate_kg_day == pytest.approx(20.0, rel=0.15)


def test_the_lag_history_gives_the_fit_a_temperature_lag_old_at_any_cadence():
    """Fits every 10 s, then every second: the delayed slope is that of the fit
    ``lag_s`` (20 s) before, interpolated in time between the two fits around that
    moment where the quiet fits are 10 s apart, or the oldest kept while none is
    that old."""
    cfg = synth.config_for([synth.SynthSensor(addr=1, rate_hz=1.0)], 50, rate_hz=1.0)
    bank = MonitorCore(cfg).windows
    assert bank.lag_s == 20.0 and bank.lag_ticks == 20
    noise = np.full(1, np.nan)
    times = [float(t) for t in range(0, 101, 10)] + [float(t) for t in range(101, 131)]
    got = {}
    for k, t in enumerate(times):
        with np.errstate(invalid="ignore", divide="ignore"):  # as the core runs it
            f = bank.fits(t, noise)
        # mark the entry just recorded by its time: a slope that is its own fit time
        bank._lag_history[k % (bank.lag_ticks + 1), 0] = t
        got[t] = float(f.delayed_slope_pa_s[0, 0])
    # the first 20 s: the first fit; then exactly 20 s before (the marks interpolate
    # to the moment itself); the fit just recorded is marked after it is read
    assert got[10.0] == 0.0 and got[20.0] == 0.0 and got[100.0] == 80.0
    for t in times[2:]:
        if t != 20.0:
            assert got[t] == pytest.approx(t - 20.0), (t, got[t])


def test_a_window_is_aligned_once_its_data_spans_the_window_and_the_lag():
    """``WindowFits.aligned``: a channel's window counts for the delayed estimates
    only once its data began at least the window plus the temperature lag ago (at
    start, and again after a reset such as a reboot); channels count apart."""
    sensors = [synth.SynthSensor(addr=a, rate_hz=1.0) for a in (1, 2)]
    cfg = synth.config_for(sensors, 50, rate_hz=1.0)
    bank = MonitorCore(cfg).windows
    W = bank.windows_s
    noise = np.full(2, np.nan)
    sums = np.zeros((4, 2))

    def push(t, n):
        sums[0] = n
        sums[1] = np.asarray(n) * t
        sums[2] = np.asarray(n) * 101325.0
        sums[3] = np.asarray(n) * 22.0
        bank.push(t, sums)

    for t in range(0, 100):
        push(float(t), [1.0, 1.0 if t >= 30 else 0.0])  # channel 1 starts 30 s later
    with np.errstate(invalid="ignore", divide="ignore"):
        a = bank.fits(99.0, noise).aligned
    assert a.shape == (len(W), 2)
    assert list(a[:, 0]) == list(W + bank.lag_s <= 99.0)
    assert list(a[:, 1]) == list(W + bank.lag_s <= 69.0)
    bank.clear_channels(np.array([True, False]))
    for t in range(100, 140):
        push(float(t), [1.0, 1.0])
    with np.errstate(invalid="ignore", divide="ignore"):
        a = bank.fits(139.0, noise).aligned
    assert list(a[:, 0]) == list(W + bank.lag_s <= 39.0)  # counted again from 100 s
    assert list(a[:, 1]) == list(W + bank.lag_s <= 109.0)


def test_busy_while_a_hatch_settles_or_a_sensor_is_flagged():
    """After a quiet start: a hatch move keeps the core busy for its settling time, a
    conditioner flag (spike, status, reboot) until the next estimation takes it."""
    cab = synth.Cabin(volume_m3=50, leak="none")
    results, core = _quiet_run(cab, 1200.0)
    now = results[-1].t_s
    assert not core.busy(now)
    core.conditioner.flagged = True
    assert core.busy(now)
    core.conditioner.take_fault_flags()
    assert not core.busy(now)
    cfg = _config()
    core2 = MonitorCore(cfg)
    core2._busy_until_s = 0.0  # as after a quiet estimate
    assert not core2.busy(100.0)
    core2.set_hatch("bc", True, 100.0)
    settle = cfg.estimator.hatch_settle_s
    assert core2.busy(100.0 + settle - 0.5) and not core2.busy(100.0 + settle + 0.5)
