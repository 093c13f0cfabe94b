"""Digiquartz grammar: golden command and reply strings (../shared/TRANSDUCERS.md),
round-trips, a line scanner that never raises, and the unit codes."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.digiquartz import wire
from drivers.digiquartz.values import UNIT_NAMES, UNITS, pa_per_unit, unit_code
from drivers.digiquartz.wire import LineKind


@pytest.mark.parametrize(
    ("built", "golden"),
    [
        (wire.command(1, "P3"), b"*0100P3\r\n"),
        (wire.command(1, "Q3"), b"*0100Q3\r\n"),
        (wire.command(12, "P7"), b"*1200P7\r\n"),
        (wire.command(99, "SN"), b"*9900SN\r\n"),  # every device
        (wire.command(1, "UN", 2), b"*0100UN=2\r\n"),
        (wire.write_command(1, "UN", 2), b"*0100EW*0100UN=2\r\n"),  # TRANSDUCERS.md
        (wire.reply(1, "14.6959488"), b"*000114.6959488\r\n"),
        (wire.reply(1, "UN=2"), b"*0001UN=2\r\n"),
        (wire.reply(42, "SN=123456"), b"*0042SN=123456\r\n"),
    ],
)
def test_golden_strings(built, golden):
    assert built == golden


def test_the_reply_is_destination_host_then_source_device():
    ln = wire.scan_line(b"*0001UN=2\r\n")
    assert (ln.kind, ln.dest, ln.src, ln.payload, ln.size) == (LineKind.LINE, 0, 1, b"UN=2", 11)
    assert wire.parse_parameter(ln.payload, "UN") == "2"
    assert wire.parse_parameter(ln.payload, "PI") is None
    ln = wire.scan_line(b"*00071013.25000\r\n")
    assert ln.src == 7 and wire.parse_number(ln.payload) == 1013.25


@pytest.mark.parametrize(
    ("data", "kind", "size"),
    [
        (b"", LineKind.NEED_MORE, 0),
        (b"*0001101", LineKind.NEED_MORE, 0),
        (b"xx*0001", LineKind.NOISE, 2),  # up to the next '*'
        (b"garbage", LineKind.NOISE, 7),
        (b"*0001101.3*0001101.325\r\n", LineKind.NOISE, 10),  # cut short by the next line
        (b"*0001101.3\n", LineKind.NOISE, 11),  # LF without CR
        (b"*00A1101.3\r\n", LineKind.NOISE, 12),  # not digits
        (b"*0001\x00\x01\r\n", LineKind.NOISE, 9),  # not printable
        (b"*0001\r\n", LineKind.NOISE, 7),  # no payload
        (b"*" + b"1" * 80, LineKind.NOISE, wire.MAX_LINE),  # too long without LF
    ],
)
def test_scan_line_statuses(data, kind, size):
    ln = wire.scan_line(data)
    assert ln.kind is kind and ln.size == size


@pytest.mark.parametrize(
    ("payload", "value"),
    [
        (b"14.6959488", 14.6959488),
        (b"-0.5", -0.5),
        (b"+1013.25", 1013.25),
        (b".5", 0.5),
        (b"1e3", 1000.0),
        (b"nan", None),
        (b"inf", None),
        (b"1_000", None),
        (b" 1.0", None),
        (b"0x10", None),
        (b"1.2.3", None),
        (b"", None),
    ],
)
def test_numbers_are_plain_decimals_only(payload, value):
    assert wire.parse_number(payload) == value


def test_device_side_parses_commands_of_a_line():
    cmds = wire.parse_commands(b"*0100EW*0100UN=2\r\n")
    assert cmds == [wire.Command(1, 0, "EW"), wire.Command(1, 0, "UN", "2")]
    assert wire.parse_commands(b"*9900P3") == [wire.Command(99, 0, "P3")]
    assert wire.parse_commands(b"*01P3\r\n") == [None]
    assert wire.parse_commands(b"*0100p3") == [None]
    assert wire.parse_commands(b"\xff*0100\xfeP3") == [None]


def test_format_number_keeps_nine_significant_digits():
    assert wire.format_number(1013.25) == "1013.25000"
    assert wire.format_number(14.6959488) == "14.6959488"
    assert wire.format_number(0.101325) == "0.10132500"
    assert wire.format_number(101325.0) == "101325.000"


def test_unit_codes_and_factors():
    assert UNIT_NAMES == ("psi", "hPa", "bar", "kPa", "MPa", "inHg", "mmHg", "mH2O")
    assert pa_per_unit(1) == pytest.approx(6894.757293168, rel=1e-12)
    assert [pa_per_unit(c) for c in (2, 3, 4, 5)] == [100.0, 1e5, 1e3, 1e6]
    assert pa_per_unit(6) == pytest.approx(3386.38864, rel=1e-9)
    assert pa_per_unit(7) == pytest.approx(133.322387415, rel=1e-12)
    assert pa_per_unit(8) == 9806.65
    # one standard atmosphere in each unit (760 conventional mmHg are 101325.014 Pa)
    atm = {
        1: 14.69594877551,
        2: 1013.25,
        3: 1.01325,
        4: 101.325,
        5: 0.101325,
        6: 760 / 25.4,
        7: 760.0,
    }
    for code, v in atm.items():
        assert v * pa_per_unit(code) == pytest.approx(101_325.0, rel=2e-7), UNITS[code]
    assert unit_code("HPA") == unit_code("hPa") == 2 and unit_code("torr") is None


_ids = st.integers(0, 99)
_cmds = st.sampled_from(sorted(wire.COMMANDS))


@settings(max_examples=300, deadline=None)
@given(dest=_ids, cmd=_cmds, value=st.none() | st.integers(0, 10**6))
def test_command_round_trip(dest, cmd, value):
    line = wire.command(dest, cmd, value)
    assert wire.parse_commands(line) == [
        wire.Command(dest, 0, cmd, None if value is None else str(value))
    ]


@settings(max_examples=300, deadline=None)
@given(
    src=st.integers(1, 98),
    value=st.floats(-1e6, 1e7, allow_nan=False, allow_infinity=False),
)
def test_reply_round_trip(src, value):
    line = wire.reply(src, wire.format_number(value))
    ln = wire.scan_line(line)
    assert ln.kind is LineKind.LINE and (ln.dest, ln.src, ln.size) == (0, src, len(line))
    v = wire.parse_number(ln.payload)
    assert v is not None and math.isclose(v, value, rel_tol=1e-8, abs_tol=1e-8)


@settings(max_examples=500, deadline=None)
@given(data=st.binary(max_size=200), start=st.integers(0, 210))
def test_scan_line_never_raises_and_always_progresses(data, start):
    ln = wire.scan_line(data, start)
    if ln.kind is LineKind.NEED_MORE:
        assert start >= len(data) or data[start] == ord("*")
    else:
        assert 1 <= ln.size <= len(data) - start
