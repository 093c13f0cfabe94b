"""``cabinwatch config check`` and ``monitor --config``: one line naming file and key, exit 2."""

from __future__ import annotations

import copy
from importlib.resources import files

import pytest

from firmware_host.cli import main
from firmware_host.runtime.runconfig import load_runtime_config
from harness.derive import config_dict_from_scenario
from hil.scenario import load_scenario
from tests.support.runtime_helpers import assert_one_line_error, run_cli, to_toml, write_toml

EXAMPLE = str(files("firmware_host") / "examples" / "monitor.toml")


def _good() -> dict:
    data = config_dict_from_scenario(load_scenario("rapid-depress"))
    data["links"] = {"bus0": {"url": "socket://127.0.0.1:7000", "baudrate": 115200}}
    data["outputs"] = {"directory": "out", "telemetry": "", "telemetry_rate_hz": 2.0}
    data["display"] = {"enabled": False, "period_s": 0.5}
    return data


def _check(argv, capsys):
    """Run ``cabinwatch ARGV`` in this process: (exit code, stdout, stderr lines)."""
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err.splitlines()


def test_example_passes_without_links(capsys):
    code, out, err = _check(["config", "check", EXAMPLE, "--no-links"], capsys)
    assert code == 0 and err == []
    assert out.splitlines()[0] == f"{EXAMPLE}: OK"
    assert "station (900 m3)" in out and "5 on links" in out


def test_example_passes_the_monitors_full_check(capsys):
    code, out, err = _check(["config", "check", EXAMPLE], capsys)
    assert code == 0 and err == [], err
    assert "link bus0: /dev/ttyUSB0" in out


def test_monitor_needs_links(tmp_path, capsys):
    text = open(EXAMPLE, encoding="utf-8").read()
    no_runtime = text[: text.index("[links.bus0]")]
    path = tmp_path / "no-links.toml"
    path.write_text(no_runtime, encoding="utf-8")
    code, out, err = _check(["config", "check", str(path)], capsys)
    assert code == 2 and out == ""
    assert len(err) == 1 and str(path) in err[0] and ": links: " in err[0]


def test_good_config_with_links_passes(tmp_path, capsys):
    path = write_toml(tmp_path / "good.toml", _good())
    code, out, err = _check(["config", "check", str(path)], capsys)
    assert code == 0 and err == [], err
    assert "link bus0: socket://127.0.0.1:7000 at 115200 baud, driver native" in out
    rc = load_runtime_config(path)
    assert rc.outputs.telemetry_rate_hz == 2.0 and rc.display.period_s == 0.5
    assert str(rc.outputs.archive) == "out/archive.sqlite"


def _unknown_top(d):
    d["colour"] = "red"


def _sensor_without_link(d):
    d["sensors"].append({"link": "bus1", "addr": 1, "volume": "usos"})


def _link_without_url(d):
    d["links"]["bus0"] = {"baudrate": 9600}


def _unknown_driver(d):
    d["links"]["bus0"]["driver"] = "profibus"


def _bad_baudrate(d):
    d["links"]["bus0"]["baudrate"] = "fast"


def _zero_rate(d):
    d["outputs"]["telemetry_rate_hz"] = 0


def _slow_display(d):
    d["display"]["period_s"] = 5


def _unknown_output(d):
    d["outputs"]["colour"] = "red"


def _unused_link(d):
    d["links"]["bus9"] = {"url": "/dev/ttyUSB9"}


def _zero_baud(d):
    d["links"]["bus0"]["baudrate"] = 0


BAD = [
    ("unknown-top-level", _unknown_top, "colour"),
    ("sensor-link-without-table", _sensor_without_link, "sensors[5].link"),
    ("link-without-url", _link_without_url, "links.bus0.url"),
    ("unknown-driver", _unknown_driver, "links.bus0.driver"),
    ("baudrate-type", _bad_baudrate, "links.bus0.baudrate"),
    ("telemetry-rate-zero", _zero_rate, "outputs.telemetry_rate_hz"),
    ("display-period-5", _slow_display, "display.period_s"),
    ("unknown-output-key", _unknown_output, "outputs.colour"),
    ("link-no-sensor-uses", _unused_link, "links.bus9"),
    ("baudrate-zero", _zero_baud, "links.bus0.baudrate"),
]


@pytest.mark.parametrize(("name", "mutate", "key"), BAD, ids=[b[0] for b in BAD])
def test_bad_file_one_line_with_key(tmp_path, capsys, name, mutate, key):
    data = copy.deepcopy(_good())
    mutate(data)
    path = write_toml(tmp_path / f"{name}.toml", data)
    code, out, err = _check(["config", "check", str(path)], capsys)
    assert code == 2 and out == ""
    assert len(err) == 1, err
    assert err[0].startswith(f"cabinwatch config: {path}: {key}: "), err[0]


def test_toml_syntax_error(tmp_path, capsys):
    path = tmp_path / "syntax.toml"
    path.write_text(to_toml(_good()) + "\n[outputs\narchive = 'x'\n", encoding="utf-8")
    code, out, err = _check(["config", "check", str(path)], capsys)
    assert code == 2 and out == ""
    assert len(err) == 1 and err[0].startswith(f"cabinwatch config: {path}: (syntax): "), err


@pytest.mark.slow
def test_missing_file(tmp_path):
    missing = tmp_path / "missing.toml"
    proc = run_cli("config", "check", missing)
    line = assert_one_line_error(proc, str(missing))
    assert line.startswith(f"cabinwatch config: {missing}: (file): ")
    assert proc.stdout == ""


@pytest.mark.slow
@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("mutate", "key"), [(_unknown_driver, "links.bus0.driver"), (None, "(file)")]
)
def test_monitor_with_bad_config(tmp_path, mutate, key):
    """The monitor refuses a bad file before touching a port: one line, exit 2."""
    path = tmp_path / "bad.toml"
    if mutate is not None:
        data = copy.deepcopy(_good())
        mutate(data)
        write_toml(path, data)
    proc = run_cli(
        "monitor", "--config", path, "--duration", "1", "--no-display", cwd=tmp_path, timeout=30
    )
    line = assert_one_line_error(proc, str(path), key)
    assert line.startswith(f"cabinwatch monitor: {path}: {key}: ")
    assert proc.stdout == ""
    assert not (tmp_path / "out").exists()  # no archive, capture or socket was created
