"""The emulator with a ``protocol = "keller"`` link: devices answer requests from the
same physics and faults, never stream, lose their initialisation on a reboot."""

from __future__ import annotations

import pytest

from common.errors import ConfigError
from drivers.keller import fast
from drivers.keller.fast import MatchStatus
from hil.emulator import Emulator
from hil.scenario import parse_scenario

H = bytes.fromhex


def keller_scenario(echo=False, faults=()):
    data = {
        "scenario": {"duration": "1h", "seed": 5},
        "volumes": [{"name": "lab", "volume_m3": 100.0}],
        "links": [{"name": "bus0", "protocol": "keller", "echo": echo, "baud": 9600}],
        "sensors": [
            {"name": f"k{a}", "addr": a, "volume": "lab", "rate_hz": 10.0, "boot_s": 0.5}
            for a in (1, 2)
        ],
        "faults": list(faults),
    }
    return parse_scenario(data, "keller.toml")


def ask(emu, req, dt=0.05):
    emu.receive("bus0", req)
    return emu.advance(emu.t_s + dt)["bus0"]


def test_a_keller_link_never_streams_and_answers_from_the_physics():
    emu = Emulator(keller_scenario())
    assert emu.advance(10.0)["bus0"] == b""  # no SAMPLE stream
    assert not emu.can_look_ahead()
    assert ask(emu, H("01 49 01 50 D6")) == H("01 C9 20 88 77")  # exception 32 before F48
    rep = ask(emu, H("01 30 34 00"))
    assert fast.f48_identity(fast.match_reply(rep, 1, 48).data)[5] == 0  # first access
    m = fast.match_reply(ask(emu, H("01 49 01 50 D6")), 1, 73)
    p_bar, stat = fast.f73_value(m.data)
    assert stat == 0
    assert p_bar * 1e5 == pytest.approx(emu.truth().volumes["lab"].p_pa, abs=50)
    m = fast.match_reply(ask(emu, fast.request(1, 73, b"\x04")), 1, 73)
    t_c, _ = fast.f73_value(m.data)
    assert -20.0 < t_c < 60.0
    sn = fast.f69_serial(fast.match_reply(ask(emu, H("01 45 D3 C1")), 1, 69).data)
    assert sn == emu.sensors[0].cfg.serial
    assert emu.commands_in["bus0"] == 5


def test_echo_comes_back_before_the_reply():
    emu = Emulator(keller_scenario(echo=True))
    emu.advance(5.0)
    out = ask(emu, H("01 30 34 00"))
    assert out[:4] == H("01 30 34 00")
    assert fast.match_reply(out, 1, 48, start=4).status is MatchStatus.REPLY


def test_a_reboot_fault_loses_the_initialisation_and_a_silent_device_does_not_answer():
    faults = [
        {"sensor": "k1", "kind": "reboot", "start": "20s"},
        {"sensor": "k2", "kind": "dropout", "start": "20s", "duration": "30s"},
    ]
    emu = Emulator(keller_scenario(faults=faults))
    emu.advance(10.0)
    ask(emu, H("01 30 34 00"))
    ask(emu, fast.request(2, 48))
    assert fast.match_reply(ask(emu, H("01 49 01 50 D6")), 1, 73).status is MatchStatus.REPLY
    emu.advance(25.0)
    assert ask(emu, H("01 49 01 50 D6")) == H("01 C9 20 88 77")
    rep = ask(emu, H("01 30 34 00"))
    assert fast.f48_identity(fast.match_reply(rep, 1, 48).data)[5] == 0  # power interruption
    assert ask(emu, fast.request(2, 73, b"\x01")) == b""  # silent
    emu.advance(60.0)
    assert fast.match_reply(ask(emu, fast.request(2, 73, b"\x01")), 2, 73).status is (
        MatchStatus.REPLY
    )


def test_unknown_protocol_and_echo_on_native_are_refused():
    base = {
        "scenario": {"duration": "1h"},
        "volumes": [{"name": "lab", "volume_m3": 100.0}],
        "sensors": [{"addr": 1, "volume": "lab"}],
    }
    with pytest.raises(ConfigError, match="unknown protocol"):
        parse_scenario({**base, "links": [{"name": "bus0", "protocol": "can"}]}, "x.toml")
    with pytest.raises(ConfigError, match="only for a polled link"):
        parse_scenario({**base, "links": [{"name": "bus0", "echo": True}]}, "x.toml")
