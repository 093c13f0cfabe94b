"""The emulator with a ``protocol = "digiquartz"`` link: devices answer from the same
physics and faults in their unit, stream P4/P7 through ``emit`` when asked, stop
on any new command and on a reboot; the link's keys are checked."""

from __future__ import annotations

import pytest

from common.errors import ConfigError
from drivers.digiquartz import wire
from drivers.digiquartz.values import pa_per_unit
from hil.emulator import Emulator
from hil.scenario import parse_scenario


def dq_scenario(faults=(), **link):
    data = {
        "scenario": {"duration": "1h", "seed": 5},
        "volumes": [{"name": "lab", "volume_m3": 100.0}],
        "links": [{"name": "bus0", "protocol": "digiquartz", "baud": 9600, **link}],
        "sensors": [
            {"name": f"d{a}", "addr": a, "volume": "lab", "rate_hz": 5.0, "boot_s": 0.5}
            for a in (1, 2)
        ],
        "faults": list(faults),
    }
    return parse_scenario(data, "dq.toml")


def ask(emu, req, dt=0.05):
    emu.receive("bus0", req)
    return emu.advance(emu.t_s + dt)["bus0"]


def lines(data):
    out, pos = [], 0
    while pos < len(data):
        ln = wire.scan_line(data, pos)
        assert ln.kind is wire.LineKind.LINE, data[pos:]
        out.append(ln)
        pos += ln.size
    return out


def test_answers_from_the_physics_in_its_unit_and_never_streams_unasked():
    emu = Emulator(dq_scenario(unit="hPa"))
    assert emu.advance(10.0)["bus0"] == b""
    assert not emu.can_look_ahead()
    (ln,) = lines(ask(emu, wire.command(1, "P3")))
    assert (ln.dest, ln.src) == (0, 1)
    p_pa = wire.parse_number(ln.payload) * pa_per_unit(2)
    assert p_pa == pytest.approx(emu.truth().volumes["lab"].p_pa, abs=50)
    (ln,) = lines(ask(emu, wire.command(2, "Q3")))
    assert ln.src == 2 and -20.0 < wire.parse_number(ln.payload) < 60.0
    (ln,) = lines(ask(emu, wire.command(1, "SN")))
    assert wire.parse_parameter(ln.payload, "SN") == str(emu.sensors[0].cfg.serial)
    assert [x.payload for x in lines(ask(emu, wire.command(99, "UN")))] == [b"UN=2", b"UN=2"]
    assert emu.commands_in["bus0"] == 4


def test_p4_streams_on_advance_until_a_new_command():
    emu = Emulator(dq_scenario(pressure_integration_ms=100, temperature_integration_ms=100))
    emu.advance(5.0)
    ask(emu, wire.command(1, "P4"), dt=0.001)
    out = lines(emu.advance(emu.t_s + 1.0)["bus0"])  # every 200 ms
    assert len(out) == 5 and {x.src for x in out} == {1}
    assert lines(ask(emu, wire.command(1, "UN")))[0].payload == b"UN=1"
    assert emu.advance(emu.t_s + 2.0)["bus0"] == b""


def test_a_reboot_stops_the_output_and_a_dropout_is_silent():
    faults = [
        {"sensor": "d1", "kind": "reboot", "start": "20s"},
        {"sensor": "d2", "kind": "dropout", "start": "20s", "duration": "30s"},
    ]
    emu = Emulator(dq_scenario(faults=faults))
    emu.advance(10.0)
    emu.receive("bus0", wire.command(99, "P7"))
    assert {x.src for x in lines(emu.advance(15.0)["bus0"])} == {1, 2}
    emu.advance(25.0)
    assert emu.advance(30.0)["bus0"] == b""  # 1 rebooted (stopped), 2 unpowered
    assert ask(emu, wire.command(2, "P3")) == b""
    emu.advance(60.0)
    assert {x.src for x in lines(emu.advance(61.0)["bus0"])} == {2}  # 2 streams again


@pytest.mark.parametrize(
    ("link", "needle"),
    [
        ({"unit": "torr"}, "unknown unit 'torr'"),
        ({"pressure_integration_ms": 0}, "pressure_integration_ms"),
        ({"echo": True, "mode": "x"}, "unknown key"),
    ],
)
def test_scenario_link_keys_are_checked(link, needle):
    with pytest.raises(ConfigError, match=needle):
        dq_scenario(**link)


def test_a_sensor_id_above_98_is_refused_in_the_scenario():
    data = {
        "scenario": {"duration": "1h"},
        "volumes": [{"name": "lab", "volume_m3": 100.0}],
        "links": [{"name": "bus0", "protocol": "digiquartz"}],
        "sensors": [{"addr": 99, "volume": "lab"}],
    }
    with pytest.raises(ConfigError, match=r"sensors\[0\]\.addr: must be in 1..98 on a digiquartz"):
        parse_scenario(data, "dq.toml")
