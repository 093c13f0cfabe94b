"""The scorecard's baselines, floor formula and grid scenarios (bench/, issue 6): fast checks."""

import math

import numpy as np
import pytest

from bench.baselines import (
    SampleBuffer,
    SlopePanel,
    StepPanel,
    floor_time_s,
    slope_threshold_pa_s,
    step_for_noise,
)
from bench.scenario_grid import (
    Cell,
    big_hole_cell,
    build,
    dpdt_pa_s,
    orifice_diameter_mm,
    orifice_mass_rate,
)
from drivers.encode import encode_samples
from firmware_host.config import Limits


def frames(addr: int, t_s: np.ndarray, p_pa: np.ndarray) -> bytes:
    n = len(t_s)
    return encode_samples(
        addr, np.arange(n), (t_s * 1e6).astype(np.uint64), p_pa, np.full(n, 22.0)
    ).tobytes()


def feed_per_second(panel, addr, t_s, p_pa, rate_hz):
    """Hand the bytes over one simulated second at a time, stamped at the end of it."""
    per = int(round(rate_hz))
    for i in range(0, len(t_s), per):
        panel.feed("bus0", frames(addr, t_s[i : i + per], p_pa[i : i + per]), t_s[i + per - 1])


# --- the floor (PHYSICS.md, "What limits detection") -------------------------


def test_floor_formula():
    k, noise, f, s = 5.0, 2.0, 1.0, 0.01
    assert floor_time_s(k, noise, 1, f, s) == pytest.approx(
        (12 * k**2 * noise**2 / (f * s**2)) ** (1 / 3)
    )
    # M sensors divide sigma by sqrt(M): T scales as M^(-1/3); T scales as s^(-2/3), f^(-1/3)
    assert floor_time_s(k, noise, 8, f, s) == pytest.approx(floor_time_s(k, noise, 1, f, s) / 2)
    assert floor_time_s(k, noise, 1, f, 8 * s) == pytest.approx(floor_time_s(k, noise, 1, f, s) / 4)
    assert floor_time_s(k, noise, 1, 8 * f, s) == pytest.approx(floor_time_s(k, noise, 1, f, s) / 2)
    assert floor_time_s(k, noise, 1, f, 0.0) == math.inf
    # at T the slope's standard error sigma sqrt(12 / (f T^3)) is s / k
    t = floor_time_s(k, noise, 2, f, s)
    assert noise / math.sqrt(2) * math.sqrt(12 / (f * t**3)) == pytest.approx(s / k)


def test_caution_sigma_is_what_the_floor_uses():
    assert Limits().caution_sigma == 5.0


def test_orifice_law_and_physics_examples():
    # PHYSICS.md: a 2 mm hole passes 39-55 kg/day for Cd 0.6-0.85; about 0.045 Pa/s in 916 m3
    kg = orifice_mass_rate(2.0, cd=0.6) * 86400
    assert 38 < kg < 41
    assert dpdt_pa_s(kg, 916) == pytest.approx(0.045, rel=0.1)  # "about"
    assert dpdt_pa_s(1.0, 916) == pytest.approx(0.0011, abs=0.0001)  # 1 kg/day
    for kg_day in (0.1, 3.0, 40.0, 5000.0):
        d = orifice_diameter_mm(kg_day)
        assert orifice_mass_rate(d) * 86400 == pytest.approx(kg_day, rel=1e-12)


# --- the panels ---------------------------------------------------------------


def test_step_panel_quiet_on_white_noise_fires_on_a_step():
    rng = np.random.default_rng(1)
    noise = 2.0
    step = StepPanel(step_for_noise(noise))
    assert step.step_pa == pytest.approx(6 * math.sqrt(2) * 2.0)
    t = np.arange(1, 20001) / 10.0
    p = 101325.0 + rng.normal(0, noise, t.size)
    p[15000:] -= 40.0  # one 40 Pa step at t = 1500.1 s
    feed_per_second(step, 1, t, p, 10)
    assert step.alarms == [(pytest.approx(1501.0), "bus0:1")]


def test_slope_panel_threshold_and_detection():
    thr = slope_threshold_pa_s(5.0, 6.0)  # the monitor's CAUTION mass rate in 6 m3
    assert thr == pytest.approx(5 / 86400 * 287.05 * 295.15 / 6)
    rng = np.random.default_rng(2)
    panel = SlopePanel(thr, window_s=60.0)
    t = np.arange(1, 1201, dtype=float)
    p = 101325.0 + rng.normal(0, 2.0, t.size)
    p[600:] -= 2.0 * thr * (t[600:] - 600.0)  # twice the threshold from t = 600 s
    feed_per_second(panel, 1, t, p, 1)
    assert len(panel.alarms) == 1
    t_alarm = panel.alarms[0][0]
    assert 600 < t_alarm < 660  # half a window of the doubled slope, give or take


