"""Modbus RTU frames: the published KELLER vectors bit-exact through the construct
declarations, the struct fast path and pymodbus; round trips of any read; the
layout's reads and values."""

from __future__ import annotations

import math
import struct

import pytest
from construct import ChecksumError
from hypothesis import given, settings
from hypothesis import strategies as st

from common.errors import ConfigError
from common.tomltable import Table
from drivers.modbus import adapter, fast, wire
from drivers.modbus.fast import MatchStatus
from drivers.modbus.layout import (
    KELLER,
    TYPES,
    Channel,
    Layout,
    Read,
    layouts_from_options,
    parse_link_options,
)
from drivers.modbus.values import sample_status
from drivers.protocol import Status

H = bytes.fromhex

# ../shared/TRANSDUCERS.md: (start, count, request, reply, values); the last reply's
# final byte is the corrected 0xC7
VECTORS = [
    (0x0002, 2, "01 03 00 02 00 02 65 CB", "01 03 04 3F 75 F0 7B E3 DE", (0.960701,)),
    (0x0004, 2, "01 03 00 04 00 02 85 CA", "01 03 04 3F 76 06 E0 15 D5", (0.961042,)),
    (0x0008, 2, "01 03 00 08 00 02 45 C9", "01 03 04 41 B5 C0 79 6E 0B", (22.719,)),
    (
        0x0100,
        4,
        "01 03 01 00 00 04 45 F5",
        "01 03 08 3F 75 E3 D2 41 B6 1C 20 A0 C7",
        (0.960508, 22.7637),
    ),
]
FLOAT = Channel(0, 3, "float32", "big", 1.0, 0.0, "bar")


@pytest.mark.parametrize(("start", "count", "req", "rep", "values"), VECTORS)
def test_published_vectors_bit_exact_three_ways(start, count, req, rep, values):
    req, rep = H(req), H(rep)
    # requests: construct, fast path and pymodbus build the same bytes
    assert wire.build(wire.READ_REQUEST, 1, fn=3, start=start, count=count) == req
    assert fast.read_request(1, 3, start, count) == req
    assert adapter.read_request(1, 3, start, count) == req
    assert wire.parse(wire.READ_REQUEST, req) == dict(addr=1, fn=3, start=start, count=count)
    assert adapter.parse_request(req) == (1, 3, start, count)
    # CRC low byte first: the CRC over the whole frame is 0
    assert fast.crc16(req) == 0 and fast.crc16(rep) == 0
    assert req[-2:] == wire.crc16_modbus(req[:-2]).to_bytes(2, "little")
    # replies: the three decoders agree, bit for bit
    regs = wire.parse(wire.READ_REPLY, rep)["registers"]
    assert adapter.parse_reply(rep) == (1, 3, regs, 0)
    m = fast.match_reply(rep, 1, 3, count)
    assert m.status is MatchStatus.REPLY and m.size == len(rep)
    assert m.data == b"".join(r.to_bytes(2, "big") for r in regs)
    for i, want in enumerate(values):
        got = fast.value_decoder(FLOAT, 2 * i)(m.data)
        assert struct.pack(">f", got) == m.data[4 * i : 4 * i + 4]
        assert got == adapter.channel_value(regs, FLOAT, 2 * i)
        assert got == pytest.approx(want, abs=5e-7 if want < 10 else 5e-5)
    # device side: rebuilt from the registers, the same bytes
    assert fast.frame(1, 3, bytes((2 * count,)) + m.data) == rep
    assert adapter.reply_frame(1, 3, regs) == rep
    assert wire.build(wire.READ_REPLY, 1, fn=3, byte_count=2 * count, registers=regs) == rep


def test_the_misprinted_crc_and_a_swapped_crc_are_refused():
    bad = H("01 03 08 3F 75 E3 D2 41 B6 1C 20 A0 77")  # the document's misprint
    assert fast.match_reply(bad, 1, 3, 4).status is MatchStatus.BAD_CRC
    with pytest.raises(ChecksumError):
        wire.parse(wire.READ_REPLY, bad)
    with pytest.raises(ValueError):
        adapter.parse_reply(bad)
    good = H("01 03 04 3F 75 F0 7B E3 DE")
    swapped = good[:-2] + good[-1:] + good[-2:-1]  # KELLER bus order: high byte first
    assert fast.match_reply(swapped, 1, 3, 2).status is MatchStatus.BAD_CRC


def test_the_keller_preset_reads_p1_and_tob1_in_one_request():
    assert KELLER.reads == (Read(3, 0x0100, 4),)
    m = fast.match_reply(H(VECTORS[3][3]), 1, 3, 4)
    i, off = KELLER.where["pressure"]
    p = KELLER.pressure.to_si(fast.value_decoder(KELLER.pressure, off)(m.data))
    i, off = KELLER.where["temperature"]
    t = KELLER.temperature.to_si(fast.value_decoder(KELLER.temperature, off)(m.data))
    assert p == pytest.approx(96_050.8, abs=0.1) and t == pytest.approx(22.7637, abs=1e-4)


