"""Scenario files: the shipped ones load, every mistake names file, key and problem."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

from common.errors import ConfigError
from hil.scenario import list_scenarios, load_scenario, parse_time

SHIPPED = [
    "heater-steps",
    "link-faults",
    "mixed-buses",
    "nominal",
    "rapid-depress",
    "sensor-faults",
    "soyuz-2018-station",
    "soyuz-ms09-2018",
    "zvezda-prk",
]

GOOD = """
[scenario]
duration = "1h"
seed = 3

[[volumes]]
name = "lab"
volume_m3 = 100

[[volumes]]
name = "node"
volume_m3 = 50

[[hatches]]
name = "h"
a = "lab"
b = "node"

[[leaks]]
volume = "lab"
kind = "crack"
kg_per_day = 1.0

[[events]]
t = "10min"
kind = "hatch"
hatch = "h"
open = false

[[sensors]]
addr = 1
volume = "lab"
"""


def test_shipped_scenarios_load():
    assert list_scenarios() == SHIPPED
    for name in SHIPPED:
        sc = load_scenario(name)
        assert sc.name == name
        assert sc.sensors and sc.volumes and sc.links


def test_monitor_side_view_of_a_scenario():
    sc = load_scenario("soyuz-ms09-2018")
    assert 900 <= sc.total_volume_m3() <= 920
    assert sc.link_names == ["station", "soyuz"]
    assert sc.hatch_events()[0] == (11.5 * 3600, "node1-fgb", False)
    assert [h.name for h in sc.hatches if h.initially_open] == ["node1-fgb", "mrm1-soyuz", "bo-sa"]
    s = sc.sensors[0]
    assert (s.link, s.addr, s.volume, s.rate_hz) == ("station", 1, "usos", 10.0)
    assert s.range_min_pa < 101325 < s.range_max_pa and s.noise_pa > 0
    leak = sc.leaks[0]
    assert (leak.kind, leak.onset_s, leak.end_s, leak.diameter_mm) == (
        "orifice",
        3 * 3600.0,
        21 * 3600.0,
        1.45,
    )
    assert sc.nominal_pressure_pa == 101325.0 and sc.min_pressure_pa == 69300.0
    crack = load_scenario("zvezda-prk").leaks[0]
    assert crack.k_kg_s_pa2 * 101325.0**2 * 86400 == pytest.approx(0.45)
    assert crack.changes[0].ramp


@pytest.mark.parametrize(
    "text,seconds",
    [
        (90, 90.0),
        (1.5, 1.5),
        ("90s", 90.0),
        ("15min", 900.0),
        ("8h", 28800.0),
        ("2d", 172800.0),
        ("1d 6h 30min", 109800.0),
        ("250ms", 0.25),
        ("13h45min", 49500.0),
    ],
)
def test_times(text, seconds):
    assert parse_time(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["8 hours", "h", "", True, "-5s"])
def test_bad_times(bad):
    with pytest.raises(ValueError):
        parse_time(bad)


def write(tmp_path: Path, text: str) -> str:
    p = tmp_path / "bad.toml"
    p.write_text(text)
    return str(p)


@pytest.mark.parametrize(
    "old,new,key,problem",
    [
        (
            'volume = "lab"\nkind = "crack"',
            'volume = "galley"\nkind = "crack"',
            "leaks[0].volume",
            "unknown volume 'galley'",
        ),
        ("volume_m3 = 100", "volume_m3 = -100", "volumes[0].volume_m3", "must be > 0"),
        ('t = "10min"', "t = -10", "events[0].t", "before time 0"),
        ("seed = 3", "seed = 3\ncolour = 1", "scenario.colour", "unknown key"),
        (
            "[[sensors]]\naddr = 1",
            "[[sensors]]\naddr = 1\nnoise = 2",
            "sensors[0].noise",
            "unknown key",
        ),
        ('kind = "crack"', 'kind = "fissure"', "leaks[0].kind", "unknown leak kind"),
        ('hatch = "h"', 'hatch = "x"', "events[0].hatch", "unknown hatch"),
        ("addr = 1", "addr = 300", "sensors[0].addr", "must be in 1..247"),
        ('duration = "1h"', 'duration = "1 fortnight"', "scenario.duration", "bad time"),
        ('duration = "1h"\n', "", "scenario.duration", "missing"),
        ("[[leaks]]", "[[leak]]", "leak", "unknown key"),
    ],
)
def test_mistakes_name_file_key_and_problem(tmp_path, old, new, key, problem):
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new, 1))
    with pytest.raises(ConfigError) as exc:
        load_scenario(path)
    assert exc.value.path == path
    assert exc.value.key == key
    assert problem in exc.value.problem
    assert str(exc.value).startswith(f"{path}: {key}: ")


def test_good_file_loads_and_toml_syntax_error(tmp_path):
    sc = load_scenario(write(tmp_path, GOOD))
    assert sc.duration_s == 3600.0 and sc.seed == 3 and math.isinf(sc.leaks[0].end_s)
    with pytest.raises(ConfigError) as exc:
        load_scenario(write(tmp_path, GOOD + "\n[[volumes]\n"))
    assert exc.value.key == "(syntax)"


def test_unknown_scenario_name():
    with pytest.raises(ConfigError) as exc:
        load_scenario("no-such-scenario")
    assert "shipped:" in str(exc.value)


def cli() -> list[str]:
    exe = Path(sys.executable).with_name("cabinwatch")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "firmware_host.cli"]


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_cli_bad_scenario_one_line_exit_2(tmp_path):
    path = write(tmp_path, GOOD.replace("volume_m3 = 100", "volume_m3 = -1"))
    r = subprocess.run(
        [*cli(), "emulate", path, "--out", str(tmp_path / "x.bin")],
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert path in lines[0] and "volumes[0].volume_m3" in lines[0]
    assert "Traceback" not in r.stderr
    r = subprocess.run(
        [*cli(), "emulate", "nominal", "--out", str(tmp_path / "x.bin"), "--speed", "fast"],
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
