"""The advisor's pieces: the hold time against PHYSICS.md's floor, the Bayesian
update by hand, NOMINAL, the message and its round trip over the station wire."""

from __future__ import annotations

import math

import pytest

from bench.baselines import floor_time_s
from common.gas import fall_rate_pa_s
from common.station_wire import AssessmentMsg, TopicKind, decode, encode
from station.advisor import (
    L_REL,
    AdvisorState,
    IsolationAdvisor,
    SegmentEstimate,
)
from station.graph import StationGraph, StationHatch, StationVolume
from station.holdtime import HoldModel, volume_floor_coef
from tests.station.advisor_world import World, check_invariants, iss_graph, run_hunt


@pytest.mark.parametrize(
    ("volume_m3", "sensors", "noise_pa", "rate_hz", "leak"),
    [(6.0, 1, 3.0, 10.0, 21.0), (400.0, 2, 3.0, 10.0, 21.0), (916.0, 4, 30.0, 1.0, 1.0)],
)
def test_fit_time_is_physics_floor(volume_m3, sensors, noise_pa, rate_hz, leak):
    # T = (12 k^2 sigma^2 / (f s^2))^(1/3) with sigma = noise / sqrt(M), s the
    # pressure fall of the leak: bench.baselines.floor_time_s, the detection bench's
    vol = StationVolume("v", volume_m3, sensors=sensors, noise_pa=noise_pa, rate_hz=rate_hz)
    model = HoldModel(k_sigma=4.0)
    coef = volume_floor_coef(vol, sensors, model.t_ref_k)
    slope = fall_rate_pa_s(leak, volume_m3, model.t_ref_k)
    expected = floor_time_s(4.0, noise_pa, sensors, rate_hz, slope)
    assert model.fit_s(coef, leak) == pytest.approx(expected, rel=1e-12)
    # and at that time the sigma is the leak over k
    assert coef * expected**-1.5 == pytest.approx(leak / 4.0, rel=1e-12)


def test_hold_uses_whole_windows_after_settling_and_the_slower_side():
    model = HoldModel(k_sigma=4.0, settle_s=30.0, windows_s=(10.0, 60.0, 600.0))
    c_small, c_big = 10.0, 3000.0
    assert model.fit_s(c_small, 20.0) < 10.0 < model.fit_s(c_big, 20.0) < 600.0
    assert model.hold_s([c_small], 20.0) == 40.0
    assert model.hold_s([c_small, c_big], 20.0) == model.hold_s([c_big], 20.0)
    assert model.hold_s([c_big], 20.0) in (90.0, 630.0)
    assert model.hold_s([c_big], 1e-6) == math.inf  # beyond the longest window
    assert model.sigma_after(c_big, 35.0) is None  # no window full yet
    assert model.sigma_after(c_big, 40.0) == pytest.approx(c_big * 10.0**-1.5)
    assert model.sigma_after(c_big, 700.0) == pytest.approx(c_big * 600.0**-1.5)
    assert model.extended_s(90.0) == 630.0
    assert model.segment_coef(iss_graph(), {"lab"}, {"lab": 0}) == math.inf
    free = HoldModel(windows_s=None, settle_s=0.0)
    assert free.hold_s([c_big], 20.0) == pytest.approx(free.fit_s(c_big, 20.0))


def _pair() -> StationGraph:
    vols = [StationVolume("a", 50.0, sensors=2, rate_hz=10.0), StationVolume("b", 50.0)]
    return StationGraph(vols, [StationHatch("ab", "a", "b")])


def _seg(vols, m, s, since=-1e4, p=101000.0, n=1):
    return SegmentEstimate(frozenset(vols), m, s, p, n, m is not None, since)


def test_bayes_update_by_hand():
    g = _pair()
    adv = IsolationAdvisor(g, caution_kg_day=5.0)
    a = adv.update(0.0, {"ab": True}, [_seg("ab", 20.0, 0.5, n=3)])
    assert a.state is AdvisorState.SUSPECT and a.leaking
    assert a.probabilities == {"a": 0.5, "b": 0.5}  # uniform prior
    assert a.proposal.hatch == "ab" and a.proposal.close
    hold = a.proposal.hold_s
    # the crew closes; halfway through the hold nothing is decided
    segs = [_seg("a", 19.0, 2.0, since=10.0, n=2), _seg("b", 1.0, 2.0, since=10.0)]
    a = adv.update(10.0 + hold / 2, {"ab": False}, segs)
    assert a.state is AdvisorState.HOLDING and a.probabilities["a"] == 0.5
    assert a.message.startswith(f"HOLDING close ab {hold:.0f} s")
    a = adv.update(10.0 + hold, {"ab": False}, segs)
    # P(a) = 1 / (1 + exp(ll_b - ll_a)), ll = log N(m; L0, s^2+sL^2) - log N(m; 0, s^2)
    s_l = math.hypot(0.5, L_REL * 20.0)

    def ll(m, s):
        v = s * s + s_l * s_l
        return (-0.5 * (m - 20.0) ** 2 / v - 0.5 * math.log(v)) - (
            -0.5 * m * m / (s * s) - 0.5 * math.log(s * s)
        )

    p_a = 1.0 / (1.0 + math.exp(ll(1.0, 2.0) - ll(19.0, 2.0)))
    assert a.probabilities["a"] == pytest.approx(p_a, rel=1e-9)
    assert a.state is AdvisorState.LOCATED and a.located == "a"
    assert a.evidence == (
        {"volumes": ["a"], "mass_rate_kg_day": 19.0, "sigma_kg_day": 2.0},
        {"volumes": ["b"], "mass_rate_kg_day": 1.0, "sigma_kg_day": 2.0},
    )
    assert a.message.startswith("LOCATED a p=")
    # reset: the crew starts over
    adv.reset()
    a = adv.update(100.0, {"ab": True}, [_seg("ab", 0.1, 0.5, n=3)])
    assert a.state is AdvisorState.NOMINAL


