"""A monitor configuration derived from a scenario's volumes, hatches and sensors.

What a crew would configure for that hardware: never the scenario's leaks,
faults or link faults, which the monitor has to find for itself.
"""

from __future__ import annotations

import json
import math

from firmware_host.config import MonitorConfig, config_from_dict

#: Loop rate of derived configurations (Hz): the simulated runs tick once a
#: second of simulated time; raw samples still arrive at the sensors' rates.
DERIVED_LOOP_RATE_HZ = 1.0


def config_dict_from_scenario(scenario, *, loop_rate_hz: float = DERIVED_LOOP_RATE_HZ) -> dict:
    """The TOML-shaped dict of the configuration for ``scenario``'s hardware."""
    data: dict = {
        "volumes": [{"name": v.name, "volume_m3": v.volume_m3} for v in scenario.volumes],
        "sensors": [
            {
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


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"TOML has no {value}")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string: same escapes
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def config_toml(data: dict) -> str:
    """A configuration dict (as ``config_dict_from_scenario`` builds) as TOML text."""
    lines: list[str] = []
    scalars = {k: v for k, v in data.items() if not isinstance(v, (dict, list))}
    lines += [f"{k} = {_toml_value(v)}" for k, v in scalars.items()]
    for key, value in data.items():
        if not isinstance(value, dict):
            continue
        nested = {k: v for k, v in value.items() if isinstance(v, dict)}
        flat = {k: v for k, v in value.items() if not isinstance(v, dict)}
        if flat or not nested:
            lines += ["", f"[{key}]"] + [f"{k} = {_toml_value(v)}" for k, v in flat.items()]
        for name, table in nested.items():
            lines += ["", f"[{key}.{name}]"]
            lines += [f"{k} = {_toml_value(v)}" for k, v in table.items()]
    for key, value in data.items():
        if isinstance(value, list):
            for table in value:
                lines += ["", f"[[{key}]]"] + [f"{k} = {_toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines).lstrip("\n") + "\n"
