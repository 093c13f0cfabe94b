"""A monitor configuration derived from a scenario's volumes, hatches and sensors;
for a station split across boards (``[[boards]]``), each board's configuration and
the station file of ``cabinwatch station``.

What a crew would configure for that hardware: never the scenario's leaks,
faults or link faults, which the monitor has to find for itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import tomli_w

from common.errors import ConfigError
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


# --- a station split across boards (``[[boards]]`` of a scenario) -------------------

#: The keys of a board's ``[station]`` table (its MQTT publisher), in ONE place:
#: attribute of ``BoardStation`` -> key in the board's runtime configuration.
STATION_TABLE_KEYS = {
    "broker": "url",
    "station": "station",
    "node": "node",
    "credentials": "credentials",
    "tls_ca": "tls_ca",
    "tls_cert": "tls_cert",
    "tls_key": "tls_key",
    "session_file": "session_file",
}


@dataclass(frozen=True)
class BoardStation:
    """What a board needs to publish to the station's broker (its ``[station]`` table).

    ``broker`` an ``mqtt://`` or ``mqtts://`` URL; file paths as the board sees them
    (None: not given)."""

    broker: str
    station: str
    node: str
    credentials: str | None = None
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    session_file: str | None = None

    def table(self) -> dict:
        """The ``[station]`` table (keys ``STATION_TABLE_KEYS``, None values left out)."""
        out = {}
        for attr, key in STATION_TABLE_KEYS.items():
            value = getattr(self, attr)
            if value is not None:
                out[key] = value
        return out


def board_of(scenario, node: str):
    """The scenario's board ``node``; ConfigError naming the boards otherwise."""
    for b in scenario.boards:
        if b.node == node:
            return b
    known = ", ".join(b.node for b in scenario.boards) or "none: no [[boards]]"
    raise ConfigError(scenario.path, "boards", f"no board {node!r} (boards: {known})")


def board_config_dict(
    scenario,
    node: str,
    *,
    urls: dict[str, str] | None = None,
    station: BoardStation | None = None,
    loop_rate_hz: float = DERIVED_LOOP_RATE_HZ,
) -> dict:
    """The monitor's configuration of board ``node`` of a split scenario: only its
    volumes, their sensors, its links (``urls``: link -> URL, None for none) and the
    hatches between two of its own volumes, plus the ``[station]`` table if given.

    A hatch between one of its volumes and another board's is not in it: the board
    cannot know that hatch's state from its own configuration (the crew publishes
    it, ``harness.crew``), and its group ends at its own volumes."""
    b = board_of(scenario, node)
    mine = set(b.volumes)
    full = config_dict_from_scenario(scenario, loop_rate_hz=loop_rate_hz)
    data: dict = {
        "volumes": [v for v in full["volumes"] if v["name"] in mine],
        "sensors": [s for s in full["sensors"] if s["volume"] in mine],
        "loop": full["loop"],
    }
    hatches = [
        h for h in full.get("hatches", []) if h["volume_a"] in mine and h["volume_b"] in mine
    ]
    if hatches:
        data["hatches"] = hatches
    if "p_min_pa" in full:
        data["p_min_pa"] = full["p_min_pa"]
    if urls is not None:
        links = scenario.board_links(node)
        missing = [lk for lk in links if lk not in urls]
        if missing:
            raise ValueError(f"board {node}: no URL for link(s) {', '.join(missing)}")
        data["links"] = link_tables(scenario, {lk: urls[lk] for lk in links})
    if station is not None:
        data["station"] = station.table()
    return data


def board_hatches(scenario, node: str) -> list[str]:
    """The hatches board ``node`` has in its configuration (both sides its own)."""
    mine = set(board_of(scenario, node).volumes)
    return [h.name for h in scenario.hatches if h.volume_a in mine and h.volume_b in mine]


def station_file_dict(
    scenario,
    station: str,
    broker_url: str,
    *,
    caution_kg_day: float = 5.0,
    crew_volume: str | None = None,
    hatch_reporter: str | None = None,
    extra: dict | None = None,
) -> dict:
    """The station file (STATION.toml of ``cabinwatch station``) for a split scenario:
    its volumes (with their sensors' count, noise and rate), its hatches (with the side
    each opens into) and its boards (the volumes each estimates, the hatches each
    reports).  ``hatch_reporter``: the node that reports the hatches no board has
    in its configuration (those between two boards' volumes; the scripted crew,
    ``harness.crew``), listed as a ``[[boards]]`` entry with no volumes.  ``extra``:
    more keys of the ``[station]`` table (credentials, ...)."""
    if not scenario.boards:
        raise ConfigError(scenario.path, "boards", "not a split station: no [[boards]] tables")
    top: dict = {"name": station, "broker": broker_url, "caution_kg_day": caution_kg_day}
    if crew_volume is not None:
        top["crew_volume"] = crew_volume
    if scenario.min_pressure_pa:
        top["min_pressure_pa"] = scenario.min_pressure_pa
    top.update(extra or {})
    volumes = []
    for v in scenario.volumes:
        sensors = [s for s in scenario.sensors if s.volume == v.name]
        entry: dict = {"name": v.name, "volume_m3": v.volume_m3, "escape_vehicle": v.escape_vehicle}
        if sensors:
            entry["sensors"] = len(sensors)
            entry["noise_pa"] = max(s.noise_pa for s in sensors)
            entry["rate_hz"] = min(s.rate_hz for s in sensors)
        volumes.append(entry)
    hatches = []
    for h in scenario.hatches:
        entry = {"name": h.name, "a": h.volume_a, "b": h.volume_b}
        if h.opens_into is not None:
            entry["opens_into"] = h.opens_into
        hatches.append(entry)
    boards = [
        {"node": b.node, "volumes": list(b.volumes), "hatches": board_hatches(scenario, b.node)}
        for b in scenario.boards
    ]
    if hatch_reporter is not None:
        reported = {h for b in boards for h in b["hatches"]}
        rest = [h.name for h in scenario.hatches if h.name not in reported]
        if rest:
            boards.append({"node": hatch_reporter, "volumes": [], "hatches": rest})
    out = {"station": top, "volumes": volumes, "boards": boards}
    if hatches:
        out["hatches"] = hatches
    return out
