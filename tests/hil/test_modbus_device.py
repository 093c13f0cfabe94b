"""The emulated Modbus transmitter and line (``hil.modbus_device``), and the emulator
with a ``protocol = "modbus"`` link: register maps, exceptions, framing, echo,
broadcast, and answers from the same physics and faults."""

from __future__ import annotations

import math
import struct

import pytest

from common.errors import ConfigError
from drivers.modbus import adapter, fast
from drivers.modbus.fast import MatchStatus
from drivers.modbus.layout import KELLER, layouts_from_options
from drivers.protocol import Status
from harness.derive import link_tables
from hil.emulator import Emulator
from hil.modbus_device import Conversion, ModbusDevice, ModbusLine
from hil.scenario import parse_scenario

H = bytes.fromhex
GENERIC = {
    "pressure": {"register": 0x10, "function": 4, "type": "int32", "word_order": "little",
                 "scale": 0.01, "unit": "hPa"},
    "temperature": {"register": 0x20, "function": 4, "type": "int16", "scale": 0.1,
                    "unit": "K"},
}  # fmt: skip


def _keller(p_pa=96_050.8, t_c=22.7637, status=0):
    d = ModbusDevice(1, KELLER, 0.0, 200_000.0)
    d.latest = Conversion(p_pa, t_c, status)
    return d


def _ask(line, req, t=0.0):
    return b"".join(line.feed(req, t))


