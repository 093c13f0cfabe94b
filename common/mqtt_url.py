"""The broker URL of the station's MQTT: ``mqtt://HOST[:PORT]`` or ``mqtts://HOST[:PORT]``.

One parser for the board's ``[station] url`` (``firmware_host.runtime.stationconfig``)
and the aggregator's station file and ``--broker`` (``station.config``).  The port
defaults to 1883 (plain TCP) or 8883 (TLS); an IPv6 host is written in brackets.
No user, password, path, query or fragment: credentials live in their own file.
A URL that names no broker is a ``BrokerUrlError`` of one line, which the caller
turns into its ``ConfigError`` or ``CabinwatchError`` (exit 2).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from urllib.parse import urlsplit

#: What a bad URL is told to look like.
FORM = "mqtt://HOST:PORT or mqtts://HOST:PORT"


class Transport(enum.Enum):
    """``mqtt://`` (plain TCP) or ``mqtts://`` (TLS)."""

    MQTT = "mqtt"
    MQTTS = "mqtts"

    @property
    def default_port(self) -> int:
        return 8883 if self is Transport.MQTTS else 1883


@dataclass(frozen=True)
class BrokerAddress:
    """Where the broker listens and how: ``transport``, ``host`` (no brackets), TCP ``port``."""

    transport: Transport
    host: str
    port: int

    @property
    def tls(self) -> bool:
        return self.transport is Transport.MQTTS

    @property
    def url(self) -> str:
        """The URL back (``parse_broker_url(a.url) == a``)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.transport.value}://{host}:{self.port}"


class BrokerUrlError(ValueError):
    """A broker URL that names no broker (one line)."""


def parse_broker_url(url: str) -> BrokerAddress:
    """``mqtt://HOST[:PORT]`` or ``mqtts://HOST[:PORT]`` (scheme in any case) as a
    ``BrokerAddress``; ``BrokerUrlError`` naming the problem otherwise."""
    if not isinstance(url, str) or not url:
        raise BrokerUrlError(f"empty broker URL ({FORM})")
    if any(c in url for c in "\x00\n\r\t "):
        raise BrokerUrlError(f"{url!r}: must not contain spaces or control characters")
    if "://" not in url:
        raise BrokerUrlError(f"{url!r}: not a URL ({FORM})")
    try:
        parts = urlsplit(url)  # the scheme comes back in lower case
        port = parts.port
    except ValueError as exc:  # a port out of range or not a number, an unclosed [IPv6
        raise BrokerUrlError(f"{url!r}: {exc}") from None
    try:
        transport = Transport(parts.scheme)
    except ValueError:
        raise BrokerUrlError(
            f"{url!r}: unknown scheme {parts.scheme!r}: must start with mqtt:// or mqtts://"
        ) from None
    if parts.username is not None or parts.password is not None:
        raise BrokerUrlError(f"{url!r}: no user or password in the URL (use credentials = FILE)")
    if not parts.hostname:
        raise BrokerUrlError(f"{url!r}: no host")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise BrokerUrlError(f"{url!r}: no path, query or fragment after HOST:PORT")
    if port == 0:
        raise BrokerUrlError(f"{url!r}: port must be in 1..65535 (got 0)")
    return BrokerAddress(transport, parts.hostname, port or transport.default_port)