def test_slope_panel_has_no_temperature_compensation():
    # a 1 K orbital swing in 900 m3 moves raw pressure ~340 Pa: the panel alarms on it
    thr = slope_threshold_pa_s(5.0, 900.0)
    panel = SlopePanel(thr)
    t = np.arange(1, 6001, dtype=float)
    p = 101325.0 + 343.0 * np.sin(2 * np.pi * t / 5520.0)
    feed_per_second(panel, 1, t, p, 1)
    assert panel.alarms, "a raw-pressure slope panel cannot tell heat from a leak"


def test_slope_panel_restarts_its_window_when_the_clock_goes_back():
    panel = SlopePanel(0.5, window_s=60.0)
    t = np.arange(1, 121, dtype=float)
    feed_per_second(panel, 1, t, np.full(t.size, 101325.0), 1)
    # a reboot: the sensor's clock starts again from 1 s, the pressure is 1 kPa lower
    t2 = np.arange(1, 31, dtype=float)
    for i in range(len(t2)):
        panel.feed("bus0", frames(1, t2[i : i + 1], np.full(1, 100325.0)), 121.0 + i)
    assert panel.alarms == []  # no slope across the restart (and none until a full window)


class _ScalarReference:
    """The panels' rules sample by sample (how they were first written): the
    oracle the vectorized panels are checked against."""

    def __init__(self, step_pa, slope_thr, window_s=60.0, clear_s=30.0):
        self.step_pa, self.thr, self.w, self.clear = step_pa, slope_thr, window_s, clear_s
        self.last, self.win, self.p_ref, self.last_t = {}, {}, {}, {}
        self.state = {"step": ({}, set(), []), "slope": ({}, set(), [])}

    def _latch(self, which, key, cond, t):
        last_true, active, alarms = self.state[which]
        if cond:
            if key not in active:
                active.add(key)
                alarms.append((t, key))
            last_true[key] = t
        elif key in active and t - last_true[key] >= self.clear:
            active.discard(key)

    def sample(self, sid, t, p, now):
        prev = self.last.get(sid)
        self.last[sid] = p
        if prev is not None:
            self._latch("step", sid, abs(p - prev) > self.step_pa, now)
        q = self.win.get(sid)
        if q is None or t <= self.last_t.get(sid, -math.inf):
            q = self.win[sid] = []
            self.p_ref.setdefault(sid, p)
        self.last_t[sid] = t
        q.append((t, p - self.p_ref[sid]))
        while q[0][0] < t - self.w - 0.5e-6:  # (ties in the window, whatever the rounding)
            q.pop(0)
        if t - q[0][0] < 0.98 * self.w or len(q) < 3:
            return
        x = np.array([a for a, _ in q]) - q[0][0]
        y = np.array([b for _, b in q])
        n = len(q)
        den = n * np.sum(x * x) - np.sum(x) ** 2
        if den > 0:
            s = (n * np.sum(x * y) - np.sum(x) * np.sum(y)) / den
            self._latch("slope", sid, s < -self.thr, now)


