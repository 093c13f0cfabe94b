"""The station file (``cabinwatch station --config STATION.toml``) as a typed ``StationConfig``.

The file names the station, its broker, the volumes and hatches (built into a
``station.graph.StationGraph``), the boards (which volumes each estimates and
which hatches it reports) and the advisor's settings.  Paths are relative to
the file; the broker URL is read by ``common.mqtt_url`` (as the board's
``[station] url``).  Every mistake is one ``ConfigError`` line ``FILE: KEY: PROBLEM``
(``common.tomltable``).  Units: m^3, Pa, Hz, kg/day, s.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from common import bounds
from common.errors import CabinwatchError, ConfigError
from common.mqtt_credentials import Credentials, read_credentials
from common.mqtt_url import BrokerAddress, BrokerUrlError, parse_broker_url
from common.station_wire import WireError, check_name
from common.tomltable import Table, read_toml
from station.graph import GraphError, StationGraph, StationHatch, StationVolume


def broker_option(url: str) -> BrokerAddress:
    """The ``--broker`` option: a bad URL is a one-line ``CabinwatchError``."""
    try:
        return parse_broker_url(url)
    except BrokerUrlError as exc:
        raise CabinwatchError(f"--broker: {exc}") from None


@dataclass(frozen=True)
class BoardConfig:
    """A board (its ``[station]`` node name), the volumes it estimates, the hatches it reports."""

    node: str
    volumes: tuple[str, ...]
    hatches: tuple[str, ...]


@dataclass(frozen=True)
class AdvisorSettings:
    """What the isolation advisor plans against: its leak threshold (kg/day), where the
    crew is (None: anywhere) and the pressure the reserve is counted down to (Pa)."""

    caution_kg_day: float
    crew_volume: str | None
    min_pressure_pa: float


@dataclass(frozen=True)
class StationConfig:
    """A whole station file, checked."""

    source: str
    name: str
    broker: BrokerAddress
    credentials: Credentials | None
    tls_ca: Path | None
    graph: StationGraph
    boards: tuple[BoardConfig, ...]
    advisor: AdvisorSettings
    offline_after_s: float

    def with_broker(self, broker: BrokerAddress) -> StationConfig:
        """This station with another broker (``--broker`` overrides the file)."""
        from dataclasses import replace

        if self.tls_ca is not None and not broker.tls:
            raise CabinwatchError(f"--broker: {broker.url}: the station file sets tls_ca: mqtts://")
        return replace(self, broker=broker)

    def boards_of(self, volume: str) -> tuple[str, ...]:
        """The nodes that estimate ``volume``."""
        return tuple(b.node for b in self.boards if volume in b.volumes)


def _name(t: Table, key: str, what: str, *, optional: bool = False) -> str | None:
    """A name usable as one topic level (``check_name``); None when ``optional`` and absent."""
    v = t.ident(key, None) if optional else t.ident(key)
    if v is None:
        return None
    try:
        return check_name(what, v)
    except WireError as exc:
        raise t.err(key, str(exc)) from None


def _names(t: Table, key: str, what: str) -> tuple[str, ...]:
    v = t.raw(key, [])
    if not isinstance(v, list):
        raise t.err(key, f"must be a list of {what} names")
    out = []
    for i, item in enumerate(v):
        if not isinstance(item, str):
            raise t.err(f"{key}[{i}]", "must be a string")
        try:
            check_name(what, item)
        except WireError as exc:
            raise t.err(f"{key}[{i}]", str(exc)) from None
        if item in out:
            raise t.err(f"{key}[{i}]", f"{what} {item!r} given twice")
        out.append(item)
    return tuple(out)


def _file(t: Table, key: str, base: Path) -> Path | None:
    v = t.path_str(key, None)
    if v is None:
        return None
    if not v:
        raise t.err(key, "must not be empty")
    p = Path(v)
    return p if p.is_absolute() else base / p


def load_station_config(path: str | Path) -> StationConfig:
    """Read and check a station file; ``ConfigError`` (one line) on any mistake."""
    src = str(path)
    top = Table(src, "", read_toml(path))
    base = Path(path).resolve().parent

    if "station" not in top.data:
        raise ConfigError(src, "station", "missing")
    st = top.sub("station")
    name = _name(st, "name", "station")
    url = st.path_str("broker")
    try:
        broker = parse_broker_url(url)
    except BrokerUrlError as exc:
        raise st.err("broker", str(exc)) from None
    cred_path = _file(st, "credentials", base)
    credentials = None
    if cred_path is not None:
        if not cred_path.is_file():
            raise st.err("credentials", f"{cred_path}: no such file")
        credentials = read_credentials(cred_path)
    tls_ca = _file(st, "tls_ca", base)
    if tls_ca is not None:
        if not broker.tls:
            raise st.err("tls_ca", "only with an mqtts:// broker")
        if not tls_ca.is_file():
            raise st.err("tls_ca", f"{tls_ca}: not a readable file")
    caution = st.num("caution_kg_day", positive=True, rng=bounds.PER_DAY)
    crew = _name(st, "crew_volume", "volume", optional=True)
    min_p = st.num("min_pressure_pa", 0.0, min=0.0, rng=bounds.PRESSURE_DELTA_PA)
    offline_after = st.num("offline_after_s", 10.0, rng=bounds.DURATION_S)
    st.done()

    volumes = []
    for t in top.tables("volumes"):
        volumes.append(
            StationVolume(
                name=_name(t, "name", "volume"),
                volume_m3=t.num("volume_m3", rng=bounds.VOLUME_M3),
                escape_vehicle=t.bool("escape_vehicle", False),
                sensors=t.int("sensors", 1, lo=0, hi=1000),
                noise_pa=t.num("noise_pa", 3.0, positive=True, rng=bounds.PRESSURE_PA),
                rate_hz=t.num("rate_hz", 1.0, rng=bounds.RATE_HZ),
            )
        )
        if any(o.name == volumes[-1].name for o in volumes[:-1]):
            raise t.err("name", f"volume {volumes[-1].name!r} given twice")
        t.done()
    if not volumes:
        raise ConfigError(src, "volumes", "missing (at least one [[volumes]])")
    known_v = {v.name for v in volumes}

    hatches = []
    for t in top.tables("hatches"):
        h = StationHatch(
            name=_name(t, "name", "hatch"),
            a=_name(t, "a", "volume"),
            b=_name(t, "b", "volume"),
            opens_into=_name(t, "opens_into", "volume", optional=True),
            max_open_dp_pa=t.num("max_open_dp_pa", 500.0, min=0.0, rng=bounds.PRESSURE_PA),
        )
        for end in ("a", "b"):
            if getattr(h, end) not in known_v:
                raise t.err(end, f"unknown volume {getattr(h, end)!r}")
        if h.a == h.b:
            raise t.err("b", f"joins {h.a!r} to itself")
        if h.opens_into not in (None, h.a, h.b):
            raise t.err("opens_into", f"{h.opens_into!r} is not {h.a!r} or {h.b!r}")
        if any(o.name == h.name for o in hatches):
            raise t.err("name", f"hatch {h.name!r} given twice")
        t.done()
        hatches.append(h)
    try:
        graph = StationGraph(volumes, hatches)
    except GraphError as exc:
        raise ConfigError(src, "volumes/hatches", str(exc)) from None
    if crew is not None and crew not in known_v:
        raise st.err("crew_volume", f"unknown volume {crew!r}")

    boards: list[BoardConfig] = []
    for t in top.tables("boards"):
        node = _name(t, "node", "node")
        if any(b.node == node for b in boards):
            raise t.err("node", f"node {node!r} given twice")
        vols = _names(t, "volumes", "volume")
        for i, v in enumerate(vols):
            if v not in known_v:
                raise t.err(f"volumes[{i}]", f"unknown volume {v!r}")
        hs = _names(t, "hatches", "hatch")
        for i, h in enumerate(hs):
            if h not in graph.hatches:
                raise t.err(f"hatches[{i}]", f"unknown hatch {h!r}")
        if not vols and not hs:
            # a board with hatches only: a crew panel reporting the hatches between boards
            raise t.err("volumes", "must name at least one volume (or the board hatches)")
        t.done()
        boards.append(BoardConfig(node, vols, hs))
    if not boards:
        raise ConfigError(src, "boards", "missing (at least one [[boards]])")
    watched = {v for b in boards for v in b.volumes}
    for i, v in enumerate(volumes):
        if v.name not in watched:
            raise ConfigError(src, f"volumes[{i}]", f"volume {v.name!r} is watched by no board")
    top.done()
    return StationConfig(
        source=src,
        name=name,
        broker=broker,
        credentials=credentials,
        tls_ca=tls_ca,
        graph=graph,
        boards=tuple(boards),
        advisor=AdvisorSettings(caution, crew, min_p),
        offline_after_s=offline_after,
    )
