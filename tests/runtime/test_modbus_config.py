"""Modbus link configuration: the example passes, mistakes are one line and exit 2,
and a scenario's layout goes through the derived configuration unchanged."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from common.errors import ConfigError
from firmware_host.runtime.runconfig import load_runtime_config, runtime_from_monitor
from harness.derive import config_from_scenario, link_tables
from hil.scenario import parse_scenario
from tests.support.runtime_helpers import assert_one_line_error, run_cli

pytestmark = pytest.mark.timeout(120)

EXAMPLE = Path(__file__).resolve().parents[2] / "firmware_host/examples/modbus-rs485.toml"


def _variant(tmp_path, *subs: tuple[str, str], extra: str = "") -> Path:
    text = EXAMPLE.read_text(encoding="utf-8")
    for old, new in subs:
        assert re.search(old, text, flags=re.M), old
        text = re.sub(old, new, text, count=1, flags=re.M)
    p = tmp_path / "m.toml"
    p.write_text(text + extra, encoding="utf-8")
    return p


def test_the_modbus_example_is_accepted():
    proc = run_cli("config", "check", EXAMPLE)
    assert proc.returncode == 0, proc.stderr
    assert "driver modbus; 2 sensors x 2 reads need 48.6 ms per 200 ms cycle" in proc.stdout


@pytest.mark.parametrize(
    ("subs", "needles"),
    [
        ((('driver = "modbus"', 'driver = "profibus"'),), ("links.rs485.driver", "profibus")),
        ((("^addr = 1 ", "addr = 248 "),), ("sensors[0].addr", "1..247 on a modbus link")),
        ((("^addr = 2$", "addr = 1"),), ("duplicate sensor rs485:1",)),
        (
            (("^register = 0x0010 .*$", "register = 70000"),),
            ("links.rs485.devices.2.pressure.register", "0..65535"),
        ),
        (
            (("^function = 4 .*$", "function = 6"),),
            ("links.rs485.devices.2.pressure.function", "3 (holding) or 4"),
        ),
        (
            (('^type = "int32"', 'type = "float64"'),),
            ("links.rs485.devices.2.pressure.type", "unknown type"),
        ),
        (
            (('^unit = "hPa"', 'unit = "inHg"'),),
            ("links.rs485.devices.2.pressure.unit", "unknown pressure unit"),
        ),
        (
            (('^preset = "keller".*$', 'preset = "acme"'),),
            ("links.rs485.preset", "unknown preset"),
        ),
        (
            (('^preset = "keller".*$', ""),),
            ("links.rs485.preset", "missing"),
        ),
        (
            (("^max_registers = 4 .*$", "max_registers = 1"),),
            ("max_registers", "needs 2 registers"),
        ),
        (
            (("^baudrate = 19200", "baudrate = 1200"),),
            ("rs485: 2 sensors x 2 reads at 5 Hz", "> 200 ms at 1200 baud"),
        ),
        ((("^scale = 0.01 .*$", "scale = 0.01\nbits = 32"),), ("bits", "unknown key")),
        (
            (("^addr = 2$", "addr = 3"),),
            ("links.rs485.devices.2", "no sensor at address 2 on rs485"),
        ),
        (
            (('driver = "modbus"', 'driver = "native"'), ("^reply_timeout_s.*$", "")),
            ("links.rs485.preset", "unknown key"),
        ),
    ],
)
def test_config_errors_are_one_line(tmp_path, subs, needles):
    with pytest.raises(ConfigError) as ei:
        load_runtime_config(_variant(tmp_path, *subs))
    msg = str(ei.value)
    assert "\n" not in msg
    for n in needles:
        assert n in msg, (n, msg)


def test_config_check_exits_2_with_one_line(tmp_path):
    p = _variant(tmp_path, ("^register = 0x0010 .*$", "register = 70000"))
    proc = run_cli("config", "check", p)
    assert_one_line_error(proc, "links.rs485.devices.2.pressure.register", "0..65535")


SCENARIO = {
    "scenario": {"duration": "1h", "seed": 5},
    "volumes": [{"name": "lab", "volume_m3": 100.0}],
    "links": [
        {
            "name": "bus0",
            "protocol": "modbus",
            "echo": True,
            "preset": "keller",
            "devices": {
                "2": {
                    "pressure": {"register": 16, "function": 4, "type": "int32", "unit": "hPa"},
                    "temperature": {"register": 32, "function": 4, "type": "int16"},
                }
            },
        }
    ],
    "sensors": [{"name": f"m{a}", "addr": a, "volume": "lab", "rate_hz": 5.0} for a in (1, 2)],
}


def test_a_scenario_layout_derives_a_configuration_that_validates_the_same():
    sc = parse_scenario(SCENARIO, "m.toml")
    tables = link_tables(sc, {"bus0": "socket://127.0.0.1:7000"})
    monitor = config_from_scenario(sc)
    monitor = dataclasses.replace(monitor, extra={"links": tables})
    rc = runtime_from_monitor(monitor)
    link = rc.links["bus0"]
    assert link.driver == "modbus" and link.echo
    assert link.options == sc.links[0].options
