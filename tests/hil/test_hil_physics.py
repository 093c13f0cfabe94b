"""HIL physics against closed forms (PHYSICS.md): orifice, crack, equalisation, gas law."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.gas import CHOKE as CHOKE_FACTOR
from common.gas import GAMMA, R_AIR, equivalent_diameter_mm, orifice_mdot
from hil.physics import Network
from hil.scenario import load_scenario, parse_scenario

T0 = 295.15


def scenario(volumes, hatches=(), leaks=(), inflows=(), events=(), max_step="15s"):
    data = {
        "scenario": {"duration": "1d", "max_step": max_step},
        "volumes": list(volumes),
        "hatches": list(hatches),
        "leaks": list(leaks),
        "inflows": list(inflows),
        "events": list(events),
        "sensors": [{"addr": 1, "volume": volumes[0]["name"]}],
    }
    return parse_scenario(data, "test.toml")


def vol(name, v, p=101325.0, t_c=22.0, **kw):
    return {"name": name, "volume_m3": v, "pressure_pa": p, "temperature_c": t_c, **kw}


def pressures(net: Network) -> np.ndarray:
    h = net.history()
    return h[:, 0], h[:, net.columns()["P"]]


def test_choke_factor_matches_physics_md():
    assert CHOKE_FACTOR == pytest.approx(0.5787, abs=1e-4)
    c_star = math.sqrt(GAMMA * R_AIR * T0) * CHOKE_FACTOR
    assert c_star == pytest.approx(199, abs=1)


@pytest.mark.parametrize("max_step", ["0.5s", "15s", "10min"])
def test_orifice_decay_is_the_exponential(max_step):
    # a 25 mm hole in 6 m3: tau = V / (Cd A c*), about 100 s; exact at any step
    sc = scenario(
        [vol("bo", 6.0)],
        leaks=[{"volume": "bo", "kind": "orifice", "diameter_mm": 25.0, "cd": 0.61}],
        max_step=max_step,
    )
    net = Network(sc)
    net.run_until(600.0)
    t, p = pressures(net)
    area = math.pi / 4 * 0.025**2
    tau = 6.0 / (0.61 * area * math.sqrt(GAMMA * R_AIR * T0) * CHOKE_FACTOR)
    assert 90 < tau < 110
    np.testing.assert_allclose(p[:, 0], 101325.0 * np.exp(-t / tau), rtol=1e-9)
    assert abs(net.mass_balance_kg()) < 1e-12 * net.initial_mass_kg


def test_orifice_flow_formula_and_equivalent_diameter():
    mdot = orifice_mdot(0.61, 2.0, 101325.0, T0)
    assert 39 < mdot * 86400 < 45  # PHYSICS.md: 39-55 kg/day for Cd 0.6-0.85
    assert equivalent_diameter_mm(mdot, 101325.0, T0, 0.61) == pytest.approx(2.0)


def test_crack_decay_follows_inverse_pressure_law():
    k = 1.0 / 86400 / 101325.0**2  # 1 kg/day at 101.3 kPa
    sc = scenario(
        [vol("prk", 2.5)],
        leaks=[{"volume": "prk", "kind": "crack", "k_kg_s_pa2": k}],
        max_step="1h",
    )
    net = Network(sc)
    net.run_until(3 * 86400.0)
    t, p = pressures(net)
    k_prime = k * R_AIR * T0 / 2.5
    np.testing.assert_allclose(1 / p[:, 0] - 1 / 101325.0, k_prime * t, rtol=1e-9, atol=1e-15)
    # and it is not an exponential: the decay slows more than one would
    assert p[-1, 0] > 101325.0 * math.exp(-k_prime * 101325.0 * t[-1])


def test_hatch_equalisation_conserves_mass_and_is_stable():
    sc = scenario(
        [vol("a", 6.0, p=60000.0), vol("b", 900.0, p=101325.0)],
        hatches=[{"name": "h", "a": "a", "b": "b", "open": False}],
        events=[{"t": 100.0, "kind": "hatch", "hatch": "h", "open": True}],
        max_step="1h",
    )
    net = Network(sc)
    m0 = net.total_mass_kg()
    net.run_until(3600.0)
    t, p = pressures(net)
    assert p[t < 100][-1, 0] == pytest.approx(60000.0)  # closed: nothing passes
    expected = m0 * R_AIR * T0 / 906.0
    np.testing.assert_allclose(p[-1], expected, rtol=1e-9)
    assert net.total_mass_kg() == pytest.approx(m0, rel=1e-14)
    assert np.all(np.diff(p[:, 0]) >= -1e-6)  # the low side only rises, no overshoot
    after = t > 100.0
    assert np.all(p[after, 0] <= expected + 1e-6)


def test_temperature_moves_pressure_by_0_34_percent_per_kelvin():
    sc = scenario(
        [vol("lab", 100.0, t_c=T0 - 273.15)],
        events=[
            {"t": 10.0, "kind": "temperature_step", "volume": "lab", "delta_k": 1.0, "tau": 1.0}
        ],
    )
    net = Network(sc)
    net.run_until(200.0)
    t, p = pressures(net)
    rel = p[-1, 0] / p[0, 0] - 1
    assert rel == pytest.approx(1 / T0, rel=1e-6)
    assert rel == pytest.approx(0.0034, abs=0.0001)
    assert net.total_mass_kg() == pytest.approx(net.initial_mass_kg, rel=1e-15)


@pytest.mark.slow
def test_mass_is_conserved_with_leaks_hatches_and_inflow():
    sc = load_scenario("soyuz-ms09-2018")
    net = Network(sc)
    net.run_until(25.5 * 3600.0)  # past the seal and the repressurization
    leaked = float(net.leaked_kg.sum())
    assert leaked > 5.0
    assert net.inflowed_kg == pytest.approx(14.3, rel=1e-9)
    balance = net.total_mass_kg() + leaked - net.inflowed_kg - net.initial_mass_kg
    assert abs(balance) < 1e-9  # of ~1100 kg: rounding


@pytest.mark.slow
def test_soyuz_rate_tape_and_seal():
    sc = load_scenario("soyuz-ms09-2018")
    net = Network(sc)
    cols = net.columns()
    net.run_until(11 * 3600.0)
    h = net.history()
    t = h[:, 0]
    vols = np.array([v.volume_m3 for v in sc.volumes])
    # station-wide pressure slope, from total mass (temperature-free)
    mass = h[:, cols["m"]].sum(axis=1)
    sel = (t > 5 * 3600) & (t < 10 * 3600)
    kg_day = -np.polyfit(t[sel], mass[sel], 1)[0] * 86400
    assert 19 < kg_day < 22.5  # ~21 kg/day reported
    mbar_h = kg_day / 86400 * R_AIR * T0 / vols.sum() * 3600 / 100
    assert 0.7 < mbar_h < 0.9  # ~0.8 mbar/h reported
    rate_before = h[-1, cols["rate"]].sum()
    net.run_until(15 * 3600.0)
    rate_taped = net.history()[-1, cols["rate"]].sum()
    assert 5 < rate_before / rate_taped < 7
    net.run_until(22 * 3600.0)
    assert net.history()[-1, cols["rate"]].sum() == 0.0


def test_isolated_volume_keeps_losing_and_the_others_hold():
    sc = load_scenario("soyuz-ms09-2018")
    net = Network(sc)
    cols = net.columns()
    net.run_until(13 * 3600.0 + 1)
    net.trim(13 * 3600.0)
    net.run_until(13 * 3600.0 + 1000.0)
    h = net.history()
    p = h[:, cols["P"]]
    names = [v.name for v in sc.volumes]
    bo = names.index("soyuz_bo")
    sa = names.index("soyuz_sa")
    assert p[-1, bo] < p[0, bo] - 1000  # ~3.4 Pa/s in 6 m3
    m = h[:, cols["m"]]
    assert m[-1, sa] == pytest.approx(m[0, sa], rel=1e-12)  # sealed off: only T moves it


def test_rapid_depress_time_constant_after_isolation():
    sc = load_scenario("rapid-depress")
    net = Network(sc)
    cols = net.columns()
    net.run_until(sc.duration_s)
    h = net.history()
    t, p = h[:, 0], h[:, cols["P"]][:, 1]  # node3
    sel = t > 600
    slope = np.polyfit(t[sel], np.log(p[sel]), 1)[0]
    area = math.pi / 4 * 0.025**2
    tau = 70.0 / (0.61 * area * math.sqrt(GAMMA * R_AIR * (22.5 + 273.15)) * CHOKE_FACTOR)
    assert -1 / slope == pytest.approx(tau, rel=0.02)  # thermal cycling moves it a little


@pytest.mark.slow
def test_step_choice_does_not_change_the_answer():
    base = {"volume": "bo", "kind": "orifice", "diameter_mm": 5.0}
    vols = [vol("bo", 6.0, orbit_amplitude_k=0.8), vol("st", 400.0, orbit_amplitude_k=0.5)]
    hatch = [{"name": "h", "a": "bo", "b": "st"}]
    out = []
    for step in ("2s", "2min"):
        net = Network(scenario(vols, hatches=hatch, leaks=[base], max_step=step))
        net.run_until(3 * 3600.0)
        out.append(net.m.copy())
    # coefficients are frozen per step under a 0.8 K orbital swing: 1e-4 at 2 min steps
    np.testing.assert_allclose(out[0], out[1], rtol=5e-4)


def test_nominal_baseline_has_no_leak_and_equal_pressures():
    sc = load_scenario("nominal")
    net = Network(sc)
    cols = net.columns()
    net.run_until(6 * 3600.0)
    h = net.history()
    p = h[:, cols["P"]]
    assert net.total_mass_kg() == pytest.approx(net.initial_mass_kg, rel=1e-13)
    assert np.all(p.max(axis=1) - p.min(axis=1) < 0.5)  # hatches open: one pressure
    swing = p[:, 0].max() - p[:, 0].min()
    assert 50 < swing < 400  # thermal cycling the monitor must compensate


@pytest.mark.slow
def test_zvezda_prk_closed_decay_and_equalisation():
    sc = load_scenario("zvezda-prk")
    net = Network(sc)
    cols = net.columns()
    net.run_until(3 * 86400.0 + 3000.0)
    h = net.history()
    t, p = h[:, 0], h[:, cols["P"]]
    prk, zv = 2, 1
    closed = t < 3 * 86400
    drop_per_day = (p[0, prk] - p[closed][-1, prk]) / 3
    assert 10_000 < drop_per_day < 20_000  # tens of kPa, ~100 mmHg a day
    opened = t > 3 * 86400 + 2400
    assert np.all(np.abs(p[opened, prk] - p[opened, zv]) < 50)  # equalised through the valve


@settings(max_examples=10, deadline=None)
@given(
    sizes=st.lists(st.floats(0.5, 1000.0), min_size=2, max_size=4),
    pressures=st.lists(st.floats(20_000.0, 110_000.0), min_size=4, max_size=4),
    hole_mm=st.floats(0.0, 30.0),
    k_day=st.floats(0.0, 5.0),
    toggle_s=st.lists(st.floats(0.0, 3000.0), max_size=4),
    inflow=st.floats(0.0, 0.01),
)
def test_mass_balance_property(sizes, pressures, hole_mm, k_day, toggle_s, inflow):
    n = len(sizes)
    vols = [
        vol(f"v{i}", s, p=pressures[i], orbit_amplitude_k=0.8, orbit_phase_deg=40 * i)
        for i, s in enumerate(sizes)
    ]
    hatches = [
        {"name": f"h{i}", "a": f"v{i}", "b": f"v{i + 1}", "open": i % 2 == 0} for i in range(n - 1)
    ]
    events = [
        {"t": t, "kind": "hatch", "hatch": f"h{j % (n - 1)}", "open": j % 2 == 1}
        for j, t in enumerate(sorted(toggle_s))
    ]
    leaks = [
        {"volume": "v0", "kind": "orifice", "diameter_mm": hole_mm},
        {"volume": f"v{n - 1}", "kind": "crack", "kg_per_day": k_day, "onset": 100.0},
    ]
    inflows = [{"volume": "v1", "start": 500.0, "end": 900.0, "kg_s": inflow}] if inflow else []
    net = Network(scenario(vols, hatches=hatches, leaks=leaks, inflows=inflows, events=events))
    net.run_until(3600.0)
    assert np.all(net.m > 0) and np.all(np.isfinite(net.m))
    assert abs(net.mass_balance_kg()) <= 1e-11 * net.initial_mass_kg + 1e-12
    assert np.all(net.leaked_kg >= -1e-15)
