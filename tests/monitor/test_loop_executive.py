"""The fixed-rate executive, batch replay equal to live, captures and `cabinwatch analyze`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from drivers.encode import encode_samples
from firmware_host.cli import main
from firmware_host.clock import SimClock, WallClock
from firmware_host.core import MonitorCore
from firmware_host.loop import (
    NS,
    RateLoop,
    RecordedSource,
    capture_arrivals,
    decode_capture,
    run_batch,
)
from harness import synth


class _Recorder:
    def __init__(self):
        self.results = []

    def __call__(self, r):
        self.results.append(r)


def _digest(results):
    """Everything a tick decided: time, samples, events, every volume and sensor estimate."""
    out = []
    for r in results:
        out.append(repr((r.t_s, r.n_samples, r.events, r.volumes, r.sensors)))  # NaN-safe
    return out


def _leak_data(end=40.0, seed=1):
    cab = synth.Cabin(volume_m3=6, leak="orifice", hole_mm=25, t_leak_s=20.0)
    sensors = [synth.SynthSensor(addr=a, rate_hz=10, boot_s=30.0 * a) for a in (1, 2)]
    rng = np.random.default_rng(seed)
    return sensors, [synth.sensor_data(s, cab, 0, end + 1, rng) for s in sensors]


def test_deadlines_are_absolute_no_drift_over_a_million_periods():
    core = MonitorCore(synth.config_for([synth.SynthSensor()], 10, rate_hz=100.0))
    clock = SimClock(start_ns=123)
    loop = RateLoop(core, clock, 100.0, lambda now: [])
    loop.start_ns = 0
    loop.k = 10**6  # a million periods later (days at 100 Hz)
    r = loop.step()
    assert r.t_s == pytest.approx(10**6 / 100.0, abs=1e-9)
    assert loop.deadline_ns(loop.k) == (10**6 + 1) * (NS // 100)


def test_overruns_are_counted_and_deadlines_skipped():
    core = MonitorCore(synth.config_for([synth.SynthSensor()], 10, rate_hz=10.0))
    clock = SimClock()

    def slow_source(now):
        if abs(now - 0.5) < 1e-9:
            clock.advance_ns(int(0.35 * NS))  # this tick takes 350 ms: 3 deadlines missed
        return []

    loop = RateLoop(core, clock, 10.0, slow_source)
    times = []
    loop.on_tick = lambda r: times.append(round(r.t_s, 6))
    h = loop.run(ticks=10)
    assert h.overruns == 3
    assert 0.6 not in times and 0.7 not in times and 0.8 not in times and 0.9 in times
    assert h.worst_tick_s == pytest.approx(0.35)
    assert h.ticks == 10 and h.period_s == 0.1


@pytest.mark.slow
def test_loop_health_is_bounded_and_tracks_recent_lateness():
    """Months of ticks must not grow memory: percentiles cover the last HEALTH_WINDOW
    ticks, the maximum and the counts cover the whole run."""
    from firmware_host.loop import HEALTH_WINDOW

    class LateClock(SimClock):
        overshoot_ns = 0

        def sleep_until_ns(self, deadline_ns):
            super().sleep_until_ns(deadline_ns)
            self.advance_ns(self.overshoot_ns)

    core = MonitorCore(synth.config_for([synth.SynthSensor()], 10, rate_hz=10.0))
    clock = LateClock()
    loop = RateLoop(core, clock, 10.0, lambda now: [])
    clock.overshoot_ns = 20_000_000  # 20 ms late, early on
    loop.run(ticks=100)
    clock.overshoot_ns = 1_000_000  # then 1 ms late for a whole window
    h = loop.run(ticks=HEALTH_WINDOW)
    assert h.ticks == HEALTH_WINDOW + 100
    assert h.lateness_p99_s == pytest.approx(0.001)
    assert h.lateness_max_s == pytest.approx(0.020)
    assert loop._late_recent.shape == (HEALTH_WINDOW,)


@pytest.mark.slow
def test_batch_replay_equals_live_wall_clock_run_tick_for_tick():
    """The same records, released by arrival time: paced by the wall clock, or replayed
    on a simulated clock as fast as possible.  Every tick decides the same."""
    sensors, data = _leak_data(end=30.0)
    cfg = synth.config_for(sensors, 6, rate_hz=50.0)
    period = NS // 50
    clock = WallClock()
    start_ns = (clock.now_ns() // period + 2) * period
    shift = start_ns / NS - 17.0  # the hole opens 3 s into the run
    streams = {k: (r, a + shift) for k, (r, a) in synth.streams(data).items()}
    live, rl = MonitorCore(cfg), _Recorder()
    loop = RateLoop(live, clock, 50.0, RecordedSource(streams), on_tick=rl)
    loop.start_ns = start_ns
    health = loop.run(ticks=250)
    batch, rb = MonitorCore(cfg), _Recorder()
    if health.overruns == 0:
        bl = RateLoop(batch, SimClock(start_ns), 50.0, RecordedSource(streams), on_tick=rb)
        bl.start_ns = start_ns
        bl.run(ticks=250)
    else:  # a busy machine made the live loop slip: replay the same tick times
        src = RecordedSource(streams)
        for r in rl.results:
            for b in src(r.t_s):
                batch.ingest(b.link, b.records, b.host_time_s)
            rb(batch.tick(r.t_s))
    assert len(rl.results) == len(rb.results) == 250
    assert _digest(rl.results) == _digest(rb.results)
    # and the run was not trivial: the hole opened and the pressure fell
    assert rb.results[-1].sensors[0].pressure_pa < rb.results[100].sensors[0].pressure_pa - 200


def test_capture_bytes_through_the_decoder_give_the_same_results():
    sensors, data = _leak_data(end=40.0)
    rec, arr = synth.streams(data)["bus0"]
    wire = encode_samples(
        rec["addr"],
        rec["seq"],
        rec["t_us"],
        rec["pressure_pa"],
        rec["temperature_c"],
        rec["status"],
    ).tobytes()
    decoded = decode_capture(wire)
    for f in ("addr", "t_us", "pressure_pa", "temperature_c", "status"):
        np.testing.assert_array_equal(decoded[f], rec[f])
    cfg = synth.config_for(sensors, 6, rate_hz=10.0)
    a, ra = MonitorCore(cfg), _Recorder()
    b, rb = MonitorCore(cfg), _Recorder()
    run_batch(a, RecordedSource({"bus0": (rec, arr)}), 10.0, start_s=0.0, on_tick=ra)
    run_batch(b, RecordedSource({"bus0": (decoded, arr)}), 10.0, start_s=0.0, on_tick=rb)
    assert _digest(ra.results) == _digest(rb.results)


def test_capture_arrivals_put_sensor_clocks_on_one_timeline():
    rec = np.zeros(6, dtype=decode_capture(b"").dtype)
    rec["addr"] = [1, 2, 1, 2, 1, 2]
    rec["t_us"] = [1_000_000, 50_000_000, 2_000_000, 51_000_000, 100_000, 52_000_000]  # 1 reboots
    arr = capture_arrivals(rec)
    np.testing.assert_allclose(arr, [1.0, 1.0, 2.0, 2.0, 2.0, 3.0])


def _write_capture(tmp_path):
    sensors, data = _leak_data(end=40.0)
    rec, _ = synth.streams(data)["bus0"]
    wire = encode_samples(
        rec["addr"],
        rec["seq"],
        rec["t_us"],
        rec["pressure_pa"],
        rec["temperature_c"],
        rec["status"],
    ).tobytes()
    path = tmp_path / "cap.bin"
    path.write_bytes(b"\x00garbage" + wire)
    return path


def test_analyze_prints_events_and_summary(tmp_path, capsys):
    path = _write_capture(tmp_path)
    assert main(["analyze", str(path), "--volume-m3", "6"]) == 0
    out, err = capsys.readouterr()
    lines = [json.loads(x) for x in out.splitlines()]
    events, summary = lines[:-1], lines[-1]["summary"]
    assert "no --config" in err
    assert any(e["level"] == "EMERGENCY" and e["transition"] == "RAISED" for e in events)
    assert all(e["replayed"] for e in events)
    assert summary["samples"] == 820 and len(summary["volumes"]) == 2


def test_analyze_with_config_and_errors(tmp_path, capsys):
    path = _write_capture(tmp_path)
    cfg = tmp_path / "m.toml"
    cfg.write_text(
        '[[volumes]]\nname = "om"\nvolume_m3 = 6.0\n'
        '[[sensors]]\nlink = "bus0"\naddr = 1\nvolume = "om"\n'
        '[[sensors]]\nlink = "bus0"\naddr = 2\nvolume = "om"\n'
    )
    assert main(["analyze", str(path), "--config", str(cfg)]) == 0
    out, err = capsys.readouterr()
    assert "no --config" not in err
    em = [json.loads(x) for x in out.splitlines()[:-1]]
    assert any(e["source"] == "om" and e["kind"] == "RAPID_DEPRESS" for e in em)
    assert main(["analyze", str(tmp_path / "missing.bin")]) == 2
    assert "missing.bin" in capsys.readouterr().err
    cfg.write_text("[[volumes]]\nname = 3\nvolume_m3 = 6.0\n")
    assert main(["analyze", str(path), "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "volumes[0].name" in err


def test_loop_rate_must_match_the_core():
    """Windows are counted in ticks of the configured rate: another loop rate is refused."""
    core = MonitorCore(synth.config_for([synth.SynthSensor()], 10, rate_hz=10.0))
    with pytest.raises(ValueError, match="configured"):
        RateLoop(core, SimClock(), 5.0, lambda now: [])
