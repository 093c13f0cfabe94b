"""The emulated KELLER transmitter and line: exception 32 until F48, STAT bits,
NaN/+-Inf, silence on bad frames, broadcast, transparent address, echo, reboot."""

from __future__ import annotations

import math

import pytest

from drivers.keller import fast
from drivers.keller.fast import MatchStatus
from drivers.keller.wire import Function, Stat
from drivers.protocol import Status
from hil.keller_device import Conversion, KellerDevice, KellerLine

H = bytes.fromhex


def _line(echo=False, n=1):
    devs = [
        KellerDevice(a, 12345678, 50_000.0, 110_000.0, firmware=(5, 20, 5, 50))
        for a in range(1, n + 1)
    ]
    for d in devs:
        d.latest = Conversion(101_325.0, 21.5, 0)
    return KellerLine(devs, echo=echo), devs


def _ask(line, req, t=0.0):
    return b"".join(line.feed(req, t))


def test_exception_32_until_f48_then_stat_0_then_1():
    line, _ = _line()
    assert _ask(line, H("01 49 01 50 D6")) == H("01 C9 20 88 77")  # derived vector
    assert _ask(line, H("01 30 34 00")) == H("01 30 05 14 05 32 0A 00 31 26")  # STAT 0
    assert _ask(line, H("01 30 34 00")) == H("01 30 05 14 05 32 0A 01 F1 E7")  # STAT 1
    assert _ask(line, H("01 45 D3 C1")) == H("01 45 00 BC 61 4E 45 A4")
    rep = _ask(line, fast.request(1, 73, b"\x01"))
    v, stat = fast.f73_value(fast.match_reply(rep, 1, 73).data)
    assert v == pytest.approx(1.01325, rel=1e-7) and stat == 0


def test_reboot_loses_initialisation():
    line, (dev,) = _line()
    _ask(line, H("01 30 34 00"))
    assert fast.match_reply(_ask(line, H("01 49 01 50 D6")), 1, 73).status is MatchStatus.REPLY
    dev.power_up()
    assert _ask(line, H("01 49 01 50 D6")) == H("01 C9 20 88 77")
    assert _ask(line, H("01 30 34 00"))[7] == 0  # STAT 0: power interruption evidence


def test_bad_crc_wrong_length_and_other_addresses_are_silent():
    line, _ = _line()
    _ask(line, H("01 30 34 00"))
    assert _ask(line, H("01 49 01 D6 50")) == b""  # CRC low byte first
    assert _ask(line, fast.frame(1, 73), t=1.0) == b""  # F73 without its channel
    assert _ask(line, fast.request(7, 73, b"\x01"), t=2.0) == b""
    assert line.counters.silent_wrong_length == 1  # ended by the gap before the next
    assert line.counters.not_for_us == 1
    assert _ask(line, fast.request(1, 73, b"\x01"), t=3.0) != b""  # still answers


def test_bad_channel_coefficient_and_function_exceptions():
    line, _ = _line()
    _ask(line, H("01 30 34 00"))
    assert _ask(line, fast.request(1, 73, b"\x06")) == H("01 C9 02 91 F7")
    m = fast.match_reply(_ask(line, fast.request(1, 30, b"\x07")), 1, 30)
    assert m.status is MatchStatus.EXCEPTION and m.code == 2
    m = fast.match_reply(_ask(line, fast.request(1, 81, b"")), 1, 30)
    assert m.status is MatchStatus.WRONG_FUNCTION  # exception of function 81: 0xD1
    assert _ask(line, fast.request(1, 81, b""))[1:3] == bytes((81 | 0x80, 1))
    lo = fast.f30_value(fast.match_reply(_ask(line, fast.request(1, 30, b"\x50")), 1, 30).data)
    hi = fast.f30_value(fast.match_reply(_ask(line, fast.request(1, 30, b"\x51")), 1, 30).data)
    assert (lo, hi) == (pytest.approx(0.5), pytest.approx(1.1))


@pytest.mark.parametrize(
    ("p_pa", "status", "expect", "bits"),
    [
        (150_000.0, 0, math.inf, Stat.P1),
        (30_000.0, 0, -math.inf, Stat.P1),
        (101_325.0, int(Status.PRESSURE_OUT_OF_RANGE), math.nan, Stat.P1),
        (112_000.0, 0, 1.12, 0),  # beyond the compensated range but readable
        (101_325.0, int(Status.WARMING_UP), 1.01325, Stat.POWER_UP),
    ],
)
def test_values_out_of_range_are_inf_or_nan_with_stat_bits(p_pa, status, expect, bits):
    line, (dev,) = _line()
    _ask(line, H("01 30 34 00"))
    dev.latest = Conversion(p_pa, 21.0, status)
    v, stat = fast.f73_value(fast.match_reply(_ask(line, fast.request(1, 73, b"\x01")), 1, 73).data)
    if math.isnan(expect):
        assert math.isnan(v)
    else:
        assert v == pytest.approx(expect, rel=1e-6)
    assert stat == int(bits)
    v, stat = fast.f73_value(fast.match_reply(_ask(line, fast.request(1, 73, b"\x02")), 1, 73).data)
    assert math.isnan(v) and not stat & Stat.P2  # not fitted: NaN, bit clear


def test_broadcast_executes_without_reply_and_250_answers_with_250():
    line, devs = _line(n=2)
    assert _ask(line, fast.request(0, Function.INITIALISE)) == b""
    assert all(d.initialised for d in devs) and line.counters.broadcasts == 1
    line1, _ = _line(n=1)
    _ask(line1, H("FA 30 04 43"))
    rep = _ask(line1, H("FA 49 01 A1 A7"))
    assert fast.match_reply(rep, 250, 73).status is MatchStatus.REPLY


def test_echo_comes_first_and_a_gap_drops_a_partial_request():
    line, _ = _line(echo=True)
    out = line.feed(H("01 30 34 00"), 0.0)
    assert out[0] == H("01 30 34 00") and out[1][:2] == H("01 30")
    plain, _ = _line()
    _ask(plain, H("01 30 34 00"))
    assert plain.feed(H("01 49"), 1.0) == []
    assert plain.feed(H("01 50 D6"), 1.2) == []  # 200 ms later: the first half was dropped
    assert plain.counters.bad_frames == 1
    assert fast.match_reply(_ask(plain, H("01 49 01 50 D6"), 1.3), 1, 73).status is (
        MatchStatus.REPLY
    )


def test_a_request_split_in_two_chunks_is_one_frame():
    line, _ = _line()
    _ask(line, H("01 30 34 00"))
    assert line.feed(H("01 49 01"), 5.0) == []
    assert fast.match_reply(_ask(line, H("50 D6"), 5.001), 1, 73).status is MatchStatus.REPLY
