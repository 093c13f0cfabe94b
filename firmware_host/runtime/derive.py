"""A monitor configuration derived from a scenario's volumes, hatches and sensors.

What a crew would configure for that hardware: never the scenario's leaks,
faults or link faults, which the monitor has to find for itself.
"""

from __future__ import annotations

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
        "hatches": [
            {"name": h.name, "volume_a": h.volume_a, "volume_b": h.volume_b, "open": h.open}
            for h in scenario.hatches
        ],
        "loop": {"rate_hz": loop_rate_hz},
    }
    if scenario.min_pressure_pa:
        data["p_min_pa"] = scenario.min_pressure_pa
    return data


def config_from_scenario(scenario, *, loop_rate_hz: float = DERIVED_LOOP_RATE_HZ) -> MonitorConfig:
    """``MonitorConfig`` for ``scenario``'s volumes, hatches and sensors."""
    data = config_dict_from_scenario(scenario, loop_rate_hz=loop_rate_hz)
    return config_from_dict(data, f"{scenario.path} (derived)")
