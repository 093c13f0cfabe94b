"""The runtime's part of the configuration: ``[links]``, ``[outputs]``, ``[display]``.

The monitor core's part (volumes, sensors, hatches, limits, loop) is read by
``firmware_host.config``; this module validates the tables it passes through.
Every mistake raises ``ConfigError(file, dotted key, problem)``.

    [links.station]            # one table per link, named as in [[sensors]] link =
    url = "/dev/ttyUSB0"       # any pyserial port or URL: /dev/pts/3, socket://127.0.0.1:7000
    baudrate = 115200
    driver = "native"          # the transducer family's driver
    configure = true           # IDENTIFY, SET_RATE (the sensors' rate_hz) and START on connect

    [outputs]
    directory = "/var/lib/cabinwatch"   # relative paths below are taken from here;
                                        # itself relative to the working directory
    archive = "archive.sqlite"          # SQLite (WAL); "" for none
    telemetry = "-"                     # JSON lines: "-" stdout, a file, or "" for none
    telemetry_rate_hz = 1.0
    capture = "capture"                 # raw bytes of every link: capture/<link>.NNNNNN.cwcap
    capture_max_bytes = 16000000
    capture_keep = 64                   # files kept per link (0: all)
    control_socket = "cabinwatch.sock"  # `cabinwatch ctl` talks to it; "" for none

    [display]
    enabled = true
    period_s = 1.0
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.errors import ConfigError
from firmware_host.config import MonitorConfig, load_config

DRIVERS = ("native",)


@dataclass(frozen=True)
class LinkConfig:
    """One serial link: a pyserial port or URL, at ``baudrate`` baud."""

    name: str
    url: str
    baudrate: int = 115200
    driver: str = "native"
    configure: bool = True


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


def _check_keys(src: str, table: dict, allowed: set[str], prefix: str) -> None:
    for key in table:
        if key not in allowed:
            known = ", ".join(sorted(allowed))
            raise ConfigError(src, f"{prefix}.{key}", f"unknown key (allowed: {known})")


def _typed(src: str, table: dict, key: str, kind: type, default: Any, prefix: str) -> Any:
    if key not in table:
        return default
    value = table[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(src, f"{prefix}.{key}", f"must be {kind.__name__}, not {value!r}")
    return value


def runtime_from_monitor(monitor: MonitorConfig, *, require_links: bool = True) -> RuntimeConfig:
    """Validate the runtime tables kept in ``monitor.extra``."""
    src = monitor.source
    extra = monitor.extra or {}
    raw_links = extra.get("links", {})
    if not isinstance(raw_links, dict):
        raise ConfigError(src, "links", "must be tables [links.NAME]")
    links = {}
    for name, table in raw_links.items():
        prefix = f"links.{name}"
        if not isinstance(table, dict):
            raise ConfigError(src, prefix, "must be a table with url = ...")
        _check_keys(src, table, {"url", "baudrate", "driver", "configure"}, prefix)
        url = _typed(src, table, "url", str, None, prefix)
        if not url:
            raise ConfigError(src, f"{prefix}.url", "missing: a serial port or URL is required")
        baud = _typed(src, table, "baudrate", int, 115200, prefix)
        if baud <= 0:
            raise ConfigError(src, f"{prefix}.baudrate", f"must be positive, not {baud}")
        driver = _typed(src, table, "driver", str, "native", prefix)
        if driver not in DRIVERS:
            known = ", ".join(DRIVERS)
            raise ConfigError(src, f"{prefix}.driver", f"unknown driver {driver!r} ({known})")
        configure = _typed(src, table, "configure", bool, True, prefix)
        links[name] = LinkConfig(name, url, baud, driver, configure)
    used = sorted({s.link for s in monitor.sensors})
    if require_links:
        if not links:
            raise ConfigError(src, "links", "no [links.NAME] table: the sensors' links need a port")
        for i, s in enumerate(monitor.sensors):
            if s.link not in links:
                raise ConfigError(
                    src, f"sensors[{i}].link", f"link {s.link!r} has no [links.{s.link}] table"
                )
    for name in links:
        if name not in used:
            raise ConfigError(src, f"links.{name}", "no sensor uses this link")

    raw_out = extra.get("outputs", {})
    if not isinstance(raw_out, dict):
        raise ConfigError(src, "outputs", "must be a table [outputs]")
    allowed = {
        "directory",
        "archive",
        "telemetry",
        "telemetry_rate_hz",
        "capture",
        "capture_max_bytes",
        "capture_keep",
        "control_socket",
    }
    _check_keys(src, raw_out, allowed, "outputs")
    # Relative to the working directory (systemd: WorkingDirectory=), not the file.
    directory = Path(_typed(src, raw_out, "directory", str, ".", "outputs"))

    def path(key: str, default: str | None) -> Path | None:
        value = _typed(src, raw_out, key, str, default, "outputs")
        if not value:
            return None
        p = Path(value)
        return p if p.is_absolute() else directory / p

    telemetry = _typed(src, raw_out, "telemetry", str, "", "outputs")
    if telemetry and telemetry != "-" and not Path(telemetry).is_absolute():
        telemetry = str(directory / telemetry)
    rate = _typed(src, raw_out, "telemetry_rate_hz", float, 1.0, "outputs")
    if rate <= 0:
        raise ConfigError(src, "outputs.telemetry_rate_hz", f"must be positive, not {rate}")
    max_bytes = _typed(src, raw_out, "capture_max_bytes", int, 16_000_000, "outputs")
    if max_bytes < 4096:
        raise ConfigError(src, "outputs.capture_max_bytes", f"must be >= 4096, not {max_bytes}")
    keep = _typed(src, raw_out, "capture_keep", int, 64, "outputs")
    if keep < 0:
        raise ConfigError(src, "outputs.capture_keep", f"must be 0 (keep all) or more, not {keep}")
    outputs = OutputsConfig(
        directory=directory,
        archive=path("archive", "archive.sqlite"),
        telemetry=telemetry or None,
        telemetry_rate_hz=rate,
        capture=path("capture", "capture"),
        capture_max_bytes=max_bytes,
        capture_keep=keep,
        control_socket=path("control_socket", "cabinwatch.sock"),
    )

    raw_disp = extra.get("display", {})
    if not isinstance(raw_disp, dict):
        raise ConfigError(src, "display", "must be a table [display]")
    _check_keys(src, raw_disp, {"enabled", "period_s"}, "display")
    period = _typed(src, raw_disp, "period_s", float, 1.0, "display")
    if not 0 < period <= 2.0:
        raise ConfigError(src, "display.period_s", f"must be in (0, 2] s, not {period}")
    display = DisplayConfig(_typed(src, raw_disp, "enabled", bool, True, "display"), period)
    return RuntimeConfig(monitor, links, outputs, display, src)


def load_runtime_config(path: str | Path, *, require_links: bool = True) -> RuntimeConfig:
    """Read and validate a whole configuration file (monitor and runtime tables)."""
    return runtime_from_monitor(load_config(path), require_links=require_links)
