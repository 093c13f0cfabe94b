"""The emulated Digiquartz state machine: golden replies, IDs and 99, EW enabling
exactly one write, continuous output stopped by any new command, the line's framing."""

from __future__ import annotations

import pytest

from hil.digiquartz_device import DigiquartzDevice, DigiquartzLine
from hil.keller_device import Conversion


def _line(*ids, unit=1, pi_ms=100, ti_ms=50):
    devs = []
    for a in ids:
        d = DigiquartzDevice(a, 120_000 + a, unit=unit, pi_ms=pi_ms, ti_ms=ti_ms)
        d.latest = Conversion(101_325.0, 21.25, 0)
        devs.append(d)
    return DigiquartzLine(devs), {d.addr: d for d in devs}


def test_golden_replies():
    line, _ = _line(1)
    ask = lambda s: line.feed(s, 1.0)  # noqa: E731
    assert ask(b"*0100P3\r\n") == [b"*000114.6959488\r\n"]  # psi, the factory unit
    assert ask(b"*0100Q3\r\n") == [b"*000121.250\r\n"]
    assert ask(b"*0100UN\r\n") == [b"*0001UN=1\r\n"]
    assert ask(b"*0100PI\r\n") == [b"*0001PI=100\r\n"]
    assert ask(b"*0100TI\r\n") == [b"*0001TI=50\r\n"]
    assert ask(b"*0100SN\r\n") == [b"*0001SN=120001\r\n"]
    assert ask(b"*0100VR\r\n") == [b"*0001VR=R5.10\r\n"]
    assert ask(b"*0100MN\r\n") == [b"*0001MN=6000-16B\r\n"]
    assert ask(b"*0100P1\r\n") == [b"*000129.013250\r\n"]
    assert ask(b"*0100XX\r\n") == []  # unknown: silence
    assert line.counters.frames == 10 and line.counters.replies == 9


def test_units_convert_the_same_pressure():
    for unit, text in [(2, b"1013.25000"), (3, b"1.01325000"), (5, b"0.10132500")]:
        line, _ = _line(1, unit=unit)
        assert line.feed(b"*0100P3\r\n", 0.0) == [b"*0001" + text + b"\r\n"]


def test_other_ids_are_ignored_and_99_asks_every_device():
    line, _ = _line(1, 2)
    assert line.feed(b"*0300P3\r\n", 0.0) == []
    assert line.counters.not_for_us == 1
    out = line.feed(b"*9900SN\r\n", 0.0)
    assert out == [b"*0001SN=120001\r\n", b"*0002SN=120002\r\n"]
    assert line.feed(b"*9900SN\r\n", 0.0, powered=lambda a: a == 2) == [b"*0002SN=120002\r\n"]
    assert line.feed(b"*0201P3\r\n", 0.0) == []  # not from the host (source 01)


def test_ew_enables_exactly_one_write_in_its_line():
    line, devs = _line(1)
    assert line.feed(b"*0100UN=2\r\n", 0.0) == [b"*0001UN=1\r\n"]  # no EW: kept
    assert devs[1].refused_writes == 1
    assert line.feed(b"*0100EW*0100UN=2\r\n", 0.0) == [b"*0001UN=2\r\n"]
    assert line.feed(b"*0100UN=3\r\n", 0.0) == [b"*0001UN=2\r\n"]  # used up
    assert line.feed(b"*0100EW*0100PI=250*0100TI=80\r\n", 0.0) == [
        b"*0001PI=250\r\n",
        b"*0001TI=50\r\n",  # the second write of the line is refused
    ]
    line.feed(b"*0100EW\r\n", 0.0)
    assert line.feed(b"*0100TI=80\r\n", 0.0) == [b"*0001TI=50\r\n"]  # EW ends with its line
    assert line.feed(b"*0100EW*0100UN=9\r\n", 0.0) == [b"*0001UN=2\r\n"]  # out of range
    assert devs[1].writes == 2


def test_continuous_output_and_any_new_command_stops_it():
    line, _ = _line(1, 2)
    assert line.feed(b"*0100P4\r\n", 10.0) == []
    assert line.emit(10.0, 10.1) == []
    out = line.emit(10.1, 10.65)  # P4: every PI + TI = 150 ms from 10.15
    assert out == [b"*000114.6959488\r\n"] * 4
    line.feed(b"*0200SN\r\n", 10.7)  # another device's command: 01 goes on
    assert len(line.emit(10.65, 10.8)) == 1
    assert line.feed(b"*0100Q3\r\n", 10.8) == [b"*000121.250\r\n"]
    assert line.emit(10.8, 20.0) == []  # stopped


def test_p7_sends_the_temperature_once_then_pressure_and_99_stops_every_device():
    line, _ = _line(1, 2)
    line.feed(b"*9900P7\r\n", 0.0)
    out = line.emit(0.0, 0.36)  # TI 50 ms, then PI 100 ms
    mine = [x for x in out if x.startswith(b"*0001")]
    assert mine == [b"*000121.250\r\n"] + [b"*000114.6959488\r\n"] * 3
    assert len(out) == 8
    line.feed(b"*9900UN\r\n", 0.4)
    assert line.emit(0.36, 5.0) == []


def test_q4_continuous_temperature_and_a_power_cycle_stops_output():
    line, devs = _line(1)
    line.feed(b"*0100Q4\r\n", 0.0)
    assert line.emit(0.0, 0.2) == [b"*000121.250\r\n"] * 4
    devs[1].power_up()
    assert line.emit(0.2, 1.0) == []


def test_a_failed_sensor_says_nothing_and_a_silent_device_emits_nothing():
    line, devs = _line(1)
    devs[1].latest = Conversion(float("nan"), float("nan"), 0)
    assert line.feed(b"*0100P3\r\n*0100Q3\r\n", 0.0) == []
    devs[1].latest = Conversion(101_325.0, 20.0, 0)
    line.feed(b"*0100P4\r\n", 0.0)
    assert line.emit(0.0, 1.0, powered=lambda a: False) == []


def test_framing_split_lines_gaps_and_garbage():
    line, _ = _line(1)
    assert line.feed(b"*0100", 0.0) == []
    assert line.feed(b"P3\r\n", 0.1) == [b"*000114.6959488\r\n"]  # split over two reads
    assert line.feed(b"*0100", 1.0) == []
    assert line.feed(b"P3\r\n", 2.0) == []  # the gap dropped the first half
    assert line.feed(b"\x00\xffjunk\r\n*0100SN\n", 2.0) == [b"*0001SN=120001\r\n"]
    assert line.feed(b"*" * 200, 2.0) == []  # overlong: dropped
    assert line.feed(b"\r\n*0100SN\r\n", 2.0) == [b"*0001SN=120001\r\n"]
    assert line.counters.bad_commands >= 3


def test_ids_are_1_to_98_and_unique():
    with pytest.raises(ValueError):
        DigiquartzDevice(99, 1)
    with pytest.raises(ValueError):
        DigiquartzLine([DigiquartzDevice(1, 1), DigiquartzDevice(1, 2)])


def test_echo_comes_back_before_the_reply():
    line = DigiquartzLine([DigiquartzDevice(1, 5)], echo=True)
    assert line.feed(b"*0100SN\r\n", 0.0) == [b"*0100SN\r\n", b"*0001SN=5\r\n"]