@pytest.mark.parametrize(
    ("m", "s", "state"),
    [
        (0.2, 0.3, AdvisorState.NOMINAL),  # nothing
        (4.0, 0.1, AdvisorState.NOMINAL),  # below the caution level
        (6.0, 3.0, AdvisorState.NOMINAL),  # above it, but within 3 sigma of zero
        (None, None, AdvisorState.NOMINAL),  # no estimate yet
        (6.0, 1.0, AdvisorState.SUSPECT),
    ],
)
def test_a_leak_is_seen_above_caution_and_three_sigma(m, s, state):
    adv = IsolationAdvisor(_pair(), caution_kg_day=5.0)
    a = adv.update(0.0, {"ab": True}, [_seg("ab", m, s, n=3)])
    check_invariants(a)
    assert a.state is state
    if state is AdvisorState.NOMINAL:
        assert a.probabilities == {} and a.proposal is None and not a.leaking


def test_unsettled_estimates_start_no_hunt():
    """A board's start-up estimate, or a window that straddles a hatch move, is not
    evidence: 20 +- 0.5 kg/day unsettled leaves the advisor NOMINAL; settled, it hunts."""
    adv = IsolationAdvisor(_pair(), caution_kg_day=5.0)
    noisy = SegmentEstimate(frozenset("ab"), 20.0, 0.5, 101000.0, 3, False, -1e4)
    a = adv.update(0.0, {"ab": True}, [noisy])
    assert a.state is AdvisorState.NOMINAL and not a.leaking
    assert "station ?" in a.message
    a = adv.update(1.0, {"ab": True}, [_seg("ab", 20.0, 0.5, n=3)])
    assert a.state is AdvisorState.SUSPECT and a.leaking


def test_prior_by_weight_and_bad_arguments():
    g = _pair()
    adv = IsolationAdvisor(g, caution_kg_day=5.0, prior={"a": 3.0, "b": 1.0})
    a = adv.update(0.0, {"ab": True}, [_seg("ab", 20.0, 0.5, n=3)])
    assert a.probabilities == pytest.approx({"a": 0.75, "b": 0.25})
    with pytest.raises(ValueError, match="crew_volume"):
        IsolationAdvisor(g, caution_kg_day=5.0, crew_volume="c")
    with pytest.raises(ValueError, match="prior"):
        IsolationAdvisor(g, caution_kg_day=5.0, prior={"a": 1.0})
    with pytest.raises(ValueError, match="caution"):
        IsolationAdvisor(g, caution_kg_day=0.0)


def test_every_state_round_trips_through_the_station_wire():
    graph = iss_graph()
    seen: dict[AdvisorState, object] = {}
    adv = IsolationAdvisor(graph, caution_kg_day=5.0)
    quiet = World(graph, {}, seed=1)
    seen[AdvisorState.NOMINAL] = adv.update(0.0, quiet.hatches, quiet.segments())
    for leaks in ({"jem": 20.0}, {"lab": 20.0, "sm": 10.0}):
        hunt = run_hunt(World(graph, leaks, seed=1), IsolationAdvisor(graph, caution_kg_day=5.0))
        for a in hunt.history:
            seen.setdefault(a.state, a)
    assert set(seen) == set(AdvisorState)
    for state, a in seen.items():
        msg = a.to_msg("iss", 1.7e9 + a.t_s)
        assert isinstance(msg, AssessmentMsg)
        back = decode(TopicKind.ASSESSMENT, encode(msg))
        assert back == msg
        assert back.message.split()[0] == state.name
        assert back.leaking == (state is not AdvisorState.NOMINAL)
        if a.proposal is not None:
            assert back.proposal == {
                "hatch": a.proposal.hatch,
                "close": a.proposal.close,
                "hold_s": a.proposal.hold_s,
                "reason": a.proposal.reason,
            }
        if state is not AdvisorState.NOMINAL:
            assert sum(back.probabilities.values()) == pytest.approx(1.0, abs=1e-12)


def test_sensors_lost_are_learnt_from_single_volume_and_empty_segments():
    g = _pair()
    # b isolated reports no healthy sensor and a is quiet: the leak is in b by
    # elimination, but b cannot be decided
    adv = IsolationAdvisor(g, caution_kg_day=5.0)
    adv.update(0.0, {"ab": True}, [_seg("ab", 20.0, 0.5, n=3)])
    segs = [_seg("a", 0.3, 1.0, since=0.0, n=2), _seg("b", None, None, since=0.0, n=0)]
    a = adv.update(500.0, {"ab": False}, segs)
    assert a.state is AdvisorState.UNRESOLVED and a.located is None
    assert a.message.startswith("UNRESOLVED b by elimination") and "no live sensor" in a.message
    # the same with a showing the whole leak: a is located (the leak is seen there)
    adv = IsolationAdvisor(g, caution_kg_day=5.0)
    adv.update(0.0, {"ab": True}, [_seg("ab", 20.0, 0.5, n=3)])
    segs = [_seg("a", 20.0, 1.0, since=0.0, n=2), _seg("b", None, None, since=0.0, n=0)]
    assert adv.update(500.0, {"ab": False}, segs).located == "a"
    # told that b has no sensor, the advisor never proposes to isolate it
    adv = IsolationAdvisor(g, caution_kg_day=5.0)
    a = adv.update(0.0, {"ab": True}, [_seg("ab", 20.0, 0.5, n=2)], sensors={"a": 2, "b": 0})
    assert a.state is AdvisorState.UNRESOLVED and a.proposal is None
    assert "ab: {b} has no live sensor" in a.message
