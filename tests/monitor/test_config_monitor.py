"""Monitor configuration: the example loads, every mistake names file, key and problem."""

from __future__ import annotations

from importlib.resources import files

import pytest

from common.errors import ConfigError
from firmware_host.config import (
    DEFAULT_P_MIN_PA,
    DEFAULT_WINDOWS_S,
    Limits,
    config_from_dict,
    load_config,
)

EXAMPLE = files("firmware_host") / "examples" / "monitor.toml"


def _base():
    return {
        "volumes": [{"name": "a", "volume_m3": 10.0}, {"name": "b", "volume_m3": 2.0}],
        "sensors": [{"link": "bus0", "addr": 1, "volume": "a"}],
    }


def test_example_loads_with_everything():
    cfg = load_config(str(EXAMPLE))
    assert [v.name for v in cfg.volumes] == ["station", "soyuz-om", "prk"]
    assert cfg.sensors[3].sensor_id == "bus1:1" and cfg.sensors[3].rate_hz == 1.0
    assert [h.open for h in cfg.hatches] == [True, False]
    assert cfg.limit_set == "flight" and cfg.limits.caution_leak_kg_day == 2.0
    assert cfg.limit_sets["ground-test"].caution_leak_kg_day == 50.0
    assert cfg.limit_sets["ground-test"].emergency_rate_pa_min == 67.0  # default kept
    assert cfg.windows_s == (10.0, 60.0, 600.0, 1800.0, 7200.0) and cfg.rate_hz == 10.0


def test_defaults():
    cfg = config_from_dict(_base(), "x.toml")
    assert cfg.p_min_pa == DEFAULT_P_MIN_PA == 69_300.0
    assert cfg.windows_s == DEFAULT_WINDOWS_S
    assert cfg.limits == Limits() and cfg.limits.emergency_rate_pa_min == 67.0
    assert set(cfg.limit_sets) == {"flight", "ground-test"}
    assert cfg.sensors[0].range_pa == (0.0, 130_000.0)
    assert cfg.sensors[0].name == "" and cfg.sensors[0].label == "bus0:1"


def test_a_sensor_name_names_it_in_messages():
    data = _base()
    data["sensors"][0]["name"] = "cabin-a"
    s = config_from_dict(data, "x.toml").sensors[0]
    assert (s.name, s.sensor_id, s.label) == ("cabin-a", "bus0:1", "cabin-a (bus0:1)")


def test_runtime_tables_are_kept_not_rejected():
    data = _base() | {"links": {"bus0": {"url": "/dev/ttyUSB0"}}, "outputs": {}, "display": {}}
    cfg = config_from_dict(data, "x.toml")
    assert cfg.extra["links"]["bus0"]["url"] == "/dev/ttyUSB0"


@pytest.mark.parametrize(
    "mutate, key, problem",
    [
        (lambda d: d.update(bogus=1), "bogus", "unknown key"),
        (lambda d: d["volumes"][0].update(size=3), "volumes[0].size", "unknown key"),
        (lambda d: d["volumes"][1].update(volume_m3=-2), "volumes[1].volume_m3", "must be > 0"),
        (lambda d: d["volumes"][1].update(name="a"), "volumes[1].name", "duplicate"),
        (lambda d: d["sensors"][0].update(volume="zz"), "sensors[0].volume", "unknown volume"),
        (lambda d: d["sensors"][0].update(addr=300), "sensors[0].addr", "must be in 1..250"),
        (lambda d: d["sensors"][0].update(addr="1"), "sensors[0].addr", "integer"),
        (lambda d: d["sensors"][0].pop("link"), "sensors[0].link", "missing"),
        (lambda d: d["sensors"][0].update(range_pa=[5, 1]), "sensors[0].range_pa", "below"),
        (lambda d: d["sensors"].append(dict(d["sensors"][0])), "sensors[1].addr", "duplicate"),
        (
            lambda d: d["sensors"].extend(
                [{"link": "bus0", "addr": a, "volume": "a", "name": "x"} for a in (2, 3)]
            ),
            "sensors[2].name",
            "duplicate sensor name",
        ),
        (lambda d: d["sensors"][0].update(name=5), "sensors[0].name", "string"),
        (lambda d: d.update(windows_s=[60, 10]), "windows_s", "increasing"),
        (lambda d: d.update(windows_s=[0.1, 10]), "windows_s[0]", "3 loop ticks"),
        (lambda d: d.update(loop={"rate_hz": 0}), "loop.rate_hz", "must be > 0"),
        (lambda d: d.update(loop={"rate": 1}), "loop.rate", "unknown key"),
        (lambda d: d.update(estimator={"rebase_s": "x"}), "estimator.rebase_s", "number"),
        (lambda d: d.update(health={"stuck_samples": 2.5}), "health.stuck_samples", "integer"),
        (
            lambda d: d.update(hatches=[{"name": "h", "volume_a": "a", "volume_b": "q"}]),
            "hatches[0].volume_b",
            "unknown volume",
        ),
        (
            lambda d: d.update(
                hatches=[{"name": "h", "volume_a": "a", "volume_b": "b", "open": "yes"}]
            ),
            "hatches[0].open",
            "true or false",
        ),
        (
            lambda d: d.update(limits={"flight": {"caution": 1}}),
            "limits.flight.caution",
            "unknown key",
        ),
        (lambda d: d.update(limits={"x": {"hysteresis": 1.5}}), "limits.x.hysteresis", "fraction"),
        (lambda d: d.update(limit_set="nope"), "limit_set", "unknown limit set"),
        (lambda d: d.pop("volumes"), "volumes", "required"),
    ],
)
def test_mistakes_name_the_key(mutate, key, problem):
    data = _base()
    mutate(data)
    with pytest.raises(ConfigError) as exc:
        config_from_dict(data, "cabin.toml")
    assert exc.value.path == "cabin.toml"
    assert exc.value.key == key
    assert problem in exc.value.problem
    assert str(exc.value).startswith(f"cabin.toml: {key}: ")


def test_new_limit_set_and_selection(tmp_path):
    p = tmp_path / "m.toml"
    p.write_text(
        'limit_set = "leak-check"\n'
        '[[volumes]]\nname = "a"\nvolume_m3 = 1.0\n'
        '[[sensors]]\nlink = "l"\naddr = 2\nvolume = "a"\n'
        "[limits.leak-check]\ncaution_leak_kg_day = 0.5\n"
    )
    cfg = load_config(p)
    assert cfg.limits.caution_leak_kg_day == 0.5 and cfg.limits.caution_sigma == 5.0


def test_file_errors(tmp_path):
    with pytest.raises(ConfigError) as exc:
        load_config(tmp_path / "none.toml")
    assert exc.value.key == "(file)"
    bad = tmp_path / "bad.toml"
    bad.write_text("[[volumes]\n")
    with pytest.raises(ConfigError) as exc:
        load_config(bad)
    assert exc.value.key == "(syntax)"
