"""Emulated polled lines: one registry from a link's protocol to its device model.

A polled line (``hil.keller_device.KellerLine`` and its successors) is what
``hil.emulator.Emulator`` talks to for a link whose devices answer requests:

* ``feed(data, t_s, powered) -> list[bytes]``: the host's bytes at emulator
  time ``t_s``; the chunks the line sends back (echo, replies), in order.
  ``powered(addr)`` says whether that device can answer now;
* ``devices[addr].latest``: a ``Conversion`` the emulator refreshes from the
  sensor's newest sample (pressure Pa, temperature deg C, SAMPLE status bits);
* ``devices[addr].power_up()``: a power cycle (the sensor rebooted);
* ``counters.frames``: requests received (the emulator's ``commands_in``);
* optionally ``emit(t0_s, t1_s, powered) -> list[bytes]``: what the line sends
  in (t0_s, t1_s] without a request (a Digiquartz's continuous P4/P7
  output); the emulator calls it on every advance, after refreshing
  ``latest``, and sends it after that advance's replies.  A line without it
  (KELLER) only answers.

``LINES[protocol](link, sensors)`` builds the line of a scenario ``Link`` from
its ``EmulatedSensor``s; ``drivers.families`` lists the protocols.
``LINK_OPTIONS[protocol](table) -> dict`` reads a family's own keys of a
scenario's ``[[links]]`` table (a ``common.tomltable.Table``) into
``Link.options``.
"""

from __future__ import annotations

from collections.abc import Callable

from drivers.digiquartz.values import UNIT_NAMES, unit_code
from drivers.modbus.layout import layouts_from_options, parse_link_options
from hil.digiquartz_device import DigiquartzDevice, DigiquartzLine
from hil.keller_device import KellerDevice, KellerLine
from hil.modbus_device import ModbusDevice, ModbusLine

#: the gap that drops a partial request, in emulator time: longer than a runner
#: tick at any speed, so a request split over two reads survives
PARTIAL_GAP_S = 0.5


def keller_line(link, sensors) -> KellerLine:
    devices = [
        KellerDevice(s.cfg.addr, s.cfg.serial, s.cfg.range_min_pa, s.cfg.range_max_pa)
        for s in sensors
    ]
    return KellerLine(devices, echo=link.echo, gap_s=PARTIAL_GAP_S)


def modbus_line(link, sensors) -> ModbusLine:
    base, per = layouts_from_options(link.options or {"preset": "keller"})
    devices = [
        ModbusDevice(s.cfg.addr, per.get(s.cfg.addr, base), s.cfg.range_min_pa, s.cfg.range_max_pa)
        for s in sensors
    ]
    return ModbusLine(devices, echo=link.echo, gap_s=PARTIAL_GAP_S)


def modbus_link_options(table) -> dict:
    """A scenario's modbus link: the monitor's keys; none means ``preset = "keller"``."""
    return parse_link_options(table, default_preset="keller")


def digiquartz_line(link, sensors) -> DigiquartzLine:
    o = link.options
    devices = [
        DigiquartzDevice(
            s.cfg.addr,
            s.cfg.serial,
            unit=o.get("unit", 1),
            pi_ms=o.get("pressure_integration_ms", 100),
            ti_ms=o.get("temperature_integration_ms", 100),
        )
        for s in sensors
    ]
    return DigiquartzLine(devices, echo=link.echo, gap_s=PARTIAL_GAP_S)


def digiquartz_link_options(t) -> dict:
    """A digiquartz scenario link: ``unit`` (the devices' UN, by name; default psi,
    the factory setting) and ``pressure_integration_ms``/``temperature_integration_ms``
    (their PI/TI, default 100: the continuous output's period)."""
    out: dict = {}
    name = t.str("unit", "psi")
    code = unit_code(name)
    if code is None:
        raise t.err("unit", f"unknown unit {name!r} ({', '.join(UNIT_NAMES)})")
    out["unit"] = code
    for key in ("pressure_integration_ms", "temperature_integration_ms"):
        out[key] = t.int(key, 100, lo=1, hi=60_000)
    return out


LINES: dict[str, Callable] = {
    "keller": keller_line,
    "modbus": modbus_line,
    "digiquartz": digiquartz_line,
}


def modbus_turnaround_s(baud: int) -> float:
    """A Modbus device answers after the 3.5 characters of silence that end a request."""
    from drivers.modbus.driver import silent_interval_s

    return silent_interval_s(baud)


#: each polled family's turnaround on a paced line (``emulate --baud``), from a
#: request's last byte to the reply's first, s, by baud rate: a KELLER answers
#: reads in 1.3-1.8 ms (TRANSDUCERS.md; the middle is taken); a Digiquartz
#: integrates before it answers (PI + TI for P3), which is not modelled: 0
REPLY_DELAY_S: dict[str, Callable[[int], float]] = {
    "keller": lambda baud: 0.00155,
    "modbus": modbus_turnaround_s,
    "digiquartz": lambda baud: 0.0,
}
LINK_OPTIONS: dict[str, Callable] = {
    "modbus": modbus_link_options,
    "digiquartz": digiquartz_link_options,
}
