"""The monitor scored on the emulator's scenarios (issue 4's goals), through the bytes.

Each run goes emulator -> encoded byte stream -> decoder -> loop -> core, with
the configuration derived from the scenario's hardware only, and is scored
against the emulator's truth.  The long runs are elsewhere: ``zvezda-prk`` over
15 h in tests/system/test_scenarios_long.py (``make scorecard``), 30 days of ``nominal``
in the detection scorecard (``make bench``, docs/DETECTION.md).
"""

import pytest

from harness.derive import config_from_scenario
from harness.scoring import score
from harness.simulate import run_simulation
from hil.scenario import load_scenario

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def scored(name: str, *, start_s: float = 0.0, duration_s: float | None = None) -> dict:
    scenario = load_scenario(name)
    result = run_simulation(
        scenario, config_from_scenario(scenario), start_s=start_s, duration_s=duration_s
    )
    return score(result)


def test_soyuz_caution_within_5_min_and_rate_within_15_percent_after_30_min():
    # The monitor starts at 02:30 on board (45 minutes before the hole opens at 03:00 in
    # scenario time t = 3 h); the emulator plays the scenario from t = 0 regardless.
    s = scored("soyuz-ms09-2018", start_s=2.5 * 3600, duration_s=3 * 3600 + 1900)
    (leak,) = s["leaks"]
    assert leak["detected_s"] is not None, "hole never detected"
    assert leak["latency_s"] <= 300.0
    assert leak["first_level"] in ("CAUTION", "WARNING", "EMERGENCY")
    assert leak["settle_s"] >= leak["onset_s"] + 1799
    assert leak["mass_rate_est_kg_day"] == pytest.approx(leak["mass_rate_true_kg_day"], rel=0.15)
    assert leak["hole_est_mm"] == pytest.approx(leak["hole_true_mm"], rel=0.15)
    assert s["false_alarms"] == []


def test_closing_a_hatch_does_not_hand_the_old_groups_leak_to_the_sealed_off_module():
    """At 11 h 30 the crew closes node1-fgb: USOS (500 m3, no leak) is cut off from
    the leaking rest.  Its windows still hold the station-wide fall of the last
    hour; read with USOS's own volume that was 10.7 kg/day and a false CAUTION
    (t = 41591 s).  Windows that began before the group changed are not used; the
    leaking Soyuz side keeps its alarms."""
    s = scored("soyuz-ms09-2018", start_s=11 * 3600, duration_s=11.85 * 3600)
    assert s["false_alarms"] == []
    (leak,) = s["leaks"]
    assert leak["first_level"] is not None


def test_rapid_depress_emergency_within_5_s():
    s = scored("rapid-depress", duration_s=300)
    (leak,) = s["leaks"]
    assert leak["first_level"] == "EMERGENCY"
    assert 0 <= leak["latency_s"] <= 5.0
    assert s["false_alarms"] == []


def test_sensor_faults_each_raise_an_advisory_and_no_leak_alarm():
    s = scored("sensor-faults")
    kinds = {f["kind"] for f in s["faults"]}
    assert kinds >= {
        "stuck",
        "spike",
        "step",
        "drift",
        "dropout",
        "noisy",
        "reboot",
        "out_of_range",
    }
    for f in s["faults"]:
        assert f["advisory_s"] is not None, f"no advisory for {f}"
        # A 2400 Pa/day drift needs about 115 s of data to show at 5 sigma against its
        # partner sensor (2 Hz, 2 Pa noise; PHYSICS.md, "What limits detection"): the
        # 60 s goal holds for every other kind.
        limit = 300.0 if f["kind"] == "drift" else 60.0
        assert f["latency_s"] <= limit, f
    assert s["false_alarms"] == []
    assert s["raised_by_level"]["CAUTION"] == 0
    assert s["raised_by_level"]["WARNING"] == 0
    assert s["raised_by_level"]["EMERGENCY"] == 0
