"""A scenario's hardware as a monitor configuration, and that configuration as TOML."""

import tomllib

import pytest

from firmware_host.config import config_from_dict
from harness.derive import config_dict_from_scenario, config_toml
from hil.scenario import list_scenarios, load_scenario


@pytest.mark.parametrize("name", list_scenarios())
def test_derived_config_round_trips_through_toml(name):
    scenario = load_scenario(name)
    data = config_dict_from_scenario(scenario)
    data["links"] = {link: {"url": f"/dev/pts/{i}"} for i, link in enumerate(scenario.link_names)}
    data["outputs"] = {"directory": "out", "telemetry": ""}
    text = config_toml(data)
    assert tomllib.loads(text) == data
    config = config_from_dict(tomllib.loads(text), "x.toml")
    assert {v.name for v in config.volumes} == {v.name for v in scenario.volumes}
    assert len(config.sensors) == len(scenario.sensors)
    # the scenario's sensor names are kept (messages name the sensors by them)
    assert [(s.name, s.sensor_id) for s in config.sensors] == [
        (s.name, f"{s.link}:{s.addr}") for s in scenario.sensors
    ]


def test_derived_config_never_carries_leaks_or_faults():
    data = config_dict_from_scenario(load_scenario("soyuz-ms09-2018"))
    text = config_toml(data)
    for secret in ("leak", "fault", "diameter", "onset"):
        assert secret not in text


def test_toml_writer_refuses_what_toml_cannot_hold():
    with pytest.raises(ValueError):
        config_toml({"p_min_pa": float("inf")})
