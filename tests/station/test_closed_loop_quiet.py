"""``cabinwatch demo --station`` on the station without its hole: nothing detected,
no hatch moved, nothing located."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hil.scenario import load_scenario
from tests.station.test_station_demo import SC, _require_mosquitto


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_closed_loop_without_a_leak_locates_nothing(tmp_path):
    """The same station with its hole taken out: the advisor stays NOMINAL (no
    detection, no hatch moved, nothing located) over 40 simulated minutes."""
    _require_mosquitto()
    text = Path(load_scenario(SC).path).read_text()
    head, _, rest = text.partition("[[leaks]]")
    assert rest, "the scenario has a [[leaks]] table"
    rest = rest[rest.index("[[boards]]") :]
    quiet = tmp_path / "soyuz-2018-station-no-leak.toml"
    quiet.write_text(head + rest)
    out = tmp_path / "out"
    r = subprocess.run(
        [sys.executable, "-m", "firmware_host.cli", "demo", "--station", "--json",
         "--scenario", str(quiet), "--speed", "30", "--duration", "2400", "--out", str(out)],
        capture_output=True, text=True, timeout=220,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    s = json.loads(r.stdout.splitlines()[-1])
    assert s["type"] == "summary" and s["leak_volume"] is None
    assert s["end_s"] >= 2300
    assert s["assessments"] > 0
    assert s["detected_s"] is None
    assert s["located_volume"] is None and s["false_locations"] == []
    assert s["hatch_actions"] == []
