"""KELLER link configuration: the example passes, mistakes are one line and exit 2."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support.runtime_helpers import assert_one_line_error, run_cli

pytestmark = pytest.mark.timeout(120)

EXAMPLE = Path(__file__).resolve().parents[2] / "firmware_host/examples/keller-rs485.toml"


def _variant(tmp_path, *subs: tuple[str, str], extra: str = "") -> Path:
    text = EXAMPLE.read_text(encoding="utf-8")
    for old, new in subs:
        assert re.search(old, text, flags=re.M), old
        text = re.sub(old, new, text, count=1, flags=re.M)
    p = tmp_path / "k.toml"
    p.write_text(text + extra, encoding="utf-8")
    return p


def test_the_keller_example_is_accepted():
    proc = run_cli("config", "check", EXAMPLE)
    assert proc.returncode == 0, proc.stderr
    assert (
        "driver keller; 3 sensors x 2 reads need 102.5 ms per 200 ms cycle (51 % of the line)"
        in (proc.stdout)
    )


@pytest.mark.parametrize(
    ("subs", "needles"),
    [
        ((('driver = "keller"', 'driver = "profibus"'),), ("links.rs485.driver", "profibus")),
        ((("^addr = 1 ", "addr = 0 "),), ("addr", "must be")),
        ((("^addr = 1 ", "addr = 251 "),), ("addr", "must be")),
        ((("^addr = 2$", "addr = 1"),), ("duplicate sensor rs485:1",)),
        ((("^addr = 1 ", "addr = 250 "),), ("250", "only alone", "rs485 has 2 other")),
        (
            (("^baudrate = 9600", "baudrate = 2400"),),
            ("rs485: 3 sensors x 2 reads at 5 Hz", "> 200 ms at 2400 baud"),
        ),
        ((('driver = "keller"', 'driver = "native"'),), ("echo", "only for a polled link")),
        (
            (
                ('driver = "keller"', 'driver = "native"'),
                ("^echo = true.*$", ""),
                ("^reply_timeout_s.*$", ""),
                ("^addr = 1 ", "addr = 248 "),
            ),
            ("sensors[0].addr", "must be in 1..247 on a native link (got 248)"),
        ),
    ],
)
def test_config_errors_are_one_line_exit_2(tmp_path, subs, needles):
    proc = run_cli("config", "check", _variant(tmp_path, *subs))
    assert_one_line_error(proc, *needles)


def test_250_alone_on_its_line_is_accepted(tmp_path):
    p = _variant(
        tmp_path,
        ("^addr = 1 ", "addr = 250 "),
        ('^link = "rs485"\naddr = 2$', 'link = "bus1"\naddr = 2'),
        ('^link = "rs485"\naddr = 3$', 'link = "bus1"\naddr = 3'),
        extra='\n[links.bus1]\nurl = "/dev/ttyUSB1"\nbaudrate = 9600\ndriver = "keller"\n',
    )
    proc = run_cli("config", "check", p)
    assert proc.returncode == 0, proc.stderr
    assert "link bus1" in proc.stdout and "link rs485" in proc.stdout


def test_simulate_refuses_a_keller_scenario_in_one_line(tmp_path):
    sc = tmp_path / "k.toml"
    sc.write_text(
        '[scenario]\nduration = "1min"\n[[volumes]]\nname = "lab"\nvolume_m3 = 10\n'
        '[[links]]\nname = "bus0"\nprotocol = "keller"\n'
        '[[sensors]]\naddr = 1\nvolume = "lab"\n',
        encoding="utf-8",
    )
    proc = run_cli("simulate", sc)
    assert_one_line_error(proc, "links.bus0.protocol", "polled in real time")