def _floats(reply: bytes) -> list[float]:
    m = fast.match_reply(reply, reply[0], reply[1], reply[2] // 2)
    assert m.status is MatchStatus.REPLY, reply.hex(" ")
    return [struct.unpack(">f", m.data[i : i + 4])[0] for i in range(0, len(m.data), 4)]


def _code(reply: bytes) -> int:
    m = fast.match_reply(reply, reply[0], reply[1] & 0x7F, 1)
    assert m.status is MatchStatus.EXCEPTION, reply.hex(" ")
    return m.code


def test_the_keller_map_answers_the_published_requests():
    line = ModbusLine([_keller()])
    p, t = _floats(_ask(line, H("01 03 01 00 00 04 45 F5")))
    assert p == pytest.approx(0.960508, abs=1e-6) and t == pytest.approx(22.7637, abs=1e-4)
    assert _floats(_ask(line, H("01 03 00 02 00 02 65 CB")))[0] == pytest.approx(0.960508)
    assert _floats(_ask(line, H("01 03 00 08 00 02 45 C9")))[0] == pytest.approx(22.7637)
    assert math.isnan(_floats(_ask(line, H("01 03 00 04 00 02 85 CA")))[0])  # P2: not fitted
    rep = _ask(line, fast.read_request(1, 3, 0x020C, 4))
    assert adapter.parse_reply(rep)[2] == [0, 1, 5 << 8 | 20, 5 << 8 | 50]
    assert line.counters.frames == line.counters.replies == 5


@pytest.mark.parametrize(
    ("req", "code"),
    [
        (fast.frame(1, 6, H("00 02 00 01")), 1),  # write single register: not supported
        (fast.frame(1, 0x2B, H("0E 01 00")), 1),  # device identification: not supported
        (fast.read_request(1, 4, 0x0100, 4), 2),  # KELLER: no input registers here
        (fast.read_request(1, 3, 0x0101, 2), 2),  # odd start: inside P1
        (fast.read_request(1, 3, 0x0100, 3), 2),  # ends inside TOB1
        (fast.read_request(1, 3, 0x0100, 6), 2),  # more than max_registers (4)
        (fast.read_request(1, 3, 0x0300, 2), 2),  # outside the map
        (fast.read_request(1, 3, 0x0100, 0), 3),  # no registers
        (fast.read_request(1, 3, 0x0100, 126), 3),  # more than Modbus allows
    ],
)
def test_exceptions(req, code):
    line = ModbusLine([_keller()])
    assert _code(_ask(line, req)) == code
    assert line.counters.exceptions == 1


def test_silence_on_bad_crc_wrong_address_broadcast_and_garbage():
    line = ModbusLine([_keller()])
    req = H("01 03 01 00 00 04 45 F5")
    assert _ask(line, req[:-2] + req[-1:] + req[-2:-1]) == b""  # CRC high byte first
    assert _ask(line, fast.read_request(2, 3, 0x0100, 4), t=1.0) == b""  # not on the line
    assert _ask(line, fast.read_request(0, 3, 0x0100, 4), t=2.0) == b""  # broadcast
    assert line.counters.broadcasts == 1 and line.counters.not_for_us == 1
    assert line.counters.bad_frames >= 1
    # noise before a request: dropped byte by byte, the request still answered
    assert len(_floats(_ask(line, H("FF 00 13") + req, t=3.0))) == 2


def test_a_request_in_pieces_and_the_gap_that_drops_a_partial_one():
    line = ModbusLine([_keller()], gap_s=0.05)
    req = H("01 03 01 00 00 04 45 F5")
    assert line.feed(req[:3], 0.0) == []
    assert len(_floats(b"".join(line.feed(req[3:], 0.01)))) == 2
    assert line.feed(req[:3], 1.0) == []
    assert line.feed(req[3:], 2.0) == []  # the gap ended the first part: garbage now
    assert line.counters.bad_frames >= 1


def test_echo_comes_first():
    line = ModbusLine([_keller()], echo=True)
    req = H("01 03 00 02 00 02 65 CB")
    out = _ask(line, req)
    assert out[:8] == req and fast.match_reply(out, 1, 3, 2, start=8).status is MatchStatus.REPLY


def test_values_out_of_range_and_faults():
    line = ModbusLine([_keller(p_pa=250_000.0)])
    assert _floats(_ask(line, H("01 03 00 02 00 02 65 CB")))[0] == math.inf
    d = _keller(p_pa=-30_000.0)
    assert _floats(_ask(ModbusLine([d]), H("01 03 00 02 00 02 65 CB")))[0] == -math.inf
    d = _keller(status=int(Status.PRESSURE_OUT_OF_RANGE | Status.TEMPERATURE_OUT_OF_RANGE))
    p, t = _floats(_ask(ModbusLine([d]), H("01 03 01 00 00 04 45 F5")))
    assert math.isnan(p) and math.isnan(t)


def test_a_generic_layout_map():
    layout = layouts_from_options(GENERIC)[0]
    d = ModbusDevice(5, layout)
    d.latest = Conversion(101_325.0, 21.0, 0)
    line = ModbusLine([d])
    regs = adapter.parse_reply(_ask(line, fast.read_request(5, 4, 0x10, 2)))[2]
    assert regs[1] << 16 | regs[0] == 101_325  # 0.01 hPa, low word first
    regs = adapter.parse_reply(_ask(line, fast.read_request(5, 4, 0x20, 1)))[2]
    assert abs(regs[0] - (21.0 + 273.15) * 10) <= 0.5  # 0.1 K
    assert _code(_ask(line, fast.read_request(5, 3, 0x10, 2))) == 2  # holding: none
    assert _code(_ask(line, fast.read_request(5, 4, 0x11, 1))) == 2  # inside the int32
    assert _code(_ask(line, fast.read_request(5, 4, 0x10, 3))) == 2  # a gap


# -- the emulator with a modbus link ------------------------------------------------------


def modbus_scenario(link_extra=None, faults=()):
    data = {
        "scenario": {"duration": "1h", "seed": 5},
        "volumes": [{"name": "lab", "volume_m3": 100.0}],
        "links": [{"name": "bus0", "protocol": "modbus", "baud": 19200, **(link_extra or {})}],
        "sensors": [
            {"name": f"m{a}", "addr": a, "volume": "lab", "rate_hz": 10.0, "boot_s": 0.5}
            for a in (1, 2)
        ],
        "faults": list(faults),
    }
    return parse_scenario(data, "modbus.toml")


def ask(emu, req, dt=0.05):
    emu.receive("bus0", req)
    return emu.advance(emu.t_s + dt)["bus0"]


def test_a_modbus_link_never_streams_and_answers_from_the_physics():
    sc = modbus_scenario()
    assert sc.links[0].options == {"preset": "keller"}  # the default
    emu = Emulator(sc)
    assert emu.advance(10.0)["bus0"] == b""  # no SAMPLE stream
    assert not emu.can_look_ahead()
    p_bar, t_c = _floats(ask(emu, H("01 03 01 00 00 04 45 F5")))
    assert p_bar * 1e5 == pytest.approx(emu.truth().volumes["lab"].p_pa, abs=50)
    assert -20.0 < t_c < 60.0
    assert emu.commands_in["bus0"] == 1


def test_a_scenario_layout_reaches_the_devices_and_the_derived_configuration():
    extra = {"preset": "keller", "devices": {"2": GENERIC}}
    sc = modbus_scenario(extra)
    emu = Emulator(sc)
    emu.advance(5.0)
    assert len(_floats(ask(emu, fast.read_request(1, 3, 0x0100, 4)))) == 2
    regs = adapter.parse_reply(ask(emu, fast.read_request(2, 4, 0x10, 2)))[2]
    assert (regs[1] << 16 | regs[0]) == pytest.approx(emu.truth().volumes["lab"].p_pa, abs=5_000)
    table = link_tables(sc, {"bus0": "socket://127.0.0.1:1"})["bus0"]
    assert table["driver"] == "modbus" and table["preset"] == "keller"
    assert table["devices"]["2"]["pressure"]["type"] == "int32"


def test_a_silent_device_does_not_answer():
    faults = [{"sensor": "m2", "kind": "dropout", "start": "20s", "duration": "30s"}]
    emu = Emulator(modbus_scenario(faults=faults))
    emu.advance(25.0)
    assert ask(emu, fast.read_request(2, 3, 0x0100, 4)) == b""
    emu.advance(60.0)
    assert len(_floats(ask(emu, fast.read_request(2, 3, 0x0100, 4)))) == 2


def test_scenario_link_mistakes_name_the_key():
    with pytest.raises(ConfigError, match=r"links\[0\]\.preset.*unknown preset"):
        modbus_scenario({"preset": "acme"})
    with pytest.raises(ConfigError, match=r"links\[0\]\.pressure\.register"):
        modbus_scenario({"pressure": {"register": -1}, "temperature": {"register": 2}})
