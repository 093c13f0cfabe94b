"""Bad ground configuration (``[outputs] ccsds*``): one line naming the key, exit 2,
from ``config check`` and from ``monitor`` (before it touches a port)."""

from __future__ import annotations

import copy

import pytest

from firmware_host.cli import main
from firmware_host.runtime.runconfig import load_runtime_config
from tests.runtime.test_runtime_config import _good
from tests.support.runtime_helpers import assert_one_line_error, run_cli, write_toml


def _ground() -> dict:
    data = _good()
    data["outputs"].update(
        ccsds=["udp://127.0.0.1:10015", "tcp://127.0.0.1:10016", "p.bin"],
        ccsds_rate_hz=2.0,
        ccsds_apid_hk=100,
        ccsds_apid_events=101,
    )
    return data


def test_good_ground_config(tmp_path, capsys):
    path = write_toml(tmp_path / "g.toml", _ground())
    assert main(["config", "check", str(path)]) == 0
    out = capsys.readouterr().out
    assert "ccsds: udp://127.0.0.1:10015, tcp://127.0.0.1:10016, p.bin; HK 2 Hz" in out
    o = load_runtime_config(path).outputs
    assert (o.ccsds_apid_hk, o.ccsds_apid_events, o.ccsds_rate_hz) == (100, 101, 2.0)
    data = _ground()
    data["outputs"]["ccsds"] = "udp://127.0.0.1:1"  # one URL as a string
    assert load_runtime_config(write_toml(tmp_path / "one.toml", data)).outputs.ccsds == (
        "udp://127.0.0.1:1",
    )


def _set(key, value):
    def mutate(d):
        d["outputs"][key] = value

    return mutate


BAD = [
    ("apid-2048", _set("ccsds_apid_hk", 2048), "outputs.ccsds_apid_hk", "0..2046"),
    ("apid-idle", _set("ccsds_apid_events", 2047), "outputs.ccsds_apid_events", "0..2046"),
    ("apid-negative", _set("ccsds_apid_hk", -1), "outputs.ccsds_apid_hk", "0..2046"),
    ("apid-same", _set("ccsds_apid_events", 100), "outputs.ccsds_apid_events", "differ"),
    ("scheme", _set("ccsds", ["http://127.0.0.1:80"]), "outputs.ccsds", "unknown scheme"),
    ("no-port", _set("ccsds", "udp://127.0.0.1"), "outputs.ccsds", "HOST:PORT"),
    ("not-a-url", _set("ccsds", 5), "outputs.ccsds", "URL"),
    ("rate-zero", _set("ccsds_rate_hz", 0), "outputs.ccsds_rate_hz", "> 0"),
    ("rate-huge", _set("ccsds_rate_hz", 1e6), "outputs.ccsds_rate_hz", ""),
    ("rate-text", _set("ccsds_rate_hz", "fast"), "outputs.ccsds_rate_hz", "number"),
]


@pytest.mark.parametrize(("name", "mutate", "key", "words"), BAD, ids=[b[0] for b in BAD])
def test_bad_ground_config_one_line(tmp_path, capsys, name, mutate, key, words):
    data = _ground()
    mutate(data)
    path = write_toml(tmp_path / f"{name}.toml", data)
    code = main(["config", "check", str(path)])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"cabinwatch config: {path}: {key}: "), err
    assert words in lines[0]


@pytest.mark.slow
@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", [BAD[0], BAD[4], BAD[7]], ids=lambda b: b[0])
def test_monitor_with_bad_ground_config(tmp_path, case):
    _, mutate, key, _ = case
    data = copy.deepcopy(_ground())
    mutate(data)
    path = write_toml(tmp_path / "bad.toml", data)
    proc = run_cli(
        "monitor", "--config", path, "--duration", "1", "--no-display", cwd=tmp_path, timeout=30
    )
    line = assert_one_line_error(proc, str(path), key)
    assert line.startswith(f"cabinwatch monitor: {path}: {key}: ")
    assert proc.stdout == "" and not (tmp_path / "out").exists()


def test_xtce_with_bad_config_one_line(tmp_path, capsys):
    data = _ground()
    data["outputs"]["ccsds_apid_hk"] = 4096
    path = write_toml(tmp_path / "bad.toml", data)
    assert main(["xtce", "--config", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1 and "outputs.ccsds_apid_hk" in err