@pytest.mark.parametrize("seed,whole_seconds", [(0, False), (1, False), (2, True), (3, True)])
def test_vectorized_panels_raise_what_the_sample_by_sample_rules_raise(
    seed, whole_seconds, monkeypatch
):
    """Two sensors interleaved on one link, batches of 1-25 samples, rounds of 64
    samples: falls that start and stop, one at the threshold (the slope's
    condition flickering), spikes 10-60 s apart (the latch raising, clearing
    after 30 s or not, raising again), a gap and a clock restart; sample times
    jittered, or whole seconds (windows that end exactly on a sample); every
    alarm the same."""
    monkeypatch.setattr(SampleBuffer, "CHUNK", 64)
    rng = np.random.default_rng(seed)
    step_pa, thr = 20.0, 0.05
    step, slope = StepPanel(step_pa), SlopePanel(thr)
    ref = _ScalarReference(step_pa, thr)
    streams = {}
    for addr in (1, 2):
        if whole_seconds:
            t = np.arange(3000, dtype=float) + addr
        else:
            t = np.cumsum(rng.uniform(0.3, 1.7, 3000)) + rng.uniform(0, 5)
        t[1500:] += 400.0  # a gap of 400 s
        t[2200:] -= t[2200] - 3.0  # a reboot: the clock starts again
        p = 101325.0 + rng.normal(0, 0.5, t.size)
        for a, b in ((300, 700), (1000, 1200), (1600, 1650), (2500, 2900)):
            p[a:b] -= rng.uniform(0.03, 0.2) * (np.arange(b - a) * 1.0)  # falls
            p[b:] += rng.normal(0, 1.0)
        p[1700:2100] -= thr * (t[1700:2100] - t[1700])  # at the threshold
        p[1700 + 400 :] -= thr * (t[2099] - t[1700])
        spikes = np.cumsum(rng.integers(10, 61, 40)) + 50
        p[spikes[spikes < t.size]] += 50.0
        streams[addr] = (t, p)
    # one stream of frames, the two sensors interleaved, in batches
    recs = []
    for addr, (t, p) in streams.items():
        recs += [(i, addr, ti, pi) for i, (ti, pi) in enumerate(zip(t, p, strict=True))]
    recs.sort(key=lambda r: (r[0], r[1]))
    now = 0.0
    i = 0
    while i < len(recs):
        k = int(rng.integers(1, 26))
        batch = recs[i : i + k]
        i += k
        now += 0.5 * k  # two sensors at about 1 Hz
        for pnl in (step, slope):
            pnl.feed(
                "bus0",
                b"".join(frames(a, np.array([ti]), np.array([pi])) for _, a, ti, pi in batch),
                now,
            )
        for _, addr, ti, pi in batch:
            # what the frame carries: t in whole us, p as float32
            ref.sample(f"bus0:{addr}", round(ti * 1e6) * 1e-6, float(np.float32(pi)), now)
    # (in time order; alarms of one arrival may come in another sensor order)
    assert step.alarms == sorted(ref.state["step"][2])
    assert slope.alarms == sorted(ref.state["slope"][2])
    assert len(step.alarms) >= 20 and len(slope.alarms) >= 8  # (the test tests something)


# --- grid scenarios -------------------------------------------------------------


def test_grid_scenarios_parse_with_the_leak_sized_by_mass_rate():
    sc = build(Cell(900, "orifice", 40.0, n_sensors=3, thermal_k=0.8), 3600)
    (leak,) = sc.leaks
    assert orifice_mass_rate(leak.diameter_mm) * 86400 == pytest.approx(40.0)
    assert len(sc.sensors) == 3 and {s.link for s in sc.sensors} == {"bus0"}
    assert sc.volumes[0].thermal.orbit_amplitude_k == 0.8
    crack = build(Cell(6, "crack", 2.0), 3600).leaks[0]
    assert crack.k_kg_s_pa2 * 101325.0**2 * 86400 == pytest.approx(2.0)
    big = big_hole_cell(6)
    assert build(big, 3600).leaks[0].diameter_mm == 25.0
    assert big.kg_day == pytest.approx(orifice_mass_rate(25.0) * 86400)


def _fa(name, from_day, days, c, adv=1, step=0, slope=5, loop_hz=1.0):
    return {
        "scenario": name,
        "days": days,
        "from_day": from_day,
        "loop_hz": loop_hz,
        "monitor": {"CAUTION": c, "WARNING": 0, "EMERGENCY": 0},
        "advisories": adv,
        "step panel": step,
        "slope panel": slope,
        "wall_s": 100.0,
    }


def test_false_alarm_segments_that_continue_each_other_are_joined():
    from bench.detection import merge_segments

    fa = [
        _fa("nominal", 15, 15, 1),
        _fa("link-faults", 0, 1, 0),
        _fa("nominal", 0, 15, 0),
        _fa("nominal", 40, 5, 0),
    ]  # a gap: day 30-40 missing, not joined
    out = merge_segments(fa)
    nom = [f for f in out if f["scenario"] == "nominal"]
    assert [(f["from_day"], f["days"]) for f in nom] == [(0, 30), (40, 5)]
    assert nom[0]["monitor"]["CAUTION"] == 1 and nom[0]["segments"] == 2
    assert nom[0]["advisories"] == 2 and nom[0]["slope panel"] == 10 and nom[0]["wall_s"] == 200
    assert out[0]["scenario"] == "nominal" and out[-1]["scenario"] == "link-faults"
    assert fa[2]["days"] == 15  # inputs untouched
