"""A monitor configuration derived from a scenario's volumes, hatches and sensors.

What a crew would configure for that hardware: never the scenario's leaks,
faults or link faults, which the monitor has to find for itself.
"""

from __future__ import annotations

import math

import tomli_w

from drivers.families import FAMILIES
from firmware_host.config import MonitorConfig, config_from_dict

#: Loop rate of derived configurations (Hz): the simulated runs tick once a
#: second of simulated time; raw samples still arrive at the sensors' rates.
DERIVED_LOOP_RATE_HZ = 1.0


def link_tables(scenario, urls: dict[str, str]) -> dict[str, dict]:
    """``[links.NAME]`` tables for ``scenario``'s links served on ``urls``: a link
    is read by the driver of the family its devices speak (a polled one with the
    scenario's converter echo and the family's own keys, e.g. a Modbus layout)."""
    by_name = {lk.name: lk for lk in scenario.links}
    out: dict[str, dict] = {}
    for name, url in urls.items():
        table: dict = {"url": url}
        link = by_name.get(name)
        if link is not None and link.protocol != "native":
            table.update(driver=link.protocol)
            fam = FAMILIES[link.protocol]
            if fam.polled:
                table.update(echo=link.echo)
            table.update(fam.monitor_options(link.options))
        out[name] = table
    return out


def config_dict_from_scenario(scenario, *, loop_rate_hz: float = DERIVED_LOOP_RATE_HZ) -> dict:
    """The TOML-shaped dict of the configuration for ``scenario``'s hardware."""
    data: dict = {
        "volumes": [{"name": v.name, "volume_m3": v.volume_m3} for v in scenario.volumes],
        "sensors": [
            {
                "name": s.name,
                "link": s.link,
                "addr": s.addr,
                "volume": s.volume,
                "rate_hz": s.rate_hz,
                "range_pa": [s.range_min_pa, s.range_max_pa],
            }
            for s in scenario.sensors
        ],
        "loop": {"rate_hz": loop_rate_hz},
    }
    if scenario.hatches:  # (TOML has no empty array of tables: none is no key)
        data["hatches"] = [
            {"name": h.name, "volume_a": h.volume_a, "volume_b": h.volume_b, "open": h.open}
            for h in scenario.hatches
        ]
    if scenario.min_pressure_pa:
        data["p_min_pa"] = scenario.min_pressure_pa
    return data


def config_from_scenario(scenario, *, loop_rate_hz: float = DERIVED_LOOP_RATE_HZ) -> MonitorConfig:
    """``MonitorConfig`` for ``scenario``'s volumes, hatches and sensors."""
    data = config_dict_from_scenario(scenario, loop_rate_hz=loop_rate_hz)
    return config_from_dict(data, f"{scenario.path} (derived)")


def _check_finite(value) -> None:
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        for v in value:
            _check_finite(v)
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"a configuration holds no {value}")


def config_toml(data: dict) -> str:
    """A configuration dict (as ``config_dict_from_scenario`` builds) as TOML text.

    Raises ValueError for a number that is not finite (no configuration holds one).
    """
    _check_finite(data)
    return tomli_w.dumps(data)