def test_exceptions_three_ways():
    exc = wire.build(wire.EXCEPTION, 1, fn=0x83, code=2)
    assert exc == H("01 83 02 C0 F1") == fast.frame(1, 0x83, b"\x02")
    assert adapter.exception_frame(1, 3, 2) == exc
    assert adapter.parse_reply(exc) == (1, 3, None, 2)
    m = fast.match_reply(exc, 1, 3, 2)
    assert (m.status, m.code, m.size) == (MatchStatus.EXCEPTION, 2, 5)


def test_match_reply_statuses():
    rep = H(VECTORS[0][3])
    assert fast.match_reply(rep[:1], 1, 3, 2).status is MatchStatus.NEED_MORE
    assert fast.match_reply(rep[:6], 1, 3, 2).status is MatchStatus.NEED_MORE
    assert fast.match_reply(rep, 2, 3, 2).status is MatchStatus.WRONG_ADDRESS
    assert fast.match_reply(rep, 1, 4, 2).status is MatchStatus.WRONG_FUNCTION
    assert fast.match_reply(rep, 1, 3, 4).status is MatchStatus.WRONG_FUNCTION  # byte count
    assert fast.match_reply(b"\x00" + rep, 1, 3, 2, start=1).status is MatchStatus.REPLY
    assert fast.frame_size(rep) == len(rep) and fast.frame_size(rep[:-1]) == 0


@settings(max_examples=200, deadline=None)
@given(
    addr=st.integers(0, 247),
    fn=st.sampled_from([3, 4]),
    start=st.integers(0, 65535),
    count=st.integers(1, 125),
)
def test_any_request_round_trips_three_ways(addr, fn, start, count):
    req = fast.read_request(addr, fn, start, count)
    assert req == adapter.read_request(addr, fn, start, count)
    assert req == wire.build(wire.READ_REQUEST, addr, fn=fn, start=start, count=count)
    assert wire.parse(wire.READ_REQUEST, req) == dict(addr=addr, fn=fn, start=start, count=count)
    if addr:  # pymodbus's server decoder takes device ids 1..247
        assert adapter.parse_request(req) == (addr, fn, start, count)


@settings(max_examples=200, deadline=None)
@given(
    addr=st.integers(1, 247),
    fn=st.sampled_from([3, 4]),
    regs=st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=125),
    noise=st.binary(max_size=8),
)
def test_any_reply_round_trips_three_ways(addr, fn, regs, noise):
    data = b"".join(r.to_bytes(2, "big") for r in regs)
    rep = fast.frame(addr, fn, bytes((len(data),)) + data)
    assert rep == adapter.reply_frame(addr, fn, regs)
    assert wire.parse(wire.READ_REPLY, rep)["registers"] == regs
    assert adapter.parse_reply(rep) == (addr, fn, regs, 0)
    m = fast.match_reply(noise + rep, addr, fn, len(regs), start=len(noise))
    assert m.status is MatchStatus.REPLY and m.data == data


@settings(max_examples=300, deadline=None)
@given(
    typ=st.sampled_from(list(TYPES)),
    order=st.sampled_from(["big", "little"]),
    raw=st.floats(-1e6, 1e6, allow_nan=False),
    pad=st.integers(0, 2),
)
def test_values_encode_and_decode_like_pymodbus(typ, order, raw, pad):
    ch = Channel(0, 3, typ, order, 1.0, 0.0, "Pa")
    b = fast.value_encoder(ch)(raw)
    data = b"\x12\x34" * pad + b
    regs = [data[i] << 8 | data[i + 1] for i in range(0, len(data), 2)]
    got = fast.value_decoder(ch, pad)(data)
    assert got == adapter.channel_value(regs, ch, pad)
    if typ == "float32":
        assert got == pytest.approx(raw, rel=1e-6, abs=1e-30)
    else:
        lo, hi = {"int16": (-32768, 32767), "uint16": (0, 65535)}.get(typ, (-(2**31), 2**32))
        assert got == min(hi, max(lo, round(raw))) or typ == "uint32" and raw < 0


def test_units_scale_and_offset():
    ch = Channel(0, 4, "int32", "little", 0.01, 0.0, "hPa")
    assert ch.to_si(101_325) == pytest.approx(101_325.0)
    assert ch.from_si(101_325.0) == pytest.approx(101_325)
    k = Channel(0, 4, "int16", "big", 0.1, 0.0, "K")
    assert k.to_si(2951) == pytest.approx(21.95)
    assert Channel(0, 3, "float32", unit="psi").to_si(14.6959488) == pytest.approx(101_325, 0.01)
    off = Channel(0, 3, "uint16", scale=2.0, offset=-100.0, unit="mbar")
    assert off.to_si(550) == pytest.approx(100_000.0) and off.from_si(100_000.0) == 550


