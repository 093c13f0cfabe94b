"""KELLER bus frames: golden vectors of ../shared/TRANSDUCERS.md bit-exact, both
directions, construct against the struct fast path, and a hostile matcher."""

from __future__ import annotations

import math
import struct

import pytest
from construct import ChecksumError
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.keller import fast, wire
from drivers.keller.fast import MatchStatus
from drivers.keller.values import sample_status
from drivers.keller.wire import Function
from drivers.protocol import Status

H = bytes.fromhex

# (request, reply, addr, channel, value) published in the KELLER document
PUBLISHED_F73 = [
    ("FA 49 01 A1 A7", "FA 49 3F 6D BA AC 00 1A 1B", 250, 1, 0.9286296),
    ("01 49 01 50 D6", "01 49 3F 6D B1 53 00 E7 61", 1, 1, 0.9284870),
    ("01 49 02 51 96", "01 49 3F 6D B2 F2 00 77 E8", 1, 2, 0.9285117),
    ("FA 49 04 A2 67", "FA 49 41 C9 B8 00 00 E0 CC", 250, 4, 25.21484),
    ("01 49 04 53 16", "01 49 41 CA 51 80 00 5F 36", 1, 4, 25.28979),
]


def test_crc_check_value_and_high_byte_first():
    assert wire.crc16_modbus(b"123456789") == 0x4B37 == fast.crc16(b"123456789")
    # published "CRC only": 02 30 -> C4 00, the high byte first on the wire
    assert fast.frame(2, 0x30)[-2:] == H("C4 00")
    assert wire.crc16_modbus(H("02 30")) == 0xC400
    # the Modbus trick (CRC over the whole frame is 0) does not hold in this order
    assert wire.crc16_modbus(H("01 49 01 50 D6")) != 0


@pytest.mark.parametrize(("req", "rep", "addr", "ch", "value"), PUBLISHED_F73)
def test_golden_published_f73_both_directions(req, rep, addr, ch, value):
    assert wire.build(wire.F73_REQUEST, addr, channel=ch) == H(req)
    assert fast.request(addr, Function.READ_FLOAT, bytes([ch])) == H(req)
    parsed = wire.parse(wire.F73_REPLY, H(rep))
    assert parsed["addr"] == addr and parsed["stat"] == 0
    assert parsed["value"] == pytest.approx(value, rel=1e-6)
    m = fast.match_reply(H(rep), addr, Function.READ_FLOAT)
    assert m.status is MatchStatus.REPLY and m.size == 9
    v, stat = fast.f73_value(m.data)
    assert v == parsed["value"] and stat == 0
    assert wire.build(wire.F73_REPLY, addr, value=parsed["value"], stat=0) == H(rep)
    assert fast.frame(addr, Function.READ_FLOAT, m.data) == H(rep)


@pytest.mark.parametrize(("addr", "vector"), [(250, "FA 30 04 43"), (1, "01 30 34 00")])
def test_golden_published_f48_request(addr, vector):
    assert wire.build(wire.F48_REQUEST, addr) == H(vector)
    assert fast.request(addr, Function.INITIALISE) == H(vector)


@pytest.mark.parametrize(
    ("stat", "vector"), [(1, "01 30 05 14 05 32 0A 01 F1 E7"), (0, "01 30 05 14 05 32 0A 00 31 26")]
)
def test_golden_derived_f48_reply(stat, vector):
    fields = dict(device_class=5, group=20, year=5, week=50, buf=10, stat=stat)
    assert wire.build(wire.F48_REPLY, 1, **fields) == H(vector)
    m = fast.match_reply(H(vector), 1, Function.INITIALISE)
    assert m.status is MatchStatus.REPLY
    assert fast.f48_identity(m.data) == (5, 20, 5, 50, 10, stat)
    assert wire.parse(wire.F48_REPLY, H(vector)) == {"addr": 1, "fn": 48, **fields}


@pytest.mark.parametrize(("code", "vector"), [(32, "01 C9 20 88 77"), (2, "01 C9 02 91 F7")])
def test_golden_derived_exceptions(code, vector):
    assert wire.build(wire.EXCEPTION, 1, fn=0xC9, code=code) == H(vector)
    m = fast.match_reply(H(vector), 1, Function.READ_FLOAT)
    assert m.status is MatchStatus.EXCEPTION and m.code == code and m.size == 5


def test_golden_derived_f73_values_and_nan():
    rep = H("01 49 3F 81 B2 2D 00 D7 84")
    assert wire.build(wire.F73_REPLY, 1, value=1.01325, stat=0) == rep
    v, stat = fast.f73_value(fast.match_reply(rep, 1, 73).data)
    assert v * 1e5 == pytest.approx(101325.0, abs=0.01)
    nan = H("01 49 7F FF FF FF 02 46 D0")
    m = fast.match_reply(nan, 1, 73)
    v, stat = fast.f73_value(m.data)
    assert math.isnan(v) and stat == wire.Stat.P1
    assert fast.frame(1, 73, struct.pack(">IB", 0x7FFFFFFF, 2)) == nan


