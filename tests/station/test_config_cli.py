"""The station file and ``cabinwatch station``'s bad inputs: one line, exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from common.errors import CabinwatchError, ConfigError
from common.mqtt_url import BrokerAddress, Transport, parse_broker_url
from station.config import load_station_config

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "station" / "examples" / "soyuz-2018.toml"

GOOD = """
[station]
name = "iss"
broker = "mqtt://127.0.0.1:1883"
caution_kg_day = 2.0

[[volumes]]
name = "a"
volume_m3 = 10.0

[[volumes]]
name = "b"
volume_m3 = 5.0
escape_vehicle = true

[[hatches]]
name = "a-b"
a = "a"
b = "b"

[[boards]]
node = "n1"
volumes = ["a", "b"]
hatches = ["a-b"]
"""


def test_example_loads():
    c = load_station_config(EXAMPLE)
    assert c.name == "iss" and c.broker == BrokerAddress(Transport.MQTT, "127.0.0.1", 1883)
    assert set(c.graph.volumes) == {"usos", "rs", "mrm1", "soyuz_bo", "soyuz_sa"}
    assert c.graph.escape_vehicles == ("soyuz_bo", "soyuz_sa")
    assert [b.node for b in c.boards] == ["usos", "rs", "soyuz", "crew"]
    assert c.boards_of("mrm1") == ("rs",) and c.boards[3].hatches == ("usos-rs", "mrm1-soyuz")
    assert c.advisor.crew_volume is None and c.advisor.min_pressure_pa == 69300.0
    assert c.graph.segment_volume_m3(c.graph.volumes) == 675.0
    assert c.graph.hatches["mrm1-soyuz"].opens_into == "soyuz_bo"


def test_a_board_may_report_hatches_only(tmp_path):
    """A crew panel (or the scripted crew) reporting the hatches between boards."""
    text = GOOD.replace('hatches = ["a-b"]', "") + '[[boards]]\nnode = "crew"\nhatches = ["a-b"]\n'
    (tmp_path / "s.toml").write_text(text)
    c = load_station_config(tmp_path / "s.toml")
    assert c.boards[1].volumes == () and c.boards[1].hatches == ("a-b",)
    assert c.boards_of("a") == ("n1",)


def test_credentials_and_tls_paths_are_relative_to_the_file(tmp_path):
    (tmp_path / "agg.cred").write_text('username = "agg"\npassword = "s3cret"\n')
    (tmp_path / "ca.crt").write_text("not checked here\n")
    text = GOOD.replace("mqtt://127.0.0.1:1883", "mqtts://broker.station:8883")
    text = text.replace(
        "caution_kg_day = 2.0", 'caution_kg_day = 2.0\ncredentials = "agg.cred"\ntls_ca = "ca.crt"'
    )
    (tmp_path / "s.toml").write_text(text)
    c = load_station_config(tmp_path / "s.toml")
    assert c.credentials.username == "agg" and c.credentials.password == "s3cret"
    assert c.tls_ca == tmp_path / "ca.crt" and c.broker.tls and c.broker.port == 8883


BAD_FILES = [
    ("", "station: missing"),
    ("x = 1\n" + GOOD, "x: unknown key"),
    (GOOD.replace('name = "iss"', 'name = "i s s"'), "station.name"),
    (GOOD.replace('name = "iss"', 'name = "iss/x"'), "station.name"),
    (GOOD.replace("mqtt://127.0.0.1:1883", "http://x:1"), "station.broker: 'http://x:1': unknown"),
    (GOOD.replace('broker = "mqtt://127.0.0.1:1883"', "broker = 1883"), "station.broker: must be"),
    (GOOD.replace("caution_kg_day = 2.0", ""), "station.caution_kg_day: missing"),
    (GOOD.replace("caution_kg_day = 2.0", "caution_kg_day = -1.0"), "caution_kg_day: must be >"),
    (GOOD.replace("caution_kg_day = 2.0", 'caution_kg_day = "2"'), "must be a number"),
    (
        GOOD.replace("caution_kg_day = 2.0", "caution_kg_day = 2.0\ncrew_volume = 'c'"),
        "station.crew_volume: unknown volume 'c'",
    ),  # fmt: skip
    (
        GOOD.replace("caution_kg_day = 2.0", "caution_kg_day = 2.0\ncolour = 'red'"),
        "station.colour: unknown key",
    ),  # fmt: skip
    (
        GOOD.replace("caution_kg_day = 2.0", "caution_kg_day = 2.0\ncredentials = 'nope.cred'"),
        "station.credentials: ",
    ),  # fmt: skip
    (
        GOOD.replace("caution_kg_day = 2.0", "caution_kg_day = 2.0\ntls_ca = 'ca.crt'"),
        "station.tls_ca: only with an mqtts://",
    ),  # fmt: skip
    (
        GOOD.replace("caution_kg_day = 2.0", "caution_kg_day = 2.0\noffline_after_s = 0"),
        "station.offline_after_s: must be",
    ),  # fmt: skip
    (GOOD.replace("volume_m3 = 10.0", "volume_m3 = 0.0"), "volumes[0].volume_m3: must be"),
    (GOOD.replace("volume_m3 = 10.0", "volume_m3 = 10.0\nsensors = -1"), "volumes[0].sensors"),
    (GOOD.replace("volume_m3 = 10.0", "volume_m3 = 10.0\nsize = 3"), "volumes[0].size: unknown"),
    (GOOD.replace('name = "b"', 'name = "a"'), "volumes[1].name: volume 'a' given twice"),
    (GOOD.replace('b = "b"', 'b = "c"'), "hatches[0].b: unknown volume 'c'"),
    (GOOD.replace('b = "b"', 'b = "a"'), "hatches[0].b: joins 'a' to itself"),
    (GOOD.replace('b = "b"\n', 'b = "b"\nopens_into = "c"\n'), "hatches[0].opens_into"),
    (GOOD.replace('hatches = ["a-b"]', 'hatches = ["x"]'), "boards[0].hatches[0]: unknown hatch"),
    (GOOD.replace('volumes = ["a", "b"]', 'volumes = ["a"]'), "volume 'b' is watched by no board"),
    (GOOD.replace('volumes = ["a", "b"]', 'volumes = ["a", "a"]'), "given twice"),
    (GOOD.replace('volumes = ["a", "b"]', 'volumes = "a"'), "boards[0].volumes: must be a list"),
    (
        GOOD.replace('volumes = ["a", "b"]\nhatches = ["a-b"]', "volumes = []"),
        "boards[0].volumes: must name at least one volume",
    ),  # fmt: skip
    (GOOD.replace('node = "n1"', 'node = "n1"\nnode2 = 1'), "boards[0].node2: unknown key"),
    (GOOD + '[[boards]]\nnode = "n1"\nvolumes = ["a"]\n', "boards[1].node: node 'n1' given twice"),
    (GOOD.split("[[boards]]")[0], "boards: missing"),
    (GOOD.split("[[volumes]]")[0], "volumes: missing"),
    ("[station\n", "(syntax)"),
    ("volumes = 3\n" + GOOD.split("[[volumes]]")[0], "volumes: must be an array"),
]


@pytest.mark.parametrize("text, words", BAD_FILES)
def test_bad_station_files_one_config_error(tmp_path, text, words):
    p = tmp_path / "s.toml"
    p.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_station_config(p)
    msg = str(e.value)
    assert msg.startswith(str(p)) and words in msg and "\n" not in msg, msg


@pytest.mark.parametrize(
    "text, words",
    [
        ('username = "agg"\n', "password: missing"),
        ('username = "agg"\npassword = ""\n', "password: must not be empty"),
        ('username = "agg"\npassword = "x"\nport = 1\n', "port: unknown key"),
        ("agg\npw\n", "(syntax)"),
    ],
)
def test_credentials_file_is_the_boards_toml(tmp_path, text, words):
    (tmp_path / "agg.cred").write_text(text)
    text = GOOD.replace("caution_kg_day = 2.0", 'caution_kg_day = 2.0\ncredentials = "agg.cred"')
    (tmp_path / "s.toml").write_text(text)
    with pytest.raises(ConfigError) as e:
        load_station_config(tmp_path / "s.toml")
    assert str(e.value).startswith(str(tmp_path / "agg.cred")) and words in str(e.value)


def test_broker_option_over_a_tls_file_must_stay_tls(tmp_path):
    (tmp_path / "ca.crt").write_text("x")
    text = GOOD.replace("mqtt://127.0.0.1:1883", "mqtts://b:8883").replace(
        "caution_kg_day = 2.0", 'caution_kg_day = 2.0\ntls_ca = "ca.crt"'
    )
    (tmp_path / "s.toml").write_text(text)
    c = load_station_config(tmp_path / "s.toml")
    with pytest.raises(CabinwatchError, match="--broker"):
        c.with_broker(parse_broker_url("mqtt://b:1883"))


def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "firmware_host.cli", "station", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("text, words", BAD_FILES[::3])
def test_cli_bad_station_file_one_line_exit_2(tmp_path, text, words):
    p = tmp_path / "s.toml"
    p.write_text(text)
    r = _cli("--config", str(p), "--no-view")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and words in r.stderr, r.stderr
    assert r.stderr.startswith("cabinwatch station: ")


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:1883", "mqtt://127.0.0.1:70000", "mqtt://", "127.0.0.1"]
)
def test_cli_bad_broker_url_one_line_exit_2(url):
    r = _cli("--config", str(EXAMPLE), "--broker", url, "--no-view")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and "--broker:" in r.stderr, r.stderr


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_cli_bad_duration_and_missing_config():
    r = _cli("--config", str(EXAMPLE), "--duration", "-1")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--duration" in r.stderr
    r = _cli("--config", str(EXAMPLE), "--speed", "0")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--speed" in r.stderr
    r = _cli("--no-view")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--config" in r.stderr