def test_reads_merge_only_adjacent_channels_within_max_registers():
    p = Channel(10, 3, "float32")
    assert Layout(p, Channel(12, 3, "float32", unit="C")).reads == (Read(3, 10, 4),)
    assert Layout(p, Channel(9, 3, "int16", unit="C")).reads == (Read(3, 9, 3),)
    assert Layout(p, Channel(9, 3, "int16", unit="C")).where == {
        "pressure": (0, 1),
        "temperature": (0, 0),
    }
    assert len(Layout(p, Channel(13, 3, "float32", unit="C")).reads) == 2  # a gap
    assert len(Layout(p, Channel(12, 4, "float32", unit="C")).reads) == 2  # FC4
    assert len(Layout(p, Channel(12, 3, "float32", unit="C"), max_registers=3).reads) == 2


def test_status_bits_of_values():
    assert sample_status(101_325.0, 21.0) == 0
    nan = sample_status(math.nan, 21.0)
    assert nan == int(Status.PRESSURE_OUT_OF_RANGE | Status.SELF_TEST_FAILED)
    inf = sample_status(-math.inf, 21.0)
    assert inf == int(Status.PRESSURE_OUT_OF_RANGE | Status.ADC_SATURATED)
    assert sample_status(1.0, math.nan) == int(Status.TEMPERATURE_OUT_OF_RANGE)


def _opts(data: dict, default=None) -> dict:
    return parse_link_options(Table("x.toml", "links.bus0", data), default_preset=default)


def test_link_options_parse_to_the_same_shape_and_layouts():
    assert _opts({"preset": "keller"}) == {"preset": "keller"}
    assert _opts({}, default="keller") == {"preset": "keller"}
    opts = _opts(
        {
            "preset": "keller",
            "max_registers": 4,
            "devices": {
                "2": {
                    "pressure": {"register": 16, "function": 4, "type": "int32", "unit": "hPa"},
                    "temperature": {"register": 32, "function": 4, "type": "int16"},
                }
            },
        }
    )
    assert opts["devices"]["2"]["pressure"]["word_order"] == "big"
    assert opts["devices"]["2"]["max_registers"] == 4
    assert _opts(opts) == opts  # the shape parses again (a derived configuration)
    base, per = layouts_from_options(opts)
    assert base is KELLER or base.reads == KELLER.reads
    assert per[2].reads == (Read(4, 16, 2), Read(4, 32, 1))


@pytest.mark.parametrize(
    ("data", "key", "needle"),
    [
        ({}, "links.bus0.preset", "missing"),
        ({"preset": "acme"}, "links.bus0.preset", "unknown preset"),
        ({"preset": "keller", "pressure": {"register": 1}}, "links.bus0.pressure", "not with"),
        ({"pressure": {"register": 1}}, "links.bus0.temperature", "missing"),
        ({"pressure": {"register": 70000}, "temperature": {"register": 1}}, "register", "0..65535"),
        (
            {"pressure": {"register": 65535}, "temperature": {"register": 1}},
            "register",
            "runs past",
        ),
        (
            {"pressure": {"register": 1, "function": 6}, "temperature": {"register": 3}},
            "function",
            "3",
        ),
        (
            {"pressure": {"register": 1, "type": "f64"}, "temperature": {"register": 3}},
            "type",
            "unknown",
        ),
        (
            {"pressure": {"register": 1, "unit": "C"}, "temperature": {"register": 3}},
            "unit",
            "unknown",
        ),
        (
            {"pressure": {"register": 1}, "temperature": {"register": 3, "unit": "Pa"}},
            "unit",
            "unknown",
        ),
        (
            {"pressure": {"register": 1, "word_order": "mid"}, "temperature": {"register": 3}},
            "word_order",
            "big",
        ),
        (
            {"pressure": {"register": 1, "scale": 0}, "temperature": {"register": 3}},
            "scale",
            "not be 0",
        ),
        (
            {"pressure": {"register": 1, "colour": 1}, "temperature": {"register": 3}},
            "colour",
            "unknown key",
        ),
        ({"preset": "keller", "max_registers": 200}, "max_registers", "1..125"),
        ({"preset": "keller", "max_registers": 1}, "max_registers", "needs 2 registers"),
        ({"preset": "keller", "devices": {"300": {"preset": "keller"}}}, "devices.300", "1..247"),
        ({"preset": "keller", "devices": {"2": {}}}, "devices.2.preset", "missing"),
    ],
)
def test_link_option_mistakes_name_the_key(data, key, needle):
    with pytest.raises(ConfigError) as ei:
        _opts(data)
    msg = str(ei.value)
    assert key in msg and needle in msg and "\n" not in msg