def test_golden_derived_f69():
    assert wire.build(wire.F69_REQUEST, 1) == H("01 45 D3 C1")
    assert fast.request(1, Function.SERIAL_NUMBER) == H("01 45 D3 C1")
    rep = H("01 45 00 BC 61 4E 45 A4")
    assert wire.build(wire.F69_REPLY, 1, serial=12345678) == rep
    assert fast.f69_serial(fast.match_reply(rep, 1, 69).data) == 12345678


def test_construct_rejects_a_bad_crc_and_the_low_byte_first_order():
    rep = H("01 49 3F 6D B1 53 00 E7 61")
    swapped = rep[:-2] + rep[-1:] + rep[-2:-1]
    with pytest.raises(ChecksumError):
        wire.parse(wire.F73_REPLY, swapped)
    assert fast.match_reply(swapped, 1, 73).status is MatchStatus.BAD_CRC


addrs = st.integers(1, 250)
f32 = st.floats(width=32, allow_nan=False)


@given(addr=addrs, value=f32, stat=st.integers(0, 255))
def test_f73_round_trip_construct_equals_fast(addr, value, stat):
    data = struct.pack(">fB", value, stat)
    built = wire.build(wire.F73_REPLY, addr, value=value, stat=stat)
    assert built == fast.frame(addr, 73, data)
    m = fast.match_reply(built, addr, 73)
    assert m.status is MatchStatus.REPLY
    assert fast.f73_value(m.data) == (value, stat)
    assert wire.parse(wire.F73_REPLY, built)["value"] == value


@given(addr=addrs, fn=st.sampled_from(list(Function)), p=st.integers(0, 255))
def test_requests_construct_equals_fast(addr, fn, p):
    req = wire.REQUESTS[fn]
    kw = {"channel": p} if fn == Function.READ_FLOAT else {}
    if fn == Function.READ_COEFFICIENT:
        kw = {"number": p}
    params = bytes([p]) if kw else b""
    assert wire.build(req, addr, **kw) == fast.request(addr, fn, params)


@given(addr=addrs, serial=st.integers(0, 2**32 - 1), coef=f32)
def test_f69_f30_round_trip(addr, serial, coef):
    rep = wire.build(wire.F69_REPLY, addr, serial=serial)
    assert fast.f69_serial(fast.match_reply(rep, addr, 69).data) == serial
    rep = wire.build(wire.F30_REPLY, addr, value=coef)
    assert fast.f30_value(fast.match_reply(rep, addr, 30).data) == coef


@settings(max_examples=300)
@given(buf=st.binary(max_size=40), addr=addrs, fn=st.sampled_from(list(Function)))
def test_matcher_never_raises_and_agrees_with_construct(buf, addr, fn):
    m = fast.match_reply(buf, addr, fn)
    if m.status is MatchStatus.REPLY:
        assert wire.parse(wire.REPLIES[fn], buf[: m.size])["addr"] == addr
    elif m.status is MatchStatus.EXCEPTION:
        assert wire.parse(wire.EXCEPTION, buf[: m.size])["code"] == m.code


def test_matcher_statuses():
    rep = H("01 49 3F 6D B1 53 00 E7 61")
    assert fast.match_reply(rep[:5], 1, 73).status is MatchStatus.NEED_MORE
    assert fast.match_reply(b"", 1, 73).status is MatchStatus.NEED_MORE
    assert fast.match_reply(rep, 2, 73).status is MatchStatus.WRONG_ADDRESS
    assert fast.match_reply(rep, 1, 48).status is MatchStatus.WRONG_FUNCTION
    assert fast.match_reply(rep[:-1] + b"\x00", 1, 73).status is MatchStatus.BAD_CRC
    assert fast.match_reply(b"\x00" + rep, 1, 73, start=1).status is MatchStatus.REPLY


def test_sample_status_mapping():
    assert sample_status(1.0, 0, 20.0, 0) == 0
    assert sample_status(float("nan"), 2, 20.0, 0) == int(
        Status.PRESSURE_OUT_OF_RANGE | Status.SELF_TEST_FAILED
    )
    assert sample_status(float("inf"), 2, 20.0, 0) == int(
        Status.PRESSURE_OUT_OF_RANGE | Status.ADC_SATURATED
    )
    assert sample_status(-math.inf, 0, 20.0, 0) & Status.ADC_SATURATED
    assert sample_status(1.0, 0, 20.0, 0x10) == int(Status.TEMPERATURE_OUT_OF_RANGE)
    assert sample_status(1.0, 0x80, 20.0, 0) == int(Status.WARMING_UP)
    # NaN without its STAT bit (an inactive channel) is still not a valid pressure
    assert sample_status(float("nan"), 0, 20.0, 0) == int(Status.PRESSURE_OUT_OF_RANGE)
