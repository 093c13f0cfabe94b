"""Digiquartz link configuration: the example passes ``cabinwatch config check``;
mistakes are one line (checked in process, and once through the CLI: exit 2)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from common.errors import ConfigError
from firmware_host.runtime.runconfig import load_runtime_config
from tests.support.runtime_helpers import assert_one_line_error, run_cli

pytestmark = pytest.mark.timeout(120)

EXAMPLE = Path(__file__).resolve().parents[2] / "firmware_host/examples/digiquartz-rs485.toml"


def _variant(tmp_path, *subs: tuple[str, str], extra: str = "") -> Path:
    text = EXAMPLE.read_text(encoding="utf-8")
    for old, new in subs:
        assert re.search(old, text, flags=re.M), old
        text = re.sub(old, new, text, count=1, flags=re.M)
    p = tmp_path / "dq.toml"
    p.write_text(text + extra, encoding="utf-8")
    return p


def test_the_digiquartz_example_is_accepted():
    proc = run_cli("config", "check", EXAMPLE)
    assert proc.returncode == 0, proc.stderr
    assert (
        "driver digiquartz; 3 sensors x 2 reads need 768.5 ms per 1000 ms cycle (77 % of the line)"
        in proc.stdout
    )


def test_a_continuous_variant_is_accepted(tmp_path):
    p = _variant(tmp_path, ('^mode = "polled"', 'mode = "continuous"\ncommand = "P4"'))
    link = load_runtime_config(p).links["rs485"]
    assert link.options == {
        "unit": "hPa",
        "mode": "continuous",
        "command": "P4",
        "pressure_integration_ms": 100,
        "temperature_integration_ms": 50,
    }


def test_a_config_error_is_one_line_exit_2_from_the_cli(tmp_path):
    proc = run_cli("config", "check", _variant(tmp_path, ('^unit = "hPa"', 'unit = "torr"')))
    assert_one_line_error(proc, "links.rs485.unit", "unknown unit 'torr'", "psi, hPa, bar")


@pytest.mark.parametrize(
    ("subs", "needles"),
    [
        ((('^unit = "hPa"', 'unit = "torr"'),), ("links.rs485.unit", "unknown unit 'torr'")),
        ((("^addr = 1 ", "addr = 99 "),), ("sensors[0].addr", "1..98 on a digiquartz link")),
        ((("^addr = 1 ", "addr = 0 "),), ("addr", "must be")),
        ((("^addr = 2$", "addr = 1"),), ("duplicate sensor rs485:1",)),
        ((('^mode = "polled"', 'mode = "burst"'),), ("links.rs485.mode", "unknown mode")),
        (
            (('^mode = "polled"', 'mode = "polled"\ncommand = "P4"'),),
            ("links.rs485.command", 'only with mode = "continuous"'),
        ),
        (
            (('^mode = "polled"', 'mode = "continuous"\ncommand = "P3"'),),
            ("links.rs485.command", "unknown command 'P3'"),
        ),
        (
            (("^pressure_integration_ms = 100", "pressure_integration_ms = 400"),),
            ("rs485: 3 sensors x 2 reads at 1 Hz need", "> 1000 ms at 9600 baud"),
        ),
        (
            (
                ('^mode = "polled"', 'mode = "continuous"\ncommand = "P4"'),
                ("^pressure_integration_ms = 100", "pressure_integration_ms = 1000"),
            ),
            ("rs485: P4 outputs every 1050 ms", "slower than 1 Hz"),
        ),
        (
            (("^temperature_integration_ms = 50", "temperature_integration_ms = 0"),),
            ("links.rs485.temperature_integration_ms", "must be"),
        ),
        (
            (('driver = "digiquartz"', 'driver = "keller"'),),
            ("links.rs485", "unknown key"),
        ),
    ],
)
def test_config_errors_are_one_line(tmp_path, subs, needles):
    with pytest.raises(ConfigError) as exc:
        load_runtime_config(_variant(tmp_path, *subs))
    msg = str(exc.value)
    assert "\n" not in msg
    for n in needles:
        assert n in msg, (n, msg)
