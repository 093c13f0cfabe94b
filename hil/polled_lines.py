"""Emulated polled lines: one registry from a link's protocol to its device model.

A polled line (``hil.keller_device.KellerLine`` and its successors) is what
``hil.emulator.Emulator`` talks to for a link whose devices answer requests:

* ``feed(data, t_s, powered) -> list[bytes]``: the host's bytes at emulator
  time ``t_s``; the chunks the line sends back (echo, replies), in order.
  ``powered(addr)`` says whether that device can answer now;
* ``devices[addr].latest``: a ``Conversion`` the emulator refreshes from the
  sensor's newest sample (pressure Pa, temperature deg C, SAMPLE status bits);
* ``devices[addr].power_up()``: a power cycle (the sensor rebooted);
* ``counters.frames``: requests received (the emulator's ``commands_in``).

``LINES[protocol](link, sensors)`` builds the line of a scenario ``Link`` from
its ``EmulatedSensor``s; ``drivers.families`` lists the protocols.
``LINK_OPTIONS[protocol](table) -> dict`` reads a family's own keys of a
scenario's ``[[links]]`` table (a ``common.tomltable.Table``) into
``Link.options``.
"""

from __future__ import annotations

from collections.abc import Callable

from drivers.modbus.layout import layouts_from_options, parse_link_options
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


LINES: dict[str, Callable] = {"keller": keller_line, "modbus": modbus_line}
LINK_OPTIONS: dict[str, Callable] = {"modbus": modbus_link_options}
