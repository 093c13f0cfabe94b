"""KELLER link configuration: the example passes, mistakes are one line and exit 2."""

from __future__ import annotations

import json
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


def _keller_scenario(tmp_path, sensors: int = 1, baud: int = 115200):
    sc = tmp_path / "k.toml"
    sc.write_text(
        '[scenario]\nduration = "1min"\n[[volumes]]\nname = "lab"\nvolume_m3 = 10\n'
        f'[[links]]\nname = "bus0"\nprotocol = "keller"\nbaud = {baud}\n'
        + "".join(
            f'[[sensors]]\naddr = {a}\nvolume = "lab"\nrate_hz = 10\n'
            for a in range(1, sensors + 1)
        ),
        encoding="utf-8",
    )
    return sc


@pytest.mark.slow
def test_simulate_polls_a_keller_scenario(tmp_path):
    proc = run_cli("simulate", _keller_scenario(tmp_path), "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.splitlines()[-1])
    bus = summary["counters"]["polled"]["bus0"]
    assert bus["samples"] == 600 and bus["timeouts"] == 0
    assert [d["addr"] for d in bus["identified"]] == [1]
    text = run_cli("simulate", _keller_scenario(tmp_path))
    assert text.returncode == 0, text.stderr
    assert "polled link bus0 at 115200 baud: 1204 transactions, 0 timeouts" in text.stdout


@pytest.mark.slow
def test_simulate_protocol_mistakes_are_one_line(tmp_path):
    proc = run_cli("simulate", "soyuz-ms09-2018", "--protocol", "can")
    assert_one_line_error(proc, "--protocol", "unknown protocol 'can'", "keller")
    native = _keller_scenario(tmp_path, sensors=4, baud=9600)
    native.write_text(native.read_text().replace('protocol = "keller"\n', ""))
    proc = run_cli("simulate", native, "--protocol", "keller")
    assert_one_line_error(proc, "--protocol keller", "bus0: 4 sensors x 2 reads at 10 Hz need")
