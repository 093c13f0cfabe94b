"""``[station]`` keys, broker URLs and credentials: one line, exit 2; the session file."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest

from common.mqtt_url import Transport
from firmware_host.runtime.runconfig import load_runtime_config
from firmware_host.runtime.station_session import next_session, read_session
from tests.support.runtime_helpers import assert_one_line_error, run_cli, write_toml

EXAMPLE = Path(__file__).resolve().parents[2] / "firmware_host" / "examples" / "monitor.toml"
GOOD = {"url": "mqtt://127.0.0.1:1883", "station": "iss", "node": "b1"}


def config_with(tmp_path: Path, station, **top) -> Path:
    data = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    data["outputs"] = {"directory": str(tmp_path / "out")}
    if station is not None:
        data["station"] = station
    data.update(top)
    return write_toml(tmp_path / "monitor.toml", data)


def creds(tmp_path: Path, text: str) -> str:
    p = tmp_path / "mqtt.toml"
    p.write_text(text, encoding="utf-8")
    return str(p)


def test_good_station_table_is_read_and_shown(tmp_path):
    cred = creds(tmp_path, 'username = "b1"\npassword = "s3cret"\n')
    ca = tmp_path / "ca.crt"
    ca.write_text("not checked here\n")
    path = config_with(
        tmp_path,
        {**GOOD, "url": "mqtts://broker.lan", "credentials": cred, "tls_ca": str(ca)},
    )
    st = load_runtime_config(path).station
    assert st.broker.transport is Transport.MQTTS and st.broker.port == 8883
    assert (st.username, st.password, st.client_id) == ("b1", "s3cret", "cabinwatch-iss-b1")
    assert st.session_file == tmp_path / "out" / "station-session"
    assert st.estimate_qos == 0 and st.keepalive_s == 5
    r = run_cli("config", "check", path)
    assert r.returncode == 0, r.stderr
    assert "station: mqtts://broker.lan:8883 as iss/b1 (user b1, TLS CA" in r.stdout
    assert load_runtime_config(config_with(tmp_path, None)).station is None


BAD = [
    ({"station": "iss", "node": "b1"}, "station.url: missing"),
    ({**GOOD, "url": "http://x:1"}, "must start with mqtt:// or mqtts://"),
    ({**GOOD, "url": "mqtt://"}, "no host"),
    ({**GOOD, "url": "mqtt://h:99999"}, "station.url"),
    ({**GOOD, "url": "mqtt://h:0"}, "port must be in 1..65535"),
    ({**GOOD, "url": "mqtt://[::1"}, "station.url"),
    ({**GOOD, "url": "mqtt://u:pw@h"}, "no user or password in the URL"),
    ({**GOOD, "url": "mqtt://h/x"}, "no path, query or fragment"),
    ({**GOOD, "url": "mqtt://h\n"}, "must not contain NUL or line breaks"),
    ({**GOOD, "url": "mqtt://a b"}, "station.url: 'mqtt://a b': must not contain spaces"),
    ({**GOOD, "url": 1883}, "station.url: must be a string"),
    ({**GOOD, "station": "a/b"}, "station.station: station 'a/b': use 1-64 of"),
    ({**GOOD, "node": "+"}, "station.node: node '+'"),
    ({**GOOD, "node": "#"}, "station.node"),
    ({**GOOD, "node": ""}, "station.node"),
    ({**GOOD, "node": "x" * 65}, "station.node"),
    ({k: v for k, v in GOOD.items() if k != "node"}, "station.node: missing"),
    ({**GOOD, "estimate_qos": 2}, "station.estimate_qos: must be in 0..1 (got 2)"),
    ({**GOOD, "keepalive_s": 0}, "station.keepalive_s: must be in 1..3600"),
    ({**GOOD, "qos": 1}, "station.qos: unknown key (allowed:"),
    ({**GOOD, "tls_ca": "ca.crt"}, "station.tls_ca: TLS files need an mqtts:// url"),
    ({**GOOD, "url": "mqtts://h", "tls_ca": "/nonexistent/ca.crt"}, "no such file"),
    ("mqtt://h", "station: must be a table [station]"),
]


@pytest.mark.parametrize(("station", "needle"), BAD, ids=[n for _, n in BAD])
def test_bad_station_table_is_one_line_exit_2(tmp_path, station, needle):
    r = run_cli("config", "check", config_with(tmp_path, station))
    assert_one_line_error(r, "monitor.toml", needle)


def test_client_certificate_needs_its_key(tmp_path):
    cert = tmp_path / "b1.crt"
    cert.write_text("x")
    path = config_with(tmp_path, {**GOOD, "url": "mqtts://h", "tls_cert": str(cert)})
    assert_one_line_error(run_cli("config", "check", path), "station.tls_key: missing")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('username = "b2"\npassword = "x"\n', "username 'b2' is not the node 'b1'"),
        ('username = "b1"\n', "mqtt.toml: password: missing"),
        ('username = "b1"\npassword = ""\n', "password: must not be empty"),
        ('username = "b1"\npassword = "x"\nport = 1\n', "port: unknown key"),
        ("username = \n", "mqtt.toml: (syntax)"),
    ],
)
def test_bad_credentials_file(tmp_path, text, needle):
    path = config_with(tmp_path, {**GOOD, "credentials": creds(tmp_path, text)})
    assert_one_line_error(run_cli("config", "check", path), needle)


def test_missing_credentials_file_and_monitor_exit_2(tmp_path):
    path = config_with(tmp_path, {**GOOD, "credentials": str(tmp_path / "none.toml")})
    assert_one_line_error(run_cli("config", "check", path), "none.toml: (file)")
    r = run_cli("monitor", "--config", path, "--no-display", "--duration", "1")
    assert_one_line_error(r, "none.toml: (file)")


def test_volume_names_must_be_topic_levels(tmp_path):
    data = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    old = data["volumes"][1]["name"]
    data["volumes"][1]["name"] = "soyuz om"
    for s in data["sensors"]:
        if s["volume"] == old:
            s["volume"] = "soyuz om"
    for h in data.get("hatches", []):
        for k in ("volume_a", "volume_b"):
            if h[k] == old:
                h[k] = "soyuz om"
    data["station"] = GOOD
    path = write_toml(tmp_path / "monitor.toml", data)
    assert_one_line_error(
        run_cli("config", "check", path), "volumes[1].name: volume 'soyuz om': use 1-64"
    )
    del data["station"]  # without [station] such a name is fine
    write_toml(path, data)
    assert run_cli("config", "check", path).returncode == 0


# -- the session file -----------------------------------------------------------


def test_session_grows_and_is_replaced_atomically(tmp_path):
    path = tmp_path / "d" / "station-session"
    got = [next_session(path, lambda: 1.7e9) for _ in range(3)]
    assert [g.session for g in got] == [1, 2, 3] and all(g.problem is None for g in got)
    assert path.read_text() == "3\n" and read_session(path) == 3
    assert sorted(os.listdir(path.parent)) == ["station-session"]  # no temporary left


def test_unreadable_session_falls_back_to_unix_time(tmp_path):
    path = tmp_path / "station-session"
    path.write_text("garbage")
    got = next_session(path, lambda: 1_796_000_000.5)
    assert got.session == 1_796_000_000 and "cannot read" in got.problem
    assert next_session(path, lambda: 0.0).session == 1_796_000_001  # grows from there


def test_unwritable_session_still_grows(tmp_path, monkeypatch):
    """A read-only or full disk: the session is the Unix time, larger than the file's."""
    from firmware_host.runtime import station_session

    path = tmp_path / "station-session"
    path.write_text("41\n")

    def full(path, session):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(station_session, "write_session", full)
    got = station_session.next_session(path, lambda: 1_796_000_000.0)
    assert got.session == 1_796_000_000
    assert got.problem == f"cannot write {path} (No space left on device)"
    assert path.read_text() == "41\n"
