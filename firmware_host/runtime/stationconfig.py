"""The ``[station]`` table: where and as whom a board publishes over MQTT 5.

    [station]
    url = "mqtts://station-broker.lan:8883"  # mqtt://HOST[:1883] or mqtts://HOST[:8883] (TLS)
    station = "iss"            # cabinwatch/v1/<station>/...   (1-64 of A-Z a-z 0-9 _ . -)
    node = "board-rs"          # cabinwatch/v1/<station>/node/<node>/...; the MQTT username
    credentials = "/etc/cabinwatch/mqtt.toml"   # username = "board-rs", password = "..."
    tls_ca = "/etc/cabinwatch/station-ca.crt"   # mqtts: the CA that signed the broker
    tls_cert = "/etc/cabinwatch/board-rs.crt"   # optional client certificate ...
    tls_key = "/etc/cabinwatch/board-rs.key"    # ... and its key (both or neither)
    session_file = "station-session"            # the persisted session number
    estimate_qos = 0           # 0 or 1
    keepalive_s = 5            # MQTT keep-alive, s (the broker sends the Will after 1.5 x)

The url and the credentials file are read by ``common.mqtt_url`` and
``common.mqtt_credentials`` (as the aggregator's station file).  Relative
paths are taken from ``[outputs] directory`` (as the archive's).  The
credentials file is read here, once: a missing or unreadable file, a missing
key, or a username other than the node name (the broker's ACL confines a
board to ``node/%u/#``) is a ``ConfigError``: one line, exit 2.  So are the
names (``common.station_wire.check_name``) of the station, the node and every
volume and hatch of the configuration (each is a topic level).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from common.mqtt_credentials import read_credentials
from common.mqtt_url import BrokerAddress, BrokerUrlError, parse_broker_url
from common.station_wire import WireError, check_name
from common.tomltable import Table

#: MQTT keep-alive, s: the broker declares a silent board dead after 1.5 x this.
KEEPALIVE_S = 5


@dataclass(frozen=True)
class StationConfig:
    """A board's station publishing; see module docstring."""

    broker: BrokerAddress
    station: str
    node: str
    session_file: Path
    username: str | None = None
    password: str | None = None
    credentials: Path | None = None
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    estimate_qos: int = 0
    keepalive_s: int = KEEPALIVE_S

    @property
    def tls(self) -> bool:
        return self.broker.tls

    @property
    def client_id(self) -> str:
        """One client id per node: a restarted board takes its old connection over."""
        return f"cabinwatch-{self.station}-{self.node}"


def _names(t: Table, what: str, key: str) -> str:
    name = t.str(key)
    try:
        return check_name(what, name)
    except WireError as exc:
        raise t.err(key, str(exc)) from None


def station_from_table(
    top: Table, directory: Path, volumes: list[str], hatches: list[str]
) -> StationConfig:
    """The ``[station]`` table of ``top``; ``volumes`` and ``hatches`` the
    configuration's names (each must be a topic level); paths relative to ``directory``."""
    t = top.sub("station", "a table [station]")
    url = t.path_str("url")
    try:
        broker = parse_broker_url(url)
    except BrokerUrlError as exc:
        raise t.err("url", str(exc)) from None
    station = _names(t, "station", "station")
    node = _names(t, "node", "node")
    for what, key, values in (("volume", "volumes", volumes), ("hatch", "hatches", hatches)):
        for i, name in enumerate(values):
            try:
                check_name(what, name)
            except WireError as exc:
                raise top.err(f"{key}[{i}].name", f"{exc} (a topic level for [station])") from None

    def path(key: str, default: str | None = None) -> Path | None:
        value = t.path_str(key, default)
        if not value:
            return None
        p = Path(value)
        return p if p.is_absolute() else directory / p

    credentials = path("credentials")
    username = password = None
    if credentials is not None:
        account = read_credentials(credentials)
        username, password = account.username, account.password
        if username != node:
            raise t.err(
                "credentials",
                f"{credentials}: username {username!r} is not the node {node!r} "
                "(the broker's ACL lets a board write only node/<its username>/)",
            )
    tls_ca, tls_cert, tls_key = path("tls_ca"), path("tls_cert"), path("tls_key")
    for key, p in (("tls_ca", tls_ca), ("tls_cert", tls_cert), ("tls_key", tls_key)):
        if p is None:
            continue
        if not broker.tls:
            raise t.err(key, f"TLS files need an mqtts:// url (got {url!r})")
        if not p.is_file():
            raise t.err(key, f"{p}: no such file")
    if (tls_cert is None) != (tls_key is None):
        missing = "tls_key" if tls_key is None else "tls_cert"
        raise t.err(missing, "missing: a client certificate needs both tls_cert and tls_key")
    cfg = StationConfig(
        broker=broker,
        station=station,
        node=node,
        session_file=path("session_file", "station-session"),
        username=username,
        password=password,
        credentials=credentials,
        tls_ca=tls_ca,
        tls_cert=tls_cert,
        tls_key=tls_key,
        estimate_qos=t.int("estimate_qos", 0, lo=0, hi=1),
        keepalive_s=t.int("keepalive_s", KEEPALIVE_S, lo=1, hi=3600),
    )
    t.done()
    return cfg
