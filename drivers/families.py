"""The transducer families a link can speak, in one registry.

Each family names its driver, the bus addresses it allows, whether it is
polled (answers requests) and, for a polled family, the line budget of a set
of sensor rates.  The runtime configuration, ``cabinwatch monitor``,
``config check``, the scenario loader, the emulator and ``simulate`` all ask
this registry, so a new family is added here (and in
``hil.polled_lines.LINES`` for its emulated device) and nowhere else.

Imports are lazy: a board that only reads native sensors never imports
another family's code (or its libraries).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from drivers.polled import LineBudget


def _native_driver():
    from drivers.driver import NativeDriver

    return NativeDriver


def _keller_driver():
    from drivers.keller.driver import KellerDriver

    return KellerDriver


def _keller_budget(link: str, rates_hz: Sequence[float], baudrate: int, options: dict):
    from drivers.keller.driver import keller_budget

    return keller_budget(link, rates_hz, baudrate)


def _modbus_driver():
    from drivers.modbus.driver import ModbusDriver

    return ModbusDriver


def _modbus_budget(link: str, rates_hz: Sequence[float], baudrate: int, options: dict):
    from drivers.modbus.driver import modbus_budget

    return modbus_budget(link, rates_hz, baudrate, options)


def _modbus_link_options(table) -> dict:
    from drivers.modbus.layout import parse_link_options

    return parse_link_options(table)


def _digiquartz_driver():
    from drivers.digiquartz.driver import DigiquartzDriver

    return DigiquartzDriver


def _digiquartz_budget(link: str, rates_hz: Sequence[float], baudrate: int, options: dict):
    from drivers.digiquartz.driver import digiquartz_budget

    return digiquartz_budget(link, rates_hz, baudrate, options)


def _digiquartz_link_options(table) -> dict:
    from drivers.digiquartz.driver import link_options

    return link_options(table)


@dataclass(frozen=True)
class Family:
    """One transducer family.

    ``addresses``: the sensor addresses a link allows (inclusive);
    ``exclusive_addr``: an address that must be alone on its link (KELLER's
    transparent 250), or None; ``polled``: the driver polls (echo,
    reply_timeout_s and the line budget apply); ``budget(link, rates_hz,
    baudrate, options) -> LineBudget`` for a polled family.

    ``link_options(table) -> dict``: reads and validates the family's own keys
    of a ``[links.NAME]`` table (a ``common.tomltable.Table``; errors through
    ``table.err``); the dict is ``LinkConfig.options``, passed to the driver as
    keyword arguments and to ``budget``.

    ``scenario_keys``: keys of a scenario link's ``options`` that a monitor
    configuration derived from the scenario (``harness.derive``) copies to
    its ``[links.NAME]`` table (the same meaning on both sides); None: all of
    them (a family whose scenario keys are its monitor keys, like Modbus).
    """

    name: str
    addresses: tuple[int, int]
    load_driver: Callable[[], type]
    polled: bool = False
    exclusive_addr: int | None = None
    budget: Callable[[str, Sequence[float], int, dict], LineBudget] | None = None
    link_options: Callable[[object], dict] | None = None
    scenario_keys: tuple[str, ...] | None = ()

    def monitor_options(self, scenario_options: dict) -> dict:
        """The part of a scenario link's ``options`` a monitor's driver takes."""
        keys = scenario_options if self.scenario_keys is None else self.scenario_keys
        return {k: scenario_options[k] for k in keys if k in scenario_options}


FAMILIES: dict[str, Family] = {
    "native": Family("native", (1, 247), _native_driver),
    "keller": Family(
        "keller", (1, 250), _keller_driver, polled=True, exclusive_addr=250, budget=_keller_budget
    ),
    "modbus": Family(
        "modbus",
        (1, 247),
        _modbus_driver,
        polled=True,
        budget=_modbus_budget,
        link_options=_modbus_link_options,
        scenario_keys=None,  # the layout keys mean the same to the emulator and the driver
    ),
    # IDs 1..98; 99 ("every device") is never a sensor's address
    "digiquartz": Family(
        "digiquartz",
        (1, 98),
        _digiquartz_driver,
        polled=True,
        budget=_digiquartz_budget,
        link_options=_digiquartz_link_options,
        scenario_keys=("pressure_integration_ms", "temperature_integration_ms"),
    ),
}


def family(name: str) -> Family:
    """The family called ``name`` (KeyError for an unknown one)."""
    return FAMILIES[name]


def polled_families() -> tuple[str, ...]:
    return tuple(n for n, f in FAMILIES.items() if f.polled)
