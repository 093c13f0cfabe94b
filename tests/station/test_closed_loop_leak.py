"""``cabinwatch demo --station``, the whole closed loop: the Soyuz-2018-class hole hunted
by a scripted crew following the isolation advisor (issue 16 item 4's goal)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.station.test_station_demo import SC, _require_mosquitto


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_closed_loop_locates_the_soyuz_hole(tmp_path):
    """The goal of issue 16 item 4: the Soyuz-2018-class hole located correctly (soyuz_bo:
    the BO and SA each have sensors, so the advisor splits them) within 30 simulated
    minutes of detection, nothing detected before the hole opens, no false location."""
    _require_mosquitto()
    out = tmp_path / "out"
    r = subprocess.run(
        [sys.executable, "-m", "firmware_host.cli", "demo", "--station", "--json",
         "--speed", "30", "--duration", "3600", "--out", str(out)],
        capture_output=True, text=True, timeout=280,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    lines = [json.loads(x) for x in r.stdout.splitlines() if x.strip()]
    s = lines[-1]
    assert s["type"] == "summary" and s["scenario"] == SC
    for key in ("boards", "broker", "leak_onset_s", "detected_s", "located_volume",
                "located_s", "hatch_actions", "false_locations"):  # fmt: skip
        assert key in s
    assert [b["node"] for b in s["boards"]] == ["usos", "rs", "soyuz"]
    assert s["detected_s"] is not None and s["detected_s"] >= s["leak_onset_s"]
    assert s["detected_before_onset"] is False
    assert s["located_volume"] == "soyuz_bo" and s["located_correct"] is True
    assert s["located_s"] - s["detected_s"] <= 30 * 60
    assert s["false_locations"] == []
    assert s["hatch_actions"] and all(a["emulator"] == "ok" for a in s["hatch_actions"])
    # the truth file records every crew move
    truth = [json.loads(x) for x in (out / "truth.jsonl").read_text().splitlines()]
    moves = [(t["hatch"], t["open"]) for t in truth if t["type"] == "hatch_command"]
    assert moves == [(a["hatch"], a["open"]) for a in s["hatch_actions"]]
