"""The runtime's part of the configuration: ``[links]``, ``[outputs]``, ``[display]``.

The monitor core's part (volumes, sensors, hatches, limits, loop) is read by
``firmware_host.config``; this module validates the tables it passes through.
Every mistake raises ``ConfigError(file, dotted key, problem)``.

    [links.station]            # one table per link, named as in [[sensors]] link =
    url = "/dev/ttyUSB0"       # any pyserial port or URL: /dev/pts/3, socket://127.0.0.1:7000
    baudrate = 115200
    driver = "native"          # the transducer family (drivers.families): "native", "keller",
                               # "digiquartz"
    configure = true           # native: IDENTIFY, SET_RATE (rate_hz) and START on connect
    echo = false               # polled: the RS-485 converter echoes every request
    reply_timeout_s = 0.2      # polled: the reply window after a request is on the wire

    # driver = "modbus" (drivers.modbus.layout): the register layout
    preset = "keller"          # KELLER in Modbus mode: 0x0100 P1 + TOB1, one FC3 read
    max_registers = 4          # per read (default 125)
    [links.station.pressure]   # instead of a preset, with [links.station.temperature]:
    register = 0               #   wire address 0..65535
    function = 3               #   3 holding, 4 input registers
    type = "float32"           #   float32, int32, uint32, int16, uint16
    word_order = "big"         #   32-bit values: "big" or "little" (low word first)
    scale = 1.0                #   value = raw * scale + offset, in unit
    offset = 0.0
    unit = "Pa"                #   Pa, hPa, kPa, bar, mbar, psi; temperature C, K
    [links.station.devices.2]  # sensor 2 differs: the same keys (preset or tables)

Sensor addresses: native 1..247; keller 1..249, or 250 (the transparent
address) only as the one sensor of its link; modbus 1..247.  A polled link
(keller, modbus) whose sensors' rates ask more line time than its baud rate
carries is refused with the numbers (``drivers.keller.driver.keller_budget``,
``drivers.modbus.driver.modbus_budget``).

A digiquartz link (Paroscientific Digiquartz, ASCII ``*DDSSCC``) takes IDs
1..98 (99 addresses every device: never a sensor's) and its own keys
(``drivers.digiquartz.driver.link_options``):

    [links.dq]
    driver = "digiquartz"
    unit = "hPa"               # set UN at start-up (EW + UN=); absent: read UN and convert
                               # (psi, hPa, bar, kPa, MPa, inHg, mmHg, mH2O)
    mode = "polled"            # P3 + Q3 per sample; "continuous": P4/P7 output read as it comes
    command = "P7"             # continuous only: "P7" (temperature once, then pressure) or "P4"
    pressure_integration_ms = 100     # PI and TI the line budget assumes (the driver
    temperature_integration_ms = 100  # reads the devices' own for its reply windows)

Its line budget counts the characters at the baud rate plus the integration
times (P3 about PI + TI, Q3 TI); a continuous link's output period (P4: PI +
TI, P7: PI) must be no longer than its fastest sensor's period.

    [outputs]
    directory = "/var/lib/cabinwatch"   # relative paths below are taken from here;
                                        # itself relative to the working directory
    archive = "archive.sqlite"          # SQLite (WAL); "" for none
    telemetry = "-"                     # JSON lines: "-" stdout, a file, or "" for none
    telemetry_rate_hz = 1.0
    capture = "capture"                 # raw bytes of every link: capture/<link>.NNNNNN.bin
    capture_max_bytes = 16000000
    capture_keep = 64                   # files kept per link (0: all)
    control_socket = "cabinwatch.sock"  # `cabinwatch ctl` talks to it; "" for none
    ccsds = ["udp://127.0.0.1:10015", "tcp://0.0.0.0:10016", "packets.bin"]
                                        # CCSDS/PUS-C packets (docs/ground.md): a URL or a
                                        # list; udp://HOST:PORT, tcp://HOST:PORT (the monitor
                                        # listens), file:PATH or a path; "" or [] for none
    ccsds_rate_hz = 1.0                 # TM[3,25] housekeeping rate (events at once)
    ccsds_apid_hk = 256                 # APIDs 0..2046 (2047: idle packets), distinct
    ccsds_apid_events = 257

    [display]
    enabled = true
    period_s = 1.0

    [station]                           # publish to the station's MQTT broker
    url = "mqtt://192.168.50.1:1883"    # (firmware_host.runtime.stationconfig, docs/runtime.md)
    station = "iss"
    node = "board-rs"
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from common import bounds
from common.errors import ConfigError
from common.tomltable import Table
from drivers.families import FAMILIES
from firmware_host.config import MonitorConfig, load_config
from firmware_host.runtime.stationconfig import StationConfig, station_from_table

DRIVERS = tuple(FAMILIES)
#: the sensor addresses each driver allows on a link
ADDRESSES = {name: f.addresses for name, f in FAMILIES.items()}
#: a polled link's reply window, s (KELLER masters use 0.1-0.5 s)
REPLY_TIMEOUT_S = bounds.Range(0.001, 10.0)


@dataclass(frozen=True)
class LinkConfig:
    """One serial link: a pyserial port or URL, at ``baudrate`` baud."""

    name: str
    url: str
    baudrate: int = 115200
    driver: str = "native"
    configure: bool = True
    echo: bool = False
    reply_timeout_s: float = 0.2
    #: the family's own link settings (``drivers.families``), already validated
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class OutputsConfig:
    """Where data goes; paths already resolved against ``directory``."""

    directory: Path = Path(".")
    archive: Path | None = None
    telemetry: str | None = None  # "-" or a path
    telemetry_rate_hz: float = 1.0
    capture: Path | None = None
    capture_max_bytes: int = 16_000_000
    capture_keep: int = 64
    control_socket: Path | None = None
    #: CCSDS packet sinks (URLs, ``firmware_host.ground.outputs``); () for none
    ccsds: tuple[str, ...] = ()
    ccsds_rate_hz: float = 1.0
    ccsds_apid_hk: int = 256
    ccsds_apid_events: int = 257


@dataclass(frozen=True)
class DisplayConfig:
    enabled: bool = True
    period_s: float = 1.0


@dataclass(frozen=True)
class RuntimeConfig:
    """Everything ``cabinwatch monitor`` needs."""

    monitor: MonitorConfig
    links: dict[str, LinkConfig] = field(default_factory=dict)
    outputs: OutputsConfig = field(default_factory=OutputsConfig)
    display: DisplayConfig = field(default_factory=DisplayConfig)
    source: str = "<built-in>"
    #: ``[station]``: publishing to the station's MQTT broker (None: not configured)
    station: StationConfig | None = None


def runtime_from_monitor(monitor: MonitorConfig, *, require_links: bool = True) -> RuntimeConfig:
    """Validate the runtime tables kept in ``monitor.extra``."""
    src = monitor.source
    top = Table(src, "", monitor.extra or {})
    raw_links = top.sub("links", "tables [links.NAME]")
    links = {}
    for name in raw_links.data:
        t = raw_links.sub(name, "a table with url = ...")
        url = t.path_str("url", None)
        if not url:
            raise t.err("url", "missing: a serial port or URL is required")
        baud = t.int("baudrate", 115200, lo=1, hi=100_000_000)
        driver = t.str("driver", "native")
        if driver not in DRIVERS:
            known = ", ".join(DRIVERS)
            raise t.err("driver", f"unknown driver {driver!r} ({known})")
        configure = t.bool("configure", True)
        echo = t.bool("echo", False)
        reply_timeout_s = t.num("reply_timeout_s", 0.2, positive=True, rng=REPLY_TIMEOUT_S)
        if not FAMILIES[driver].polled and (t.has("echo") or t.has("reply_timeout_s")):
            key = "echo" if t.has("echo") else "reply_timeout_s"
            raise t.err(key, f"only for a polled link (driver is {driver!r})")
        parse_options = FAMILIES[driver].link_options
        options = parse_options(t) if parse_options is not None else {}
        t.done()
        links[name] = LinkConfig(name, url, baud, driver, configure, echo, reply_timeout_s, options)
    used = sorted({s.link for s in monitor.sensors})
    if require_links:
        if not links:
            raise top.err("links", "no [links.NAME] table: the sensors' links need a port")
        for i, s in enumerate(monitor.sensors):
            if s.link not in links:
                raise ConfigError(
                    src, f"sensors[{i}].link", f"link {s.link!r} has no [links.{s.link}] table"
                )
    for name in links:
        if name not in used:
            raise raw_links.err(name, "no sensor uses this link")
    _check_addresses(monitor, links)
    for name, link in links.items():  # per-device tables (modbus) name a sensor of the link
        addrs = {s.addr for s in monitor.sensors if s.link == name}
        for key in link.options.get("devices", {}):
            if int(key) not in addrs:
                raise raw_links.err(
                    f"{name}.devices.{key}", f"no sensor at address {key} on {name}"
                )
    for name, link in links.items():
        fam = FAMILIES[link.driver]
        if fam.budget is not None:
            rates = [s.rate_hz for s in monitor.sensors if s.link == name]
            budget = fam.budget(name, rates, link.baudrate, link.options)
            if not budget.fits:
                raise raw_links.err(name, budget.describe())

    out = top.sub("outputs", "a table [outputs]")
    # Relative to the working directory (systemd: WorkingDirectory=), not the file.
    directory = Path(out.path_str("directory", "."))

    def path(key: str, default: str | None) -> Path | None:
        value = out.path_str(key, default)
        if not value:
            return None
        p = Path(value)
        return p if p.is_absolute() else directory / p

    telemetry = out.path_str("telemetry", "")
    if telemetry and telemetry != "-" and not Path(telemetry).is_absolute():
        telemetry = str(directory / telemetry)
    outputs = OutputsConfig(
        directory=directory,
        archive=path("archive", "archive.sqlite"),
        telemetry=telemetry or None,
        telemetry_rate_hz=out.num("telemetry_rate_hz", 1.0, positive=True, rng=bounds.RATE_HZ),
        capture=path("capture", "capture"),
        capture_max_bytes=out.int("capture_max_bytes", 16_000_000, lo=4096, hi=2**40),
        capture_keep=out.int("capture_keep", 64, lo=0, hi=1_000_000),  # 0: keep all
        control_socket=path("control_socket", "cabinwatch.sock"),
        **_ccsds(out),
    )
    out.done()

    disp = top.sub("display", "a table [display]")
    period = disp.num("period_s", 1.0, positive=True)
    if period > 2.0:
        raise disp.err("period_s", f"must be <= 2.0 (got {period})")
    display = DisplayConfig(disp.bool("enabled", True), period)
    disp.done()
    station = None
    if top.has("station"):
        station = station_from_table(
            top,
            directory,
            [v.name for v in monitor.volumes],
            [h.name for h in monitor.hatches],
        )
    return RuntimeConfig(monitor, links, outputs, display, src, station)


def _ccsds(out: Table) -> dict:
    """The ``ccsds*`` keys of ``[outputs]``: sink URLs, HK rate and APIDs."""
    from firmware_host.ground.layout import APID_EVENTS, APID_HK, APID_MAX
    from firmware_host.ground.outputs import SinkError, parse_url

    raw = out.raw("ccsds", ())
    urls = (raw,) if isinstance(raw, str) else raw
    if not isinstance(urls, (list, tuple)) or not all(isinstance(u, str) for u in urls):
        raise out.err("ccsds", "must be a URL string or a list of them")
    urls = tuple(u for u in urls if u)
    for u in urls:
        if any(c in u for c in "\x00\n\r"):
            raise out.err("ccsds", "must not contain NUL or line breaks")
        try:
            parse_url(u)
        except SinkError as exc:
            raise out.err("ccsds", str(exc)) from None
    apid_hk = out.int("ccsds_apid_hk", APID_HK, lo=0, hi=APID_MAX)
    apid_events = out.int("ccsds_apid_events", APID_EVENTS, lo=0, hi=APID_MAX)
    if apid_hk == apid_events:
        raise out.err("ccsds_apid_events", f"must differ from ccsds_apid_hk ({apid_hk})")
    return {
        "ccsds": urls,
        "ccsds_rate_hz": out.num("ccsds_rate_hz", 1.0, positive=True, rng=bounds.RATE_HZ),
        "ccsds_apid_hk": apid_hk,
        "ccsds_apid_events": apid_events,
    }


def load_runtime_config(path: str | Path, *, require_links: bool = True) -> RuntimeConfig:
    """Read and validate a whole configuration file (monitor and runtime tables)."""
    return runtime_from_monitor(load_config(path), require_links=require_links)


def _check_addresses(monitor: MonitorConfig, links: dict[str, LinkConfig]) -> None:
    """Each sensor's address is legal for its link's driver; KELLER's 250 is alone."""
    for i, s in enumerate(monitor.sensors):
        driver = links[s.link].driver if s.link in links else "native"
        lo, hi = ADDRESSES[driver]
        if not lo <= s.addr <= hi:
            raise ConfigError(
                monitor.source,
                f"sensors[{i}].addr",
                f"must be in {lo}..{hi} on a {driver} link (got {s.addr})",
            )
        excl = FAMILIES[driver].exclusive_addr
        if excl is not None and s.addr == excl:
            others = sum(1 for o in monitor.sensors if o.link == s.link) - 1
            if others:
                raise ConfigError(
                    monitor.source,
                    f"sensors[{i}].addr",
                    f"250 (transparent: every device answers) only alone on its link; "
                    f"{s.link} has {others} other sensor(s)",
                )
